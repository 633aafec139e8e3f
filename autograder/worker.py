"""A worker: runs one exercise's cases on a learner's definition, in a process of its own.

    python -m autograder.worker REQUEST RESULT

REQUEST (torch.save) holds the exercise id, the path of the learner's definition (cloudpickle
bytes) and the cases' inputs. No expected value and no secret ever enter this process. RESULT
holds only plain trees (see plain.py), which the parent loads with ``weights_only=True``.
"""

from __future__ import annotations

import sys

import torch


def main(request_path: str, result_path: str) -> None:
    from .catalog import EXERCISES
    from .check import run_cases
    from .plain import raised
    from .sandbox import Sandbox

    request = torch.load(request_path, weights_only=False)
    exercise = EXERCISES[request["exercise"]]
    with Sandbox(exercise.forbidden_names()), open(request["definition"], "rb") as f:
        import cloudpickle

        try:
            fn = cloudpickle.loads(f.read())
        except Exception as e:
            fn, error = None, raised(e)
    if fn is None:
        got, ratios = [error] * len(request["cases"]), {}
    else:
        got, ratios = run_cases(exercise, fn, request["cases"])
    torch.save({"got": got, "ratios": ratios}, result_path)


if __name__ == "__main__":
    main(*sys.argv[1:3])
