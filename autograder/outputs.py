"""What a grading run hands the instructor, from the stored reports: the CSV with one row per
student and exercise, the CSV with one row per student (what an LMS imports), a JSON and an
HTML feedback page per student, and the scores in nbgrader's gradebook.

A report here is ``Report.to_dict()`` plus ``student`` (and ``digest`` once stored).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import html
import io
import json
import pathlib
import sys

from . import i18n
from .store import write_atomic
from .i18n import _

FIELDS = ["student", "lesson", "exercise", "score", "max_score", "passed", "status", "message", "problems",
          "notes", "hidden_cases", "notebook"]
STUDENT_FIELDS = ["student", "score", "max_score", "lessons", "hidden_cases", "notes", "id"]


def student_id(student: str) -> str:
    """The opaque id that stands for ``student`` on the class's insight pages: the same on every
    run with the same secret, and not computable from a name without it."""
    from .policy import secret

    key = (secret().value or "minidl-public").encode()
    return "s" + hmac.new(key, student.encode(), hashlib.sha256).hexdigest()[:8]


def message(e: dict) -> str:
    """An exercise's message; for partial credit whose failing cases are all hidden, what failed."""
    if e["status"] == "checked" and not e["passed"] and e["message"] in ("checked", ""):
        failed = e.get("cases", 0) - e.get("passed_cases", 0)
        return _("{failed} of {cases} cases failed, all of them hidden cases (not shown); "
                 "the public cases pass").format(failed=failed, cases=e.get("cases", 0))
    return e["message"]


def exercise_rows(student: str, key: str, notebook: str, report: dict, notes: tuple[str, ...]) -> list[dict]:
    """One row per exercise of a submission (one row saying why, when it has no exercises)."""
    common = {"student": student, "lesson": report.get("lesson") or key, "problems": "; ".join(report["problems"]),
              "notes": "; ".join(notes), "hidden_cases": report["hidden_cases"], "notebook": notebook}
    rows = [dict(common, exercise=e["id"], score=e["score"], max_score=e["max_score"], passed=e["passed"],
                 status=e["status"], message=message(e)) for e in report["exercises"]]
    return rows or [dict(common, exercise="", score=0, max_score=0, passed=False, status="error",
                         message="; ".join(report["problems"]) or _("nothing could be graded"))]


def csv_text(fields: list[str], rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def student_rows(graded: list[tuple[object, dict]]) -> list[dict]:
    """One row per student: the total, each lesson's score, and everything the rows say."""
    students: dict[str, dict] = {}
    for sub, report in graded:
        row = students.setdefault(sub.student, {"student": sub.student, "score": 0.0, "max_score": 0.0,
                                                "lessons": [], "hidden_cases": True, "notes": [],
                                                "id": student_id(sub.student)})
        row["score"] = round(row["score"] + report["score"], 4)
        row["max_score"] += report["max_score"]
        row["lessons"].append(f"{report.get('lesson') or sub.key} {report['score']:g}/{report['max_score']:g}")
        row["hidden_cases"] = row["hidden_cases"] and report["hidden_cases"]
        row["notes"] += list(sub.notes) + report["problems"]
    return [dict(r, lessons="; ".join(r["lessons"]), notes="; ".join(r["notes"])) for r in students.values()]


def students_csv(csv_path: pathlib.Path) -> pathlib.Path:
    """grades.csv -> grades.students.csv"""
    return csv_path.with_name(f"{csv_path.stem}.students.csv")


def write(graded: list[tuple[object, dict]], out: pathlib.Path, csv_path: pathlib.Path) -> list[dict]:
    """Both CSVs and each student's JSON and HTML; returns the per-exercise rows. ``graded``
    holds (submission, report) in the order of the rows."""
    rows = [row for sub, report in graded for row in exercise_rows(sub.student, sub.key, str(sub.path), report,
                                                                   sub.notes)]
    write_atomic(csv_path, csv_text(FIELDS, rows))
    write_atomic(students_csv(csv_path), csv_text(STUDENT_FIELDS, student_rows(graded)))
    by_student: dict[str, list[dict]] = {}
    for sub, report in graded:
        by_student.setdefault(sub.student, []).append(dict(report, notes=list(sub.notes)))
    for student, reports in by_student.items():
        summary = {"student": student, "score": round(sum(r["score"] for r in reports), 4),
                   "max_score": sum(r["max_score"] for r in reports),
                   "lessons": [{k: v for k, v in r.items() if k != "feedback"} for r in reports]}
        write_atomic(out / f"{student}.json", json.dumps(summary, indent=1))
        write_atomic(out / f"{student}.html", feedback_page(student, reports))
    return rows


def feedback_page(student: str, reports: list[dict]) -> str:
    """One student's feedback: each lesson's exercises with the first failing public case, in the
    language the student's notebooks were graded in (``lang`` of the reports; English when unset)."""
    lang = next((r["lang"] for r in reports if i18n.normalize(r.get("lang"))), i18n.SOURCE_LANGUAGE)
    with i18n.speaking(lang):
        return _feedback_page(student, reports, lang)


def _feedback_page(student: str, reports: list[dict], lang: str) -> str:
    title = _("Feedback for {student}").format(student=html.escape(student))
    code = "zh-CN" if lang == "zh" else lang
    parts = [f"<!DOCTYPE html><html lang='{code}'><head><meta charset='utf-8'><title>{title}</title>"
             "</head><body style='font-family:sans-serif;max-width:60em'>", f"<h1>{title}</h1>"]
    for r in reports:
        parts.append(f"<h2>{html.escape(r.get('lesson') or r['notebook'])}: {r['score']:g} / {r['max_score']:g}</h2>")
        if r["hidden_cases"]:
            parts.append("<p><i>" + _("The score includes hidden cases; only public cases are shown.") + "</i></p>")
        for note in r["problems"] + r.get("repairs", []) + r.get("notes", []):
            parts.append(f"<p>&#9888; {html.escape(note)}</p>")
        feedback = r.get("feedback", [])
        for i, e in enumerate(r["exercises"]):
            block = feedback[i] if i < len(feedback) else None
            parts.append(block if block and e["status"] not in ("missing", "error") else
                         f"<div style='border-left:4px solid #b35900;padding:4px 10px'><b>{html.escape(e['id'])}</b>: "
                         f"{e['score']:g}/{e['max_score']:g}, {html.escape(message(e))}</div>")
            parts.append("<br>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_gradebook(url: str, graded: list[tuple[object, dict]], public_only_ok: bool = False) -> int:
    """Write each exercise's score into nbgrader's gradebook as the manual score of its test cell
    (nbgrader counts a manual score over its own autograde score). A submission that nbgrader has
    not seen (an LMS download) is added to the gradebook first. A report graded on public cases
    only is skipped unless ``public_only_ok``. Returns the grades written."""
    from nbgrader.api import Gradebook, MissingEntry

    written = 0
    with Gradebook(url) as gb:
        for sub, report in graded:
            if "digest" not in report:
                continue  # not graded (the grader failed): nothing to write
            if not report["hidden_cases"] and not public_only_ok:
                print(f"gradebook: {sub.student}/{sub.key} not written: graded on public cases only",
                      file=sys.stderr)
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
