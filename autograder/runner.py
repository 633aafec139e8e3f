"""Running a learner's code on cases: sandboxed, time-limited, quiet, and reduced to plain trees.

This is the only place learner code is called. Everything it returns or raises comes back as
a plain tree (see ``plain.py``); nothing here compares or scores.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
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


UNMEASURED = math.nan  # a speed case whose clock never advanced: no ratio, no points lost (see judge)
MIN_ROUND = 0.02     # seconds one timing round must last to be read reliably on the clock
MAX_CALLS = 10_000   # calls in one round at most, however fast the call
ROUNDS = 5           # each side's time is the best of this many rounds


def time_ratio(exercise: Exercise, fn: Any, case: Case, seconds: float = CASE_SECONDS, rounds: int = ROUNDS) -> float:
    """Seconds per call of the learner's code over the reference's, both measured here and now.

    Each side is timed by ``per_call``: on the CPU on one thread in that thread's CPU time (not
    wall time, which counts what else the machine runs; not process time, which the confined
    worker's CPU limit makes advance only at the scheduler's tick), on a GPU in wall time
    between synchronisations. Both run under a sandbox (the reference under an empty one) so the
    torch-function mode costs the same on both sides. The result is ``inf`` when the learner's
    code fails or runs out of the ``seconds`` both sides share, and ``UNMEASURED`` (NaN) when
    the reference could not be timed.
    """
    reference = exercise.reference()
    on_cpu = not case.device.startswith(("cuda", "mps"))
    clock = time.thread_time if on_cpu else time.perf_counter
    deadline = time.monotonic() + seconds
    threads = torch.get_num_threads()
    try:
        if on_cpu:
            torch.set_num_threads(1)
        with quiet():
            try:
                with time_limit(seconds):
                    per_call(reference, case, Sandbox(()), clock, rounds=1)  # warm-up: first calls can take 100x longer
                    t_ref = per_call(reference, case, Sandbox(()), clock, rounds)
            except (CaseTimeout, Exception):
                return UNMEASURED
            if t_ref <= 0.0:
                return UNMEASURED
            try:
                with time_limit(max(deadline - time.monotonic(), 0.01)):
                    t_learner = per_call(fn, case, Sandbox(exercise.forbidden_names()), clock, rounds)
            except (CaseTimeout, Exception):
                return math.inf
    finally:
        torch.set_num_threads(threads)
    return t_learner / t_ref


def per_call(f: Callable[..., Any], case: Case, sandbox: Sandbox, clock: Callable[[], float], rounds: int) -> float:
    """Seconds per call of ``f`` on ``case``: the best of ``rounds`` rounds, each of as many calls
    as make it last ``MIN_ROUND`` on ``clock`` (sized 1, 2, 5, 10, 20, ... as
    ``timeit.Timer.autorange`` does). 0.0 when the clock did not move in ``MAX_CALLS`` calls or
    in ten times ``MIN_ROUND`` of wall time."""
    number = 1
    for multiple in itertools.cycle((2, 2.5, 2)):  # 1, 2, 5, 10, 20, 50, ...
        began = time.monotonic()
        elapsed = timed_round(f, case, sandbox, clock, number)
        if elapsed >= MIN_ROUND or number >= MAX_CALLS or time.monotonic() - began > 10 * MIN_ROUND:
            break
        number = int(number * multiple)
    best = elapsed / number
    for _ in range(rounds - 1):
        best = min(best, timed_round(f, case, sandbox, clock, number) / number)
    return best


def timed_round(f: Callable[..., Any], case: Case, sandbox: Sandbox, clock: Callable[[], float], number: int) -> float:
    """The time ``number`` calls of ``f`` take on fresh copies of the case's inputs (copied before the clock starts)."""
    inputs = [copy.deepcopy((case.args, case.kwargs)) for _ in range(number)]
    sync(case.device)
    start = clock()
    with sandbox:
        for args, kwargs in inputs:
            f(*args, **kwargs)
    sync(case.device)
    return clock() - start


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device.startswith("mps"):
        torch.mps.synchronize()
