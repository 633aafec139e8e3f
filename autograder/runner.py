"""Running a learner's code on cases: sandboxed, time-limited, quiet, and reduced to plain trees.

This is the only place learner code is called. Everything it returns or raises comes back as
a plain tree (see ``plain.py``); nothing here compares or scores.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import signal
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import torch

from .exercise import Case, Exercise
from .plain import plain, raised
from .sandbox import ForbiddenCall, Sandbox, armed

CASE_SECONDS = 20.0


class CaseTimeout(BaseException):
    """Raised inside learner code that runs past its time (BaseException: not caught by ``except Exception``)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Interrupt the block after ``seconds`` (SIGALRM, main thread on Unix only; else no limit)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise CaseTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def quiet():
    """Swallow warnings, stdout and stderr of learner code (nbgrader zeroes a cell that writes stderr)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def learner_frame(exc: BaseException) -> str:
    """Where in the learner's code an exception came from: 'line 4 in softmax: return e / s'."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__)
        if "site-packages" not in f.filename and "/autograder/" not in f.filename and "/minidl/" not in f.filename
        and not f.filename.startswith("<frozen")
    ]
    if not frames:
        return ""
    f = frames[-1]
    return f"line {f.lineno} in {f.name}: {(f.line or '').strip()}"


def run_case(exercise: Exercise, fn: Any, case: Case, seconds: float = CASE_SECONDS) -> dict:
    """Run one case; return the plain tree of the output, of the exception, or of the refusal."""
    sandbox = Sandbox(exercise.forbidden_names())
    probe = exercise.probe_for(case.group)
    args, kwargs = copy.deepcopy((case.args, case.kwargs))
    hits: list[str] = []
    try:
        with quiet(), time_limit(seconds), armed(sandbox):
            out = probe(fn, *args, **kwargs)
            result = plain(out)
    except CaseTimeout:
        result = {"kind": "timeout", "seconds": seconds}
    except ForbiddenCall as e:
        hits.append(e.name)
        result = {"kind": "forbidden", "names": [e.name]}
    except NotImplementedError as e:
        result = raised(e, learner_frame(e)) | {"not_implemented": True}
    except Exception as e:  # learner code failed: that is a verdict, not a grader error
        result = raised(e, learner_frame(e))
    hits += sandbox.hits
    if hits:
        result = {"kind": "forbidden", "names": list(dict.fromkeys(hits))}
    return result


def time_ratio(exercise: Exercise, fn: Any, case: Case, seconds: float = CASE_SECONDS, repeats: int = 5) -> float:
    """Best-of-``repeats`` time of the learner's code over the reference's, measured here and now.

    On the CPU both sides run on one thread and are timed in CPU time, not wall time, so the
    ratio does not depend on what else the machine runs (other grading workers' threads once
    slowed the reference 300-fold and not a learner's Python loop). On a GPU, wall time after a
    synchronisation. Both run under a sandbox (the reference under an empty one) so that the
    cost of the torch-function mode is the same on both sides.
    """
    reference = exercise.reference()
    on_cpu = not case.device.startswith(("cuda", "mps"))
    clock = time.process_time if on_cpu else time.perf_counter

    def best(f: Callable[..., Any], sandbox: Sandbox, repeats: int = repeats) -> float:
        times = []
        for _ in range(repeats):
            args, kwargs = copy.deepcopy((case.args, case.kwargs))
            sync(case.device)
            start = clock()
            with sandbox:
                f(*args, **kwargs)
            sync(case.device)
            times.append(clock() - start)
        return min(times)

    threads = torch.get_num_threads()
    try:
        if on_cpu:
            torch.set_num_threads(1)
        with quiet(), time_limit(seconds):
            best(reference, Sandbox(()), repeats=1)  # warm-up: a process's first calls can take 100x longer
            t_ref = best(reference, Sandbox(()))
            t_learner = best(fn, Sandbox(exercise.forbidden_names()))
    except (CaseTimeout, Exception):
        return math.inf
    finally:
        torch.set_num_threads(threads)
    return t_learner / max(t_ref, 1e-9)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device.startswith("mps"):
        torch.mps.synchronize()
