"""Grading a notebook: run it, take the learner's definitions, check each exercise in a process of its own.

Data flows one way: notebook -> learner definitions -> cases run in a worker -> plain outputs
-> compared with the oracle's expected values -> Result per exercise -> report.
"""

from __future__ import annotations

import difflib
import json
import os
import pathlib
import secrets
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import torch

from . import kernel, notebook, oracle, policy, submission
from .catalog import LESSONS
from .attempt import prepare, score, zero
from .confine import Confinement, offline_possible, release, sandbox_user
from . import i18n
from .i18n import _
from .policy import Limits
from .report import Result

ROOT = pathlib.Path(__file__).resolve().parent.parent


def kernel_confinement(limits: Limits) -> Confinement:
    """The learner's kernel: the notebook's time (twice, in CPU seconds) and the memory limit."""
    return Confinement(memory=limits.memory, cpu=int(2 * limits.notebook) + 60, processes=limits.processes,
                       hide=limits.hide)


def worker_confinement(limits: Limits, seconds: float) -> Confinement:
    """The checking worker: the exercises' budgets (twice, in CPU seconds) and the memory limit."""
    return Confinement(memory=limits.memory, cpu=int(2 * seconds) + 30, processes=limits.processes, hide=limits.hide)


@dataclass
class Report:
    notebook: str
    lesson: str | None
    results: list[Result] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    hidden: bool = False
    repairs: list[str] = field(default_factory=list)
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
            "hidden_cases": self.hidden, "problems": self.problems, "repairs": self.repairs, "seconds": round(self.seconds, 1),
            "exercises": [r.to_dict() for r in self.results],
        }

    def table(self) -> str:
        width = max([len(r.exercise) for r in self.results] + [8])
        lines = [_("{notebook}  (lesson {lesson})").format(notebook=self.notebook, lesson=self.lesson or "?")]
        lines += [f"  ! {p}" for p in self.problems]
        lines += [f"  ~ {r}" for r in self.repairs]
        for r in self.results:
            lines.append(f"  {r.exercise:<{width}}  {r.points:>5g} / {r.max_score:<3g} {'ok ' if r.passed else '-- '} {r.message}")
            if r.hint:
                lines.append(f"  {'':<{width}}  {'':>5}   {'':<3}     " + _("hint: {hint}").format(hint=_(r.hint)))
        pct = 100 * self.score / self.max_score if self.max_score else 0.0
        total = _("total")
        lines.append(f"  {i18n.pad(total, width)}  {self.score:>5g} / {self.max_score:<3g} ({pct:.0f}%)"
                     + ("" if self.hidden else "   " + _("public cases only (no instructor secret set)")))
        return "\n".join(lines)


def missing_note(name: str, callables: set[str]) -> str:
    """'one_hot is not defined in the notebook (did you rename it? the notebook has onehot)'."""
    close = difflib.get_close_matches(name, sorted(callables), n=2, cutoff=0.7)
    return _("{name} is not defined in the notebook").format(name=name) + (
        _(" (did you rename it? the notebook defines {names})").format(names=_(" and ").join(close)) if close else "")


def expected_values(key: str, hidden: bool) -> tuple[dict, dict]:
    """Public and (when ``hidden``) hidden cases with the reference's outputs for lesson ``key``,
    from a clean process. The public ones come from the user's cache only when learner code runs
    as another user (see confine.py), since a learner running as this user could rewrite it."""
    ids = [e.id for e in LESSONS[key].exercises]
    data = oracle.cases_and_expected(ids, use_cache=sandbox_user() is not None)
    return data, oracle.cases_and_expected(ids, hidden=True) if hidden else {}


def grade_notebook(path: str | os.PathLike, limits: Limits | None = None, hidden: bool | None = None,
                   expected: tuple[dict, dict] | None = None, lesson: str | None = None) -> Report:
    """Grade one notebook; every exercise of its lesson gets a result, whatever happens.
    ``expected`` is what ``expected_values`` returns, when the caller has it already (batch);
    ``lesson`` is the lesson the caller's submission lookup chose (else the notebook says)."""
    limits = limits or Limits()
    path = pathlib.Path(path)
    hidden = bool(policy.secret()) if hidden is None else hidden
    loaded = notebook.read(path)
    nb = loaded.nb
    key, notes = (lesson, []) if lesson in LESSONS else submission.lesson_of(nb, path)
    report = Report(str(path), key, hidden=hidden, repairs=list(loaded.repairs), problems=notes)
    if loaded.problem:
        report.problems.append(loaded.problem)
    if key is None:
        report.problems.append(_("could not tell which lesson this notebook belongs to (no minidl metadata, "
                                 "no lesson in its name, no check calls)"))
        return report
    exercises = list(LESSONS[key].exercises)
    if nb is None:
        report.results = [zero(e, "error", _("the notebook could not be read: {problem}").format(problem=loaded.problem))
                          for e in exercises]
        return report
    report.repairs += notebook.diagnose(nb, key)
    with tempfile.TemporaryDirectory(prefix="minidl-grade-", ignore_cleanup_errors=True) as tmp:
        tmp = pathlib.Path(tmp)
        os.chmod(tmp, 0o711)  # learner processes may reach their own folder, not list others'
        scratch = tmp / secrets.token_hex(12)
        scratch.mkdir()
        run = kernel.execute(nb, [e.name for e in exercises], scratch, limits.cell, limits.notebook,
                               kernel_confinement(limits))
        report.problems += run.problems
        if hidden and not offline_possible():  # what a learner's code could send: the hidden cases
            report.problems.append(_("learner code could reach the network while it was graded: this machine lets the "
                                     "grader make no network namespace (grade as root, or allow unprivileged user "
                                     "namespaces)"))
        report.seconds = run.seconds
        public, secret = expected_values(key, hidden) if expected is None else expected
        attempts = []  # one per exercise the notebook defines
        for exercise in exercises:
            state = run.definitions.get(exercise.name, "missing")
            if state != "ok":
                note = (missing_note(exercise.name, run.callables) if state == "missing"
                        else _("{name} could not be taken out of the notebook ({state})").format(name=exercise.name,
                                                                                                  state=state))
                report.results.append(zero(exercise, "missing", note))
                continue
            attempts.append(prepare(exercise, public[exercise.id], secret[exercise.id] if hidden else None))
        checked = check_in_worker(attempts, scratch / "defs", tmp, limits)
        order = {e.id: i for i, e in enumerate(exercises)}
        report.results = sorted(report.results + checked, key=lambda r: order[r.exercise])
    return report


def check_in_worker(attempts: list, defs: pathlib.Path, tmp: pathlib.Path, limits: Limits) -> list[Result]:
    """Run each exercise's cases in a confined worker, each exercise in a child process of its
    own with its own time budget (see worker.py), and judge what comes back (plain trees only)."""
    if not attempts:
        return []
    request = tmp / "request.pt"  # the grader's: readable, not writable, by the worker
    torch.save({"jobs": [{"exercise": a.exercise.id, "definition": str(defs / f"{a.exercise.name}.pkl"),
                          "cases": a.cases, "case_seconds": a.seconds, "seconds": a.budget} for a in attempts]}, request)
    os.chmod(request, 0o644)
    box = tmp / secrets.token_hex(12)  # the worker's own folder, for its answers
    box.mkdir()
    total = sum(a.budget for a in attempts)
    env = policy.learner_env()
    env.update(PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore", TQDM_DISABLE="1")
    command = worker_confinement(limits, total).prefix(home=str(box), own=(str(box),)) + [
        sys.executable, "-m", "autograder.worker", str(request), str(box)]
    with open(tmp / "worker.log", "wb") as err:
        proc = subprocess.Popen(command, cwd=box, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
        try:
            proc.wait(timeout=total + 5 * len(attempts) + 60)
        except subprocess.TimeoutExpired:
            pass
        finally:
            kill_group(proc)
    try:
        outcomes = json.loads((box / "outcomes.json").read_text())
    except (OSError, ValueError):
        outcomes = []
    return [answer(a, outcomes[i] if i < len(outcomes) else "lost", box / f"{i}.pt", box / f"{i}.log")
            for i, a in enumerate(attempts)]


def answer(attempt, code, path: pathlib.Path, log: pathlib.Path) -> Result:
    """One exercise's result from its child's exit code and answer file."""
    exercise = attempt.exercise
    if code == "lost":
        return zero(exercise, "error", _("the process checking {name} was lost (the checks of the "
                                         "exercises before it took all the time)").format(name=exercise.name))
    if code is None:
        return zero(exercise, "error", _("checking {name} took longer than its {seconds:g} s (the reference's "
                                         "time on every case, many times over), so it was stopped").format(
                                             name=exercise.name, seconds=attempt.budget))
    if code != 0 or not path.exists():
        return zero(exercise, "error", _("your {name} crashed the process that checks it ({reason})").format(
            name=exercise.name, reason=crash_reason(code, log)))
    try:
        answer_data = torch.load(path, weights_only=True)
        got, ratios, tampered = answer_data["got"], answer_data["ratios"], answer_data["tampered"]
        if not isinstance(got, list) or len(got) != len(attempt.cases) or not isinstance(ratios, dict):
            raise ValueError("wrong number of outputs")
    except Exception:
        return zero(exercise, "error", _("the outputs of {name} could not be read back as plain data").format(
            name=exercise.name))
    if tampered:
        return zero(exercise, "error", _("your {name} replaced the grader's own code ({names}), so it scores 0").format(
            name=exercise.name, names=", ".join(tampered[:3])))
    try:
        return score(attempt, got, ratios)
    except Exception as e:  # outputs shaped like plain trees but not quite: the learner's doing
        return zero(exercise, "error", _("the outputs of {name} could not be judged ({error})").format(
            name=exercise.name, error=type(e).__name__))


def kill_group(proc: subprocess.Popen) -> None:
    """Kill the worker and every process it started (they share its session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    release(proc.pid)


def crash_reason(code: int, log: pathlib.Path) -> str:
    """Words for a checking process's exit: a signal, running out of memory or CPU time, or an exit code."""
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    if "MemoryError" in tail or "std::bad_alloc" in tail or "DefaultCPUAllocator: can't allocate" in tail:
        return _("it ran out of memory")
    if code == -signal.SIGXCPU or code == -signal.SIGKILL:
        return _("it used more CPU time than allowed, or was killed")
    if code < 0:
        return _("killed by signal {signal}").format(signal=signal.Signals(-code).name)
    return _("exit code {code}").format(code=code)
