"""One attempt at an exercise: a learner's definition run on the exercise's cases, into a ``Result``.

Every path that scores an exercise goes through here: the notebook's ``check`` (in the
learner's kernel), the grading worker (in a confined process) and the CLI that judges what the
worker sends back. ``prepare`` joins the public and hidden cases with their expected values
and each case's time limit; ``run`` calls the learner's code on them (the only step that may
happen in another process); ``score`` judges; ``zero`` is the result of an attempt that could
not be made, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import policy
from .exercise import Case, Exercise
from .judge import judge
from .report import Result
from .runner import run_case, time_ratio


@dataclass
class Attempt:
    """An exercise's cases, what the reference gave on each, and each case's time limit.
    Cases from ``hidden_from`` on are hidden: counted in the score, never shown."""

    exercise: Exercise
    cases: list[Case]
    expected: list[dict]
    seconds: list[float] = field(default_factory=list)  # per case; see policy.case_seconds
    hidden_from: int | None = None

    @property
    def budget(self) -> float:
        """The time the whole check may take (the worker's limit for this exercise)."""
        speed = sum(1 for c in self.cases if self.exercise.group(c.group).speed)
        return policy.budget(self.seconds, speed)


def limits_of(data: dict) -> list[float]:
    """Per-case time limits from the oracle's timings of the reference (``data["seconds"]``)."""
    timings = data.get("seconds") or [None] * len(data["cases"])
    return [policy.case_seconds(t) if t is not None else policy.TRAINED_CASE_SECONDS for t in timings]


def prepare(exercise: Exercise, public: dict, hidden: dict | None = None) -> Attempt:
    """The attempt for ``exercise`` from the oracle's public (and hidden) cases and expected values."""
    attempt = Attempt(exercise, list(public["cases"]), list(public["expected"]), limits_of(public))
    if hidden is not None:
        attempt.hidden_from = len(attempt.cases)
        attempt.cases += hidden["cases"]
        attempt.expected += hidden["expected"]
        attempt.seconds += limits_of(hidden)
    return attempt


def run(exercise: Exercise, fn: Any, cases: list[Case], seconds: list[float]) -> tuple[list[dict], dict[int, float]]:
    """Plain outputs of ``fn`` on every case, and the time ratios of the speed cases.

    Cases that need not run get the verdict of the one before: all of them once ``fn`` is
    unimplemented or calls a forbidden built-in, and the rest of a group once a case of it ran
    out of time (so an endless loop costs one case's time per group, not the whole budget). The
    first case has more time: it also pays for the process's first calls."""
    got, ratios, stalled = [], {}, set()
    for i, case in enumerate(cases):
        if case.group in stalled:
            got.append(next(g for g, c in zip(got, cases) if c.group == case.group and g["kind"] == "timeout"))
            continue
        out = run_case(exercise, fn, case, seconds[i] + (policy.FIRST_CASE_GRACE if i == 0 else 0.0))
        got.append(out)
        if out.get("not_implemented") or out["kind"] == "forbidden":
            got += [out] * (len(cases) - len(got))
            break
        if out["kind"] == "timeout":
            stalled.add(case.group)
        elif exercise.group(case.group).speed and out["kind"] != "raised":
            ratios[i] = time_ratio(exercise, fn, case, seconds[i] * policy.SPEED_REPEATS)
    return got, ratios


def score(attempt: Attempt, got: list[dict], ratios: dict[int, float]) -> Result:
    return judge(attempt.exercise, attempt.cases, attempt.expected, got, ratios, attempt.hidden_from)


def zero(exercise: Exercise, status: str, note: str) -> Result:
    """The result of an attempt that could not be made (missing, crashed, out of time), and why."""
    return Result(exercise.id, exercise.title, 0.0, exercise.points, 0, 0, status=status, note=note)
