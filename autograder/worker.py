"""A worker: runs one exercise's cases on a learner's definition, in a process of its own.

    python -m autograder.worker REQUEST RESULT

The grader starts it confined (see confine.py) and with a time limit, so an exercise that
hangs, crashes or eats memory costs that exercise only. REQUEST (torch.save) holds the
exercise id, the path of the learner's definition (cloudpickle bytes) and the cases' inputs.
No expected value and no secret ever enter this process. The definition is loaded with the
exercise's forbidden built-ins already switched off, so an alias captured in the notebook is
caught too, and a copy of the reference's code found in it makes the exercise forbidden. RESULT holds only plain trees (see plain.py), which the parent loads with
``weights_only=True``; it also says whether the grader's own functions in this process were
replaced while learner code ran (then the exercise scores 0).
"""

from __future__ import annotations

import sys
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


def main(request_path: str, result_path: str) -> None:
    from .catalog import EXERCISES
    from .check import run_cases
    from .plain import raised
    from .sandbox import Sandbox, copies_of

    request = torch.load(request_path, weights_only=False)
    exercise = EXERCISES[request["exercise"]]
    before = fingerprint()
    with Sandbox(exercise.forbidden_names()) as sandbox, open(request["definition"], "rb") as f:
        import cloudpickle

        try:
            fn = cloudpickle.loads(f.read())
        except BaseException as e:  # noqa: BLE001 (whatever unpickling raises is a verdict)
            fn, error = None, raised(e)
    copies = [f"{name} (minidl's reference under another name)" for name in copies_of(fn, sandbox.codes)]
    if sandbox.hits or copies:
        got, ratios = [{"kind": "forbidden", "names": sandbox.hits + copies}] * len(request["cases"]), {}
    elif fn is None:
        got, ratios = [error] * len(request["cases"]), {}
    else:
        got, ratios = run_cases(exercise, fn, request["cases"])
    after = fingerprint()
    tampered = sorted(k for k in before if after.get(k) != before[k])
    torch.save({"got": got, "ratios": ratios, "tampered": tampered}, result_path)


if __name__ == "__main__":
    main(*sys.argv[1:3])
