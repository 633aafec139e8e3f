"""Grading a notebook: run it, take the learner's definitions, check each in its own worker.

Data flows one way: notebook -> learner definitions -> cases run in a worker -> plain outputs
-> compared with the oracle's expected values -> Result per exercise -> report.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import torch

from . import notebook, oracle
from .catalog import LESSONS
from .judge import judge
from .report import Result

ROOT = pathlib.Path(__file__).resolve().parent.parent


@dataclass
class Limits:
    """Time limits (seconds): per notebook cell, for the whole notebook, per exercise's worker."""

    cell: float = 120
    notebook: float = 900
    exercise: float = 300


@dataclass
class Report:
    notebook: str
    lesson: str | None
    results: list[Result] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    hidden: bool = False
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return round(sum(r.points for r in self.results), 4)

    @property
    def max_score(self) -> float:
        return sum(r.max_score for r in self.results)

    def to_dict(self) -> dict:
        return {
            "notebook": self.notebook, "lesson": self.lesson, "score": self.score, "max_score": self.max_score,
            "hidden_cases": self.hidden, "problems": self.problems, "seconds": round(self.seconds, 1),
            "exercises": [r.to_dict() for r in self.results],
        }

    def table(self) -> str:
        width = max([len(r.exercise) for r in self.results] + [8])
        lines = [f"{self.notebook}  (lesson {self.lesson or '?'})"]
        lines += [f"  ! {p}" for p in self.problems]
        for r in self.results:
            lines.append(f"  {r.exercise:<{width}}  {r.points:>5g} / {r.max_score:<3g} {'ok ' if r.passed else '-- '} {r.message}")
        pct = 100 * self.score / self.max_score if self.max_score else 0.0
        lines.append(f"  {'total':<{width}}  {self.score:>5g} / {self.max_score:<3g} ({pct:.0f}%)"
                     + ("" if self.hidden else "   public cases only (no instructor secret set)"))
        return "\n".join(lines)


def zero(exercise, status: str, note: str) -> Result:
    return Result(exercise.id, exercise.title, 0.0, exercise.points, 0, 0, status=status, note=note)


def grade_notebook(path: str | os.PathLike, limits: Limits | None = None, hidden: bool | None = None) -> Report:
    """Grade one notebook; every exercise of its lesson gets a result, whatever happens."""
    limits = limits or Limits()
    path = pathlib.Path(path)
    hidden = oracle.read_secret() is not None if hidden is None else hidden
    nb, problem = notebook.read(path)
    key = notebook.lesson_key(nb, path)
    report = Report(str(path), key, hidden=hidden)
    if problem:
        report.problems.append(problem)
    if key is None:
        report.problems.append("could not tell which lesson this notebook belongs to")
        return report
    exercises = list(LESSONS[key].exercises)
    if nb is None:
        report.results = [zero(e, "error", "the notebook could not be read") for e in exercises]
        return report
    with tempfile.TemporaryDirectory(prefix="minidl-grade-") as tmp:
        tmp = pathlib.Path(tmp)
        run = notebook.execute(nb, [e.name for e in exercises], path.resolve().parent, tmp / "defs",
                               limits.cell, limits.notebook)
        report.problems += run.problems
        report.seconds = run.seconds
        data = oracle.cases_and_expected([e.id for e in exercises], use_cache=False)
        secret = oracle.cases_and_expected([e.id for e in exercises], hidden=True) if hidden else {}
        for exercise in exercises:
            state = run.definitions.get(exercise.name, "missing")
            if state != "ok":
                note = (f"{exercise.name} is not defined in the notebook" if state == "missing"
                        else f"{exercise.name} could not be taken out of the notebook ({state})")
                report.results.append(zero(exercise, "missing", note))
                continue
            cases, expected = list(data[exercise.id]["cases"]), list(data[exercise.id]["expected"])
            hidden_from = None
            if hidden:
                hidden_from = len(cases)
                cases += secret[exercise.id]["cases"]
                expected += secret[exercise.id]["expected"]
            report.results.append(check_in_worker(exercise, tmp / "defs" / f"{exercise.name}.pkl",
                                                  cases, expected, hidden_from, tmp, limits.exercise))
    return report


def check_in_worker(exercise, definition: pathlib.Path, cases, expected, hidden_from, tmp: pathlib.Path,
                    seconds: float) -> Result:
    """Run the cases in a fresh worker process and judge what comes back (plain trees only)."""
    request, answer = tmp / f"{exercise.id}.request.pt", tmp / f"{exercise.id}.answer.pt"
    torch.save({"exercise": exercise.id, "definition": str(definition), "cases": cases}, request)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    try:
        proc = subprocess.run([sys.executable, "-m", "autograder.worker", str(request), str(answer)],
                              cwd=ROOT, env=env, capture_output=True, timeout=seconds)
        crashed = proc.returncode != 0
    except subprocess.TimeoutExpired:
        return zero(exercise, "error", f"checking {exercise.name} took longer than {seconds:g} s")
    if crashed or not answer.exists():
        return zero(exercise, "error", f"your {exercise.name} crashed the process that checks it "
                                       f"(exit code {proc.returncode})")
    try:
        answer_data = torch.load(answer, weights_only=True)
        got, ratios = answer_data["got"], answer_data["ratios"]
        if not isinstance(got, list) or len(got) != len(cases):
            raise ValueError("wrong number of outputs")
    except Exception:
        return zero(exercise, "error", f"the outputs of {exercise.name} could not be read back as plain data")
    return judge(exercise, cases, expected, got, ratios, hidden_from)
