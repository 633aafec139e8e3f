"""Grading a class: a folder of submissions, in parallel, resumable.

    python -m autograder batch DIR --out grades.csv [--workers N | --scheduler tcp://HOST:8786]

DIR is either nbgrader's ``submitted/`` tree (``[submitted/]<student>/<assignment>/*.ipynb``)
or a folder of notebooks downloaded from an LMS (see ``submission.py`` and ``lms.py`` for how
the student, the lesson and the attempt are told).

The run reads each notebook's bytes and hands them, with the expected values computed here once
per lesson, to ``grade_submission`` in a worker: a process of the local pool, or a Dask worker
(``cluster.py``). Workers write nothing of the course's; this process alone writes the store
(``grades/<student>/<lesson>.json``, atomically, keyed by ``store.digest``), then the outputs
(``outputs.py``): ``grades.csv`` (one row per student and exercise), ``grades.students.csv``
(one row per student), and per student ``grades/<student>.json`` and ``.html``. A run that is
killed and started again grades only the submissions without a current JSON, and ends with
exactly the files an uninterrupted run writes.
"""

from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import logging
import multiprocessing
import os
import pathlib
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator

from . import i18n, outputs, policy, store
from .catalog import LESSONS
from .i18n import _
from .submission import Submission, discover

TMP_PREFIX = "minidl-batch-"  # minidl-batch-<pid>-*: a grading process's temporary files


# -- in a worker: one submission, from its bytes ---------------------------------------------------

def clean_stale(base: pathlib.Path) -> None:
    """Remove the temporary folders of grading processes that are gone (killed runs or workers)."""
    for folder in base.glob(f"{TMP_PREFIX}*"):
        try:
            os.kill(int(folder.name.split("-")[2]), 0)
        except (ValueError, IndexError, ProcessLookupError):
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass  # alive, another user's


_prepared: list[str] = []  # this process's own temporary folder, once made


def prepare_process() -> None:
    """Once per grading process: its temporary files in a folder of its own (named by its pid,
    so that a later run removes it if this process is killed); asyncio's logger quiet (nbclient
    leaves 'Task exception was never retrieved' tracebacks behind a timed-out cell); the grader's
    variables out of the environment (hidden cases come with the expected values)."""
    if _prepared:
        return
    base = pathlib.Path(tempfile.gettempdir())
    clean_stale(base)
    own = pathlib.Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=base))
    os.chmod(own, 0o1777)  # like /tmp: learner processes (possibly another user) keep their files here too
    kept = policy.learner_env()
    os.environ.clear()
    os.environ.update(kept, TMPDIR=str(own))
    tempfile.tempdir = str(own)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    _prepared.append(str(own))


def submission_language(path: pathlib.Path) -> str:
    """The language a submission is graded in: ``MINIDL_LANG`` (batch --lang), else the notebook's own."""
    from .notebook import read

    nb = read(path).nb
    return i18n.environment_language() or (i18n.notebook_language(nb) if nb is not None else i18n.SOURCE_LANGUAGE)


def grade_submission(name: str, data: bytes, lesson: str, hidden: bool, limits: policy.Limits,
                     expected: tuple[dict, dict]) -> dict:
    """Grade one notebook given as its bytes, as ``lesson``, against ``expected`` (what
    ``grading.expected_values`` returns): ``Report.to_dict()`` plus each exercise's feedback
    HTML (public cases only), or ``{"error": ...}`` when the grader itself failed."""
    from .grading import grade_notebook

    prepare_process()
    try:
        with tempfile.TemporaryDirectory(prefix="minidl-submission-") as tmp:
            path = pathlib.Path(tmp) / name
            path.write_bytes(data)
            with i18n.speaking(submission_language(path)) as lang:  # its feedback in its own language
                report = grade_notebook(path, limits, hidden=hidden, expected=expected, lesson=lesson)
                feedback = [r._repr_html_() for r in report.results]
    except Exception as e:  # the grader's failure, not the learner's: said in the rows, graded again next run
        return {"error": f"{type(e).__name__}: {e}"[:500]}
    return report.to_dict() | {"feedback": feedback, "lang": lang}


# -- in this process: what to grade, and what came back -------------------------------------------

def failed_report(sub: Submission, hidden: bool, error: str) -> dict:
    """The rows of a submission the grader failed on: every exercise 0 with the reason; not stored."""
    exercises = LESSONS[sub.lesson].exercises if sub.lesson else []
    why = _("the grader failed on this notebook ({error}); it is graded again on the next run").format(error=error)
    return {"notebook": str(sub.path), "lesson": sub.lesson, "score": 0.0,
            "max_score": sum(e.points for e in exercises), "hidden_cases": hidden, "problems": [why],
            "repairs": [], "seconds": 0.0,
            "exercises": [{"id": e.id, "score": 0.0, "max_score": e.points, "passed": False, "status": "error",
                           "message": why, "cases": 0, "passed_cases": 0} for e in exercises]}


def unknown_lesson_report(sub: Submission, hidden: bool) -> dict:
    return failed_report(sub, hidden, _("no lesson")) | {"problems": [
        _("could not tell which lesson this notebook belongs to (no assignment folder, no minidl metadata, "
          "no lesson in its file name)")]}


def received(sub: Submission, result: dict, key: str, hidden: bool, out: pathlib.Path) -> dict:
    """Store what a worker sent back for ``sub`` (under ``key``, its digest); the report."""
    if "error" in result:
        print(_("error: {path}: {error}").format(path=sub.path, error=result["error"]), file=sys.stderr)
        return failed_report(sub, hidden, result["error"])
    report = result | {"notebook": str(sub.path), "student": sub.student, "digest": key}
    store.save(out, sub.student, sub.key, report)
    return report


@dataclasses.dataclass
class Task:
    """One submission to grade: what a worker needs, and the key its result is stored under."""

    sub: Submission
    data: bytes
    key: str

    @property
    def name(self) -> str:
        return self.sub.path.name


def plan(subs: list[Submission], out: pathlib.Path, hidden: bool) -> list[Task]:
    """The submissions without a current stored result."""
    tasks = []
    for sub in subs:
        if sub.lesson is None:
            continue
        data = sub.path.read_bytes()
        key = store.digest(data, hidden, sub.lesson)
        if not store.is_current(out, sub.student, sub.key, key):
            tasks.append(Task(sub, data, key))
    return tasks


# -- the local pool ---------------------------------------------------------------------------------

_expected: dict = {}


def _init(expected: dict) -> None:
    _expected.update(expected)
    prepare_process()


def _grade_here(name: str, data: bytes, lesson: str, hidden: bool, limits: policy.Limits) -> dict:
    return grade_submission(name, data, lesson, hidden, limits, _expected[lesson])


def local_pool(tasks: list[Task], expected: dict, hidden: bool, limits: policy.Limits,
               workers: int) -> Iterator[tuple[Task, dict]]:
    """Grade ``tasks`` on ``workers`` processes of this machine; (task, result) as each ends."""
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init, initargs=(expected,)) as pool:
        jobs = {pool.submit(_grade_here, t.name, t.data, t.sub.lesson, hidden, limits): t for t in tasks}
        for job in futures.as_completed(jobs):
            try:
                result = job.result()
            except Exception as e:  # the worker process died: said in the rows, graded again next run
                result = {"error": f"{type(e).__name__}: {e}"}
            yield jobs[job], result


Grader = Callable[[list[Task], dict, bool, policy.Limits], Iterator[tuple[Task, dict]]]


def run(folder: pathlib.Path, csv_path: pathlib.Path, workers: int = 1, limits: policy.Limits | None = None,
        hidden: bool | None = None, progress: bool | None = None, grader: Grader | None = None) -> list[dict]:
    """Grade what is left under ``folder`` (on ``grader``, default the local pool of ``workers``),
    then write the CSVs and the per-student files; returns the per-exercise rows."""
    from .grading import expected_values

    limits = limits or policy.Limits()
    hidden = bool(policy.secret()) if hidden is None else hidden
    out = csv_path.with_suffix("")
    clean_stale(pathlib.Path(tempfile.gettempdir()))
    subs, notes = discover(folder)
    for note in notes:
        print(_("note: {note}").format(note=note), file=sys.stderr)
    tasks = plan(subs, out, hidden)
    where = _("{workers} worker(s)").format(workers=workers) if grader is None else _("the cluster")
    print(_("{submissions} submissions from {students} students; {done} already graded, {todo} to grade on "
            "{where}").format(submissions=len(subs), students=len({s.student for s in subs}),
                              done=len(subs) - len(tasks), todo=len(tasks), where=where), file=sys.stderr)
    failed: dict[tuple[str, str], dict] = {}
    if tasks:
        from tqdm import tqdm

        expected = {key: expected_values(key, hidden) for key in sorted({t.sub.lesson for t in tasks})}
        grader = grader or (lambda *a: local_pool(*a, workers=workers))
        show = sys.stderr.isatty() if progress is None else progress
        with tqdm(total=len(tasks), unit="notebook", disable=not show) as bar:
            for task, result in grader(tasks, expected, hidden, limits):
                report = received(task.sub, result, task.key, hidden, out)
                if "digest" not in report:
                    failed[(task.sub.student, task.sub.key)] = report
                bar.update()
        clean_stale(pathlib.Path(tempfile.gettempdir()))  # the pool's processes are gone: their folders too
    return outputs.write(graded(subs, out, hidden, failed), out, csv_path)


def graded(subs: list[Submission], out: pathlib.Path, hidden: bool,
           failed: dict | None = None) -> list[tuple[Submission, dict]]:
    """Every submission with its report: stored and current, failed in this run, or why it was
    not graded."""
    failed = failed or {}
    result = []
    for sub in subs:
        if sub.lesson is None:
            result.append((sub, unknown_lesson_report(sub, hidden)))
            continue
        report = store.load(out, sub.student, sub.key)
        if (sub.student, sub.key) in failed:
            report = failed[(sub.student, sub.key)]
        elif report is None or report.get("digest") != store.digest(sub.path.read_bytes(), hidden, sub.lesson):
            report = failed_report(sub, hidden, _("it was not graded: the run was stopped or its worker lost"))
        result.append((sub, report))
    return result
