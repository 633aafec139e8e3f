"""A worker: checks a notebook's exercises, each in a process of its own.

    python -m autograder.worker REQUEST FOLDER

The grader starts it confined (see confine.py). It imports PyTorch and the checker once,
then forks one child per exercise, before any learner code is loaded: each child has its
own time limit, its own memory limit and its own crash, so an exercise that hangs, crashes or
eats memory costs that exercise only, and whatever one exercise's code changes in its process
is gone for the next. REQUEST (torch.save) holds one job per exercise: the exercise id, the
path of the learner's definition (cloudpickle bytes), the cases' inputs, each case's time
limit and the seconds allowed for the whole exercise (see policy.budget). No expected value and no secret ever enter these processes.

A child loads the definition with the exercise's forbidden built-ins already switched off, so
an alias captured in the notebook is caught too, and a copy of the reference's code found in
it makes the exercise forbidden. It writes FOLDER/<n>.pt holding only plain trees (see
plain.py), which the grader loads with ``weights_only=True``, and whether the grader's own
functions in its process were replaced while learner code ran (then the exercise scores 0).
The worker writes FOLDER/outcomes.json: for each job, the child's exit code, or null when it
ran out of time and was killed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import types

import torch


def fingerprint() -> dict[str, int]:
    """Identity of every function and class of the grader's modules, and of their code."""
    marks = {}
    for name, module in list(sys.modules.items()):
        if not (name == "autograder" or name.startswith("autograder.")) or module is None:
            continue
        for attr, obj in list(vars(module).items()):
            if isinstance(obj, types.FunctionType):
                marks[f"{name}.{attr}"] = id(obj.__code__)
            elif isinstance(obj, type) and obj.__module__ == name:
                for key, member in list(vars(obj).items()):
                    if isinstance(member, types.FunctionType):
                        marks[f"{name}.{attr}.{key}"] = id(member.__code__)
    return marks


def check_one(request_path: str, index: int, answer_path: str) -> None:
    """In a child: run job ``index``'s cases on the learner's definition, save the plain outputs."""
    from .attempt import run
    from .catalog import EXERCISES
    from .plain import raised
    from .sandbox import Sandbox, copies_of

    job = torch.load(request_path, weights_only=False)["jobs"][index]
    exercise, cases = EXERCISES[job["exercise"]], job["cases"]
    before = fingerprint()
    with Sandbox(exercise.forbidden_names()) as sandbox, open(job["definition"], "rb") as f:
        import cloudpickle

        try:
            fn = cloudpickle.loads(f.read())
        except BaseException as e:  # noqa: BLE001 (whatever unpickling raises is a verdict)
            fn, error = None, raised(e)
    copies = [f"{name} (minidl's reference under another name)" for name in copies_of(fn, sandbox.codes)]
    if sandbox.hits or copies:
        got, ratios = [{"kind": "forbidden", "names": sandbox.hits + copies}] * len(cases), {}
    elif fn is None:
        got, ratios = [error] * len(cases), {}
    else:
        got, ratios = run(exercise, fn, cases, job["case_seconds"])
    after = fingerprint()
    tampered = sorted(k for k in before if after.get(k) != before[k])
    torch.save({"got": got, "ratios": ratios, "tampered": tampered}, answer_path)


def run_child(request_path: str, index: int, folder: str) -> None:
    """The body of the child for job ``index``: its own process group and log; never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        log = os.open(os.path.join(folder, f"{index}.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 2)
        check_one(request_path, index, os.path.join(folder, f"{index}.pt"))
        code = 0
    except BaseException:  # noqa: BLE001 (reported through the exit code and the log)
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def wait(pid: int, seconds: float) -> int | None:
    """The child's exit code (negative: killed by that signal), or None when it ran out of time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def main(request_path: str, folder: str) -> None:
    from . import attempt, plain, sandbox  # noqa: F401 (imported once, before the children fork)

    jobs = torch.load(request_path, weights_only=False)["jobs"]
    outcomes = []
    for index, job in enumerate(jobs):
        pid = os.fork()
        if pid == 0:
            run_child(request_path, index, folder)
        outcomes.append(wait(pid, job["seconds"]))
        with open(os.path.join(folder, "outcomes.json"), "w") as f:
            json.dump(outcomes, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
