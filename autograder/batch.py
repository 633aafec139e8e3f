"""Grading a class: a folder of submissions, in parallel, resumable.

    python -m autograder batch DIR --out grades.csv [--workers N]

DIR is either nbgrader's ``submitted/`` tree (``[submitted/]<student>/<assignment>/*.ipynb``)
or a folder of notebooks downloaded from an LMS, one per student and lesson, whose names
carry the student (Canvas ``doejane_12345_67890_01_tensors.ipynb``, Moodle
``Jane Doe_12345_assignsubmission_file_/01_tensors.ipynb``, Blackboard
``Lesson1_jdoe_attempt_2026-01-05-10-00-00_01_tensors.ipynb``, or just ``jdoe_01_tensors.ipynb``).

Next to ``grades.csv`` it writes ``grades/``: one JSON per submission (``<student>/<lesson>.json``,
written atomically, keyed by the notebook's hash), one JSON per student (``<student>.json``)
and one HTML feedback page per student (``<student>.html``, public cases only). A run that is
killed and started again grades only the submissions without a current JSON, and ends with
exactly the files an uninterrupted run writes. The CSV has one row per student and exercise.
"""

from __future__ import annotations

import concurrent.futures as futures
import csv
import dataclasses
import hashlib
import html
import json
import multiprocessing
import os
import pathlib
import re
import sys

from .catalog import LESSONS

FIELDS = ["student", "lesson", "exercise", "score", "max_score", "passed", "status", "message", "notebook"]


@dataclasses.dataclass(frozen=True)
class Submission:
    student: str
    lesson: str | None
    path: pathlib.Path
    assignment: str | None = None  # nbgrader's assignment folder, where there is one

    @property
    def key(self) -> str:
        return self.lesson or safe(self.path.stem)


def safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", text).strip("_.")[:80] or "unknown"


def lesson_in(text: str) -> str | None:
    """The lesson a file or folder name mentions ('..._01_tensors.ipynb' -> '01_tensors')."""
    return next((key for key in LESSONS if key in text), None)


def student_from_name(stem: str) -> str:
    """A student id from an LMS file name, without the lesson and the LMS's decorations."""
    name = stem
    for key in LESSONS:
        name = name.replace(key, "")
    if "_assignsubmission_" in name:  # Moodle: "Jane Doe_12345_assignsubmission_file_"
        name = name.split("_assignsubmission_")[0]
    elif "_attempt_" in name:  # Blackboard: "<assignment>_<user>_attempt_<date>_<file>"
        name = name.split("_attempt_")[0].split("_", 1)[-1]
    else:  # Canvas: "<lastfirst>[_LATE]_<user id>_<submission id>_<file>": up to the first number
        tokens = [t for t in re.split(r"[_\s]+", name) if t and t.upper() != "LATE"]
        number = next((i for i, t in enumerate(tokens) if t.isdigit()), None)
        name = "_".join(tokens[: number + 1] if number is not None else tokens)
    return safe(name)


def discover(folder: pathlib.Path) -> tuple[list[Submission], list[str]]:
    """Every submission under ``folder``, newest per student and lesson, and notes on what was skipped."""
    folder = folder / "submitted" if (folder / "submitted").is_dir() else folder
    notes, found = [], {}
    for path in sorted(folder.rglob("*.ipynb")):
        rel = path.relative_to(folder)
        if ".ipynb_checkpoints" in rel.parts:
            continue
        assignment = None
        if len(rel.parts) == 3:  # nbgrader: <student>/<assignment>/<notebook>
            student, lesson = safe(rel.parts[0]), lesson_in(rel.parts[1]) or lesson_in(path.name)
            assignment = rel.parts[1]
        elif len(rel.parts) == 2 and not lesson_in(rel.parts[0]):  # a folder per student (Moodle)
            student, lesson = student_from_name(rel.parts[0]), lesson_in(path.name)
        else:
            student, lesson = student_from_name(path.stem), lesson_in(path.name)
        sub = Submission(student, lesson, path, assignment)
        old = found.get((student, sub.key))
        if old is not None:
            newer, older = sorted([old, sub], key=lambda s: s.path.stat().st_mtime, reverse=True)
            notes.append(f"{student}: two notebooks for {sub.key}; grading the newer {newer.path.name}, "
                         f"not {older.path.name}")
            sub = newer
        found[(student, sub.key)] = sub
    return sorted(found.values(), key=lambda s: (s.student, s.key)), notes


def digest(path: pathlib.Path, hidden: bool) -> str:
    """What a stored result depends on: the notebook's bytes, hidden cases or not, the grader's code."""
    from .policy import grader_digest, secret

    key = hashlib.sha256((secret().value or "").encode()).hexdigest()[:12] if hidden else "public"
    return hashlib.sha256(path.read_bytes() + f"|{key}|{grader_digest()}".encode()).hexdigest()[:24]


def write_atomic(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def unit_file(out: pathlib.Path, sub: Submission) -> pathlib.Path:
    return out / sub.student / f"{sub.key}.json"


def done(out: pathlib.Path, sub: Submission, hidden: bool) -> bool:
    try:
        return json.loads(unit_file(out, sub).read_text()).get("digest") == digest(sub.path, hidden)
    except (OSError, ValueError):
        return False


# -- the pool: each process grades one submission at a time --------------------------------------

_expected: dict = {}


def _init(expected: dict) -> None:
    _expected.update(expected)
    from .policy import learner_env

    kept = learner_env()  # the pool's processes need no secret: hidden cases came with ``expected``
    os.environ.clear()
    os.environ.update(kept)


def grade_one(sub: Submission, out: pathlib.Path, hidden: bool, limits, key_digest: str) -> str:
    """Grade one submission and write its JSON (atomically); returns the student."""
    from .grading import grade_notebook

    report = grade_notebook(sub.path, limits, hidden=hidden, expected=_expected.get(sub.lesson))
    data = report.to_dict() | {"student": sub.student, "digest": key_digest}
    data["feedback"] = [r._repr_html_() for r in report.results]  # public cases only, by construction
    write_atomic(unit_file(out, sub), json.dumps(data, indent=1))
    return sub.student


def run(folder: pathlib.Path, csv_path: pathlib.Path, workers: int = 1, limits=None,
        hidden: bool | None = None, progress: bool | None = None) -> list[dict]:
    """Grade what is left under ``folder``, then write the CSV and the per-student files; the rows."""
    from .grading import Limits, expected_values
    from .policy import secret

    limits = limits or Limits()
    hidden = bool(secret()) if hidden is None else hidden
    out = csv_path.with_suffix("")
    subs, notes = discover(folder)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    todo = [s for s in subs if not done(out, s, hidden)]
    print(f"{len(subs)} submissions from {len({s.student for s in subs})} students; "
          f"{len(subs) - len(todo)} already graded, {len(todo)} to grade with {workers} worker(s)", file=sys.stderr)
    lessons = sorted({s.lesson for s in todo if s.lesson})
    expected = {key: expected_values(key, hidden) for key in lessons}
    if todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="notebook", disable=not (sys.stderr.isatty() if progress is None else progress))
        context = multiprocessing.get_context("spawn")
        with futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init, initargs=(expected,)) as pool:
            jobs = {pool.submit(grade_one, s, out, hidden, limits, digest(s.path, hidden)): s for s in todo}
            for job in futures.as_completed(jobs):
                sub = jobs[job]
                try:
                    job.result()
                except Exception as e:  # a grader failure: say so, keep going, retry on the next run
                    print(f"error: {sub.path}: {type(e).__name__}: {e}", file=sys.stderr)
                bar.update()
        bar.close()
    return write_outputs(subs, out, csv_path)


def write_outputs(subs: list[Submission], out: pathlib.Path, csv_path: pathlib.Path) -> list[dict]:
    """The CSV (one row per student and exercise), a JSON and an HTML page per student."""
    rows, students = [], {}
    for sub in subs:
        try:
            report = json.loads(unit_file(out, sub).read_text())
        except (OSError, ValueError):
            continue  # not graded (an error was printed): no row, so the next run grades it
        students.setdefault(sub.student, []).append(report)
        for e in report["exercises"]:
            rows.append({"student": sub.student, "lesson": report["lesson"] or sub.key, "exercise": e["id"],
                         "score": e["score"], "max_score": e["max_score"], "passed": e["passed"],
                         "status": e["status"], "message": e["message"], "notebook": str(sub.path)})
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    for student, reports in students.items():
        summary = {"student": student, "score": round(sum(r["score"] for r in reports), 4),
                   "max_score": sum(r["max_score"] for r in reports),
                   "lessons": [{k: v for k, v in r.items() if k != "feedback"} for r in reports]}
        write_atomic(out / f"{student}.json", json.dumps(summary, indent=1))
        write_atomic(out / f"{student}.html", feedback_page(student, reports))
    return rows


def write_gradebook(url: str, subs: list[Submission], out: pathlib.Path) -> int:
    """Write each exercise's score into nbgrader's gradebook as the manual score of its test cell
    (nbgrader counts a manual score over its own autograde score). A submission that nbgrader has
    not seen (an LMS download) is added to the gradebook first. Returns the grades written."""
    from nbgrader.api import Gradebook, MissingEntry

    written = 0
    with Gradebook(url) as gb:
        for sub in subs:
            try:
                report = json.loads(unit_file(out, sub).read_text())
            except (OSError, ValueError):
                continue
            assignment = sub.assignment or sub.lesson
            notebook = sub.path.stem if sub.assignment else sub.lesson
            try:
                gb.find_submission(assignment, sub.student)
            except MissingEntry:
                try:
                    gb.update_or_create_student(sub.student)
                    gb.add_submission(assignment, sub.student)
                except (MissingEntry, ValueError) as e:
                    print(f"gradebook: {sub.student}/{assignment} not written ({e}); run nbgrader "
                          "generate_assignment for it first", file=sys.stderr)
                    continue
            for e in report["exercises"]:
                try:
                    grade = gb.find_grade(f"test_{e['id'].split('.', 1)[1]}", notebook, assignment, sub.student)
                except MissingEntry:
                    print(f"gradebook: no test cell for {e['id']} in {assignment}/{notebook}", file=sys.stderr)
                    continue
                grade.manual_score = e["score"]
                written += 1
            gb.db.commit()
    return written


def feedback_page(student: str, reports: list[dict]) -> str:
    """One student's feedback: each lesson's exercises with the first failing public case."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Feedback for {html.escape(student)}</title>"
             "</head><body style='font-family:sans-serif;max-width:60em'>", f"<h1>Feedback for {html.escape(student)}</h1>"]
    for r in reports:
        parts.append(f"<h2>{html.escape(r['lesson'] or r['notebook'])}: {r['score']:g} / {r['max_score']:g}</h2>")
        if r["hidden_cases"]:
            parts.append("<p><i>The score includes hidden cases; only public cases are shown.</i></p>")
        for note in r["problems"] + r.get("repairs", []):
            parts.append(f"<p>&#9888; {html.escape(note)}</p>")
        for e, block in zip(r["exercises"], r.get("feedback", [])):
            parts.append(block if e["status"] not in ("missing", "error") else
                         f"<div style='border-left:4px solid #b35900;padding:4px 10px'><b>{html.escape(e['id'])}</b>: "
                         f"{e['score']:g}/{e['max_score']:g}, {html.escape(e['message'])}</div>")
            parts.append("<br>")
    parts.append("</body></html>")
    return "\n".join(parts)
