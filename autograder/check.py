"""``check(exercise_id, fn)``: run a learner's code against the reference and explain the result.

In a notebook this is the feedback loop: the learner's code runs in their own kernel, under
the sandbox; the expected values come from a clean process (see ``oracle.py``). With
``hidden=True`` (nbgrader's hidden test block, or a grading run) the instructor's hidden cases
are added to the public ones and counted in the score, never shown.
"""

from __future__ import annotations

import difflib
import os
from typing import Any

from . import oracle
from .catalog import EXERCISES, lesson_of
from .judge import judge
from .report import Result
from .runner import run_case, time_ratio

# Set by ``python -m autograder grade`` while it executes a notebook: the checks in the
# notebook's own cells are skipped there, because the CLI grades in separate processes.
COLLECT_ENV = "AUTOGRADER_COLLECT"


def _empty(exercise_id: str, status: str, note: str, max_score: float = 0.0, title: str = "") -> Result:
    return Result(exercise_id, title, 0.0, max_score, 0, 0, status=status, note=note)


def check(exercise_id: str, fn: Any = None, hidden: bool = False) -> Result:
    """Check ``fn`` against the exercise ``exercise_id`` ("module.name"); return a ``Result``."""
    exercise = EXERCISES.get(exercise_id)
    if exercise is None:
        close = difflib.get_close_matches(str(exercise_id), EXERCISES, n=3)
        return _empty(str(exercise_id), "error", f"there is no exercise {exercise_id!r}"
                      + (f"; did you mean {', '.join(close)}?" if close else ""))
    if os.environ.get(COLLECT_ENV):
        return _empty(exercise_id, "deferred", "checked by the grader after the notebook has run",
                      exercise.points, exercise.title)
    if fn is None or not callable(fn):
        what = "a trained model (an nn.Module)" if exercise.threshold is not None else "a function or class"
        return _empty(exercise_id, "missing", f"{exercise.name} is not defined, or is not {what}",
                      exercise.points, exercise.title)
    ids = [e.id for e in lesson_of(exercise_id).exercises]
    try:
        data = oracle.cases_and_expected(ids)[exercise_id]
        cases, expected = list(data["cases"]), list(data["expected"])
        hidden_from = None
        if hidden:
            more = oracle.cases_and_expected([exercise_id], hidden=True)[exercise_id]
            hidden_from = len(cases)
            cases += more["cases"]
            expected += more["expected"]
    except Exception as e:  # the course's fault, never the learner's: say so, quietly
        return _empty(exercise_id, "error", f"grader error (not your fault): {e}", exercise.points, exercise.title)
    result = run_and_judge(exercise, fn, cases, expected, hidden_from)
    if hidden:
        show(result)  # the cell's last expression is the number nbgrader records; show the report too
    return result


def show(result: Result) -> None:
    """Display the report in a notebook (hidden cases are counted in it, never shown)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        display(result)


def run_and_judge(exercise, fn, cases, expected, hidden_from=None) -> Result:
    """Run every case on ``fn`` here, then judge against ``expected``."""
    got, ratios = run_cases(exercise, fn, cases)
    return judge(exercise, cases, expected, got, ratios, hidden_from)


def run_cases(exercise, fn, cases) -> tuple[list[dict], dict[int, float]]:
    """Plain outputs of ``fn`` on every case (stopping early when it is unimplemented or
    forbidden), and the time ratios of the speed cases."""
    got, ratios = [], {}
    for i, case in enumerate(cases):
        out = run_case(exercise, fn, case)
        got.append(out)
        if out.get("not_implemented") or out["kind"] == "forbidden":
            got += [out] * (len(cases) - len(got))  # the same verdict for the cases not run
            break
        if exercise.group(case.group).speed and out["kind"] not in ("raised", "timeout"):
            ratios[i] = time_ratio(exercise, fn, case)
    return got, ratios
