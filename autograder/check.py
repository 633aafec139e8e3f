"""``check(exercise_id, fn)``: run a learner's code against the reference and explain the result.

In a notebook this is the feedback loop: the learner's code runs in their own kernel, under
the sandbox; the expected values come from a clean process (see ``oracle.py``). With
``hidden=True`` (nbgrader's hidden test block, or a grading run) the instructor's hidden cases
are added to the public ones and counted in the score, never shown.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable
from typing import Any

from . import attempt, oracle
from .catalog import EXERCISES, lesson_of
from .i18n import _
from .policy import COLLECT_ENV
from .report import Result
from .runner import CaseTimeout, time_limit


def check(exercise_id: str, fn: Any = None, hidden: bool = False) -> Result:
    """Check ``fn`` against the exercise ``exercise_id`` ("module.name"); return a ``Result``."""
    exercise = EXERCISES.get(exercise_id)
    if exercise is None:
        close = difflib.get_close_matches(str(exercise_id), EXERCISES, n=3)
        return Result(str(exercise_id), "", 0.0, 0.0, 0, 0, status="error",
                      note=_("there is no exercise {id!r}").format(id=exercise_id)
                      + (_("; did you mean {names}?").format(names=", ".join(close)) if close else ""))
    if os.environ.get(COLLECT_ENV):
        return attempt.zero(exercise, "deferred", _("checked by the grader after the notebook has run"))
    if fn is None or not callable(fn):
        what = _("a trained model (an nn.Module)") if exercise.threshold is not None else _("a function or class")
        return attempt.zero(exercise, "missing", _("{name} is not defined, or is not {what}").format(
            name=exercise.name, what=what))
    ids = [e.id for e in lesson_of(exercise_id).exercises]
    try:
        public = oracle.cases_and_expected(ids)[exercise_id]
        secret = oracle.cases_and_expected(ids, hidden=True)[exercise_id] if hidden else None
    except Exception as e:  # the course's fault, never the learner's: say so, quietly
        return attempt.zero(exercise, "error", _("grader error (not your fault): {error}").format(error=e))
    plan = attempt.prepare(exercise, public, secret)
    got, ratios = attempt.run(exercise, fn, plan.cases, plan.seconds)
    return attempt.score(plan, got, ratios)


def yours(name: str, run: Callable[[Any], Any], seconds: float = 5.0) -> Any:
    """``run(your definition of name)``: what it returns, or None with a note while your code is
    missing, not implemented, raises, or runs longer than ``seconds`` (an endless loop then costs
    seconds, not the cell, here and when your notebook is graded). The lessons' "compare with
    the built-in" cells call your code through this."""
    from IPython import get_ipython

    shell = get_ipython()
    names = shell.user_ns if shell is not None else sys._getframe(1).f_globals  # the notebook's, or the caller's
    mine = names.get(name)
    if mine is None:
        print(_("  your {name}: not defined yet").format(name=name))
        return None
    try:
        with time_limit(seconds):
            return run(mine)
    except CaseTimeout:
        print(_("  your {name} did not finish within {seconds:g} s (an endless loop?)").format(name=name, seconds=seconds))
    except NotImplementedError:
        print(_("  your {name}: not implemented yet").format(name=name))
    except Exception as err:  # noqa: BLE001 (the learner's error, reported in words)
        print(_("  your {name} raised {error}").format(name=name, error=f"{type(err).__name__}: {err}"))
    return None
