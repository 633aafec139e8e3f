"""Batch grading: student ids from LMS names, nbgrader's tree, parallel workers, resuming after a kill."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from autograder import batch, cli, grading, policy, store
from autograder.catalog import LESSONS
from autograder.submission import discover

from .conftest import ROOT
from .test_hostile import GOOD, WRONG_ONE_HOT, build

SECRET = "batch-test-secret"


def test_discover_reads_nbgrader_trees_and_lms_folders(tmp_path):
    nb = nbformat.writes(build())
    for student in ("alice", "bob"):
        target = tmp_path / "course" / "submitted" / student / "01_tensors"
        target.mkdir(parents=True)
        (target / "01_tensors.ipynb").write_text(nb)
    subs, _ = discover(tmp_path / "course")
    assert [(s.student, s.lesson) for s in subs] == [("alice", "01_tensors"), ("bob", "01_tensors")]
    lms = tmp_path / "lms"
    (lms / "Jane Doe_12345_assignsubmission_file_").mkdir(parents=True)
    (lms / "Jane Doe_12345_assignsubmission_file_" / "01_tensors.ipynb").write_text(nb)
    (lms / "doe_john_777_888_01_tensors.ipynb").write_text(nb)
    (lms / "doe_john_777_999_01_tensors.ipynb").write_text(nb)  # a resubmission: the later upload counts
    os.utime(lms / "doe_john_777_888_01_tensors.ipynb", (1, 1))
    subs, notes = discover(lms)
    assert [(s.student, s.path.name) for s in subs] == [("Jane_Doe_12345", "01_tensors.ipynb"),
                                                        ("doe_john_777", "doe_john_777_999_01_tensors.ipynb")]
    assert notes and "graded doe_john_777_999_01_tensors.ipynb" in notes[0]


# -- the run and its outputs, with a stand-in for the workers --------------------------------------

def exercise(eid, score, max_score, status="checked", message=None, cases=10, passed_cases=None):
    passed = status == "checked" and score == max_score
    return {"id": eid, "score": score, "max_score": max_score, "passed": passed, "status": status,
            "message": message or ("all 10 cases passed" if passed else "checked"), "cases": cases,
            "passed_cases": cases if passed else (passed_cases if passed_cases is not None else cases - 2)}


def report(*exercises, problems=(), hidden=True):
    return {"notebook": "x.ipynb", "lesson": "01_tensors", "score": sum(e["score"] for e in exercises),
            "max_score": sum(e["max_score"] for e in exercises), "hidden_cases": hidden,
            "problems": list(problems), "repairs": [], "seconds": 1.0, "exercises": list(exercises),
            "feedback": ["<div>public feedback</div>"] * len(exercises)}


IDS = [e.id for e in LESSONS["01_tensors"].exercises]


def full(problems=(), hidden=True):
    return report(*(exercise(e.id, e.points, e.points) for e in LESSONS["01_tensors"].exercises),
                  problems=problems, hidden=hidden)


class Workers:
    """Stands in for the pool: returns the given result for each notebook, and counts the calls."""

    def __init__(self, results: dict):
        self.results, self.calls = results, []

    def __call__(self, tasks, expected, hidden, limits):
        assert set(expected) == {t.sub.lesson for t in tasks}
        for t in tasks:
            self.calls.append(t.name)
            yield t, self.results[t.name]


@pytest.fixture
def no_expected(monkeypatch):
    monkeypatch.setattr(grading, "expected_values", lambda key, hidden: ({}, {}))


def lms_folder(tmp_path, *names):
    folder = tmp_path / "downloads"
    folder.mkdir()
    for name in names:
        (folder / name).write_text(nbformat.writes(build()))
    return folder


def test_csvs_carry_problems_partial_credit_and_one_row_per_student(tmp_path, no_expected):
    folder = lms_folder(tmp_path, "doe_jane_101_9001_01_tensors.ipynb", "roe_rick_102_9002_01_tensors.ipynb")
    partial = report(exercise(IDS[0], 2, 2), exercise(IDS[1], 2.4, 3, passed_cases=8), exercise(IDS[2], 0, 2,
                     "error", "checking one_hot took longer than 12 s, so it was stopped"), exercise(IDS[3], 0, 3,
                     "missing", "patchify is not defined in the notebook"),
                     problems=["cell 4 ran longer than 3 s and was stopped", "the kernel died (it crashed)"])
    workers = Workers({"doe_jane_101_9001_01_tensors.ipynb": full(), "roe_rick_102_9002_01_tensors.ipynb": partial})
    rows = batch.run(folder, tmp_path / "grades.csv", limits=policy.Limits(), hidden=True, grader=workers)
    assert len(rows) == 8
    table = read_csv(tmp_path / "grades.csv")
    rick = [r for r in table if r["student"] == "roe_rick_102"]
    assert len(table) == 8 and len(rick) == 4
    assert all("cell 4 ran longer than 3 s" in r["problems"] and "kernel died" in r["problems"] for r in rick)
    assert rick[1]["message"] != "checked" and "hidden" in rick[1]["message"] and "2 of 10" in rick[1]["message"]
    assert all(r["hidden_cases"] == "True" for r in table)
    students = read_csv(tmp_path / "grades.students.csv")
    assert [(s["student"], float(s["score"]), float(s["max_score"])) for s in students] == [
        ("doe_jane_101", 10.0, 10.0), ("roe_rick_102", 4.4, 10.0)]
    assert "kernel died" in students[1]["notes"] and "01_tensors 4.4/10" in students[1]["lessons"]
    assert json.loads((tmp_path / "grades" / "roe_rick_102.json").read_text())["score"] == 4.4


def test_a_grader_failure_is_a_row_and_is_graded_again(tmp_path, no_expected):
    folder = lms_folder(tmp_path, "doe_jane_101_9001_01_tensors.ipynb")
    broken = Workers({"doe_jane_101_9001_01_tensors.ipynb": {"error": "KeyError: '02_broadcasting.expand'"}})
    rows = batch.run(folder, tmp_path / "grades.csv", hidden=True, grader=broken)
    assert [r["exercise"] for r in rows] == IDS
    assert all(r["status"] == "error" and "KeyError" in r["message"] for r in rows)
    assert not list((tmp_path / "grades").glob("*/*.json"))  # not stored: the next run grades it
    fixed = Workers({"doe_jane_101_9001_01_tensors.ipynb": full()})
    rows = batch.run(folder, tmp_path / "grades.csv", hidden=True, grader=fixed)
    assert fixed.calls == ["doe_jane_101_9001_01_tensors.ipynb"] and sum(float(r["score"]) for r in rows) == 10


def test_a_notebook_of_no_known_lesson_still_has_a_row(tmp_path, no_expected):
    folder = lms_folder(tmp_path)
    (folder / "jdoe_homework.ipynb").write_text(nbformat.writes(build(lesson=None)))
    rows = batch.run(folder, tmp_path / "grades.csv", hidden=True, grader=Workers({}))
    assert len(rows) == 1 and rows[0]["student"] == "jdoe_homework" and "which lesson" in rows[0]["message"]


def test_stored_grades_do_not_outlive_a_grader_change(tmp_path, no_expected, monkeypatch):
    folder = lms_folder(tmp_path, "doe_jane_101_9001_01_tensors.ipynb")
    workers = Workers({"doe_jane_101_9001_01_tensors.ipynb": full()})
    batch.run(folder, tmp_path / "grades.csv", hidden=True, grader=workers)
    batch.run(folder, tmp_path / "grades.csv", hidden=True, grader=workers)
    assert len(workers.calls) == 1  # unchanged: resumed from the store
    data = (folder / "doe_jane_101_9001_01_tensors.ipynb").read_bytes()
    before = store.digest(data, True)  # progress's cache key
    monkeypatch.setattr(policy, "grader_digest", lambda: "a-fixed-grader")
    assert store.digest(data, True) != before
    batch.run(folder, tmp_path / "grades.csv", hidden=True, grader=workers)
    assert len(workers.calls) == 2


def test_a_public_only_run_says_so_in_the_csv(tmp_path, no_expected):
    folder = lms_folder(tmp_path, "doe_jane_101_9001_01_tensors.ipynb")
    rows = batch.run(folder, tmp_path / "grades.csv", hidden=False,
                     grader=Workers({"doe_jane_101_9001_01_tensors.ipynb": full(hidden=False)}))
    assert {r["hidden_cases"] for r in read_csv(tmp_path / "grades.csv")} == {"False"} and len(rows) == 4
    assert read_csv(tmp_path / "grades.students.csv")[0]["hidden_cases"] == "False"


@pytest.fixture
def no_secret(tmp_path, monkeypatch):
    empty = tmp_path / "empty_secret"
    empty.write_text("")
    monkeypatch.delenv("AUTOGRADER_SECRET", raising=False)
    monkeypatch.setenv("AUTOGRADER_SECRET_FILE", str(empty))


def test_cli_refuses_public_only_scores_for_the_gradebook(tmp_path, no_secret, capsys):
    folder = lms_folder(tmp_path, "doe_jane_101_9001_01_tensors.ipynb")
    code = cli.main(["batch", str(folder), "--out", str(tmp_path / "g.csv"), "--gradebook",
                     f"sqlite:///{tmp_path / 'gb.db'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.splitlines()[0].startswith("PUBLIC CASES ONLY") and "--public-only-ok" in err
    assert not (tmp_path / "g.csv").exists()


def test_cli_refuses_grades_among_the_submissions(tmp_path, capsys):
    folder = lms_folder(tmp_path, "doe_jane_101_9001_01_tensors.ipynb")
    for out in (folder / "grades.csv", tmp_path / "downloads.csv"):  # the CSV, or its folder of JSON
        assert cli.main(["batch", str(folder), "--out", str(out)]) == 2
        assert "inside the submissions" in capsys.readouterr().err
    assert [p.name for p in folder.iterdir()] == ["doe_jane_101_9001_01_tensors.ipynb"]


def test_cli_reads_the_secret_file(tmp_path, no_secret, capsys, monkeypatch):
    secret = tmp_path / "s"
    secret.write_text("from-a-file")
    monkeypatch.setattr(batch, "run", lambda *a, **k: [])
    assert cli.main(["batch", str(lms_folder(tmp_path)), "--out", str(tmp_path / "g.csv"),
                     "--secret-file", str(secret)]) == 0
    assert capsys.readouterr().err.splitlines()[0] == f"hidden cases included (secret from {secret})"
    assert cli.main(["batch", str(tmp_path), "--secret-file", str(tmp_path / "nope")]) == 2


def test_batch_help_names_the_secret_the_gradebook_url_and_the_cluster(capsys):
    with pytest.raises(SystemExit):
        cli.main(["batch", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--secret-file FILE" in text and "AUTOGRADER_SECRET" in text and "postgresql+psycopg://" in text
    assert "--scheduler ADDRESS" in text and "--public-only-ok" in text


def test_stale_temporary_folders_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{batch.TMP_PREFIX}{dead.pid}-abc"
    alive = tmp_path / f"{batch.TMP_PREFIX}{os.getpid()}-abc"
    other = tmp_path / "minidl-grade-xyz"
    for folder in (stale, alive, other):
        (folder / "inner").mkdir(parents=True)
    batch.clean_stale(tmp_path)
    assert not stale.exists() and alive.exists() and other.exists()


def class_folder(tmp_path):
    """Four students: full marks, one exercise wrong, nothing done, and full marks in a copy of
    lesson 01's notebook saved under lesson 02's name; named as an LMS names them."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    notebooks = {
        "doe_jane_101_9001_01_tensors.ipynb": build(*GOOD.values()),
        "roe_rick_102_9002_01_tensors.ipynb": build(GOOD["contiguous_strides"], WRONG_ONE_HOT, GOOD["patchify"]),
        "poe_edgar_103_9003_01_tensors.ipynb": build(),
        "moe_max_104_9004_02_broadcasting.ipynb": build(*GOOD.values()),  # metadata: 01_tensors
    }
    for name, nb in notebooks.items():
        (folder / name).write_text(nbformat.writes(nb))
    return folder


def run_batch(folder, out, env, workers=2, cell_timeout=30):
    return subprocess.Popen([sys.executable, "-m", "autograder", "batch", str(folder), "--out", str(out),
                             "--workers", str(workers), "--cell-timeout", str(cell_timeout), "--timeout", "120"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def kill_after_the_first(proc: subprocess.Popen, store, at_least: int = 1) -> int:
    """Kill a batch run (its whole session) once it has stored ``at_least`` submissions; how many it stored."""
    deadline = time.monotonic() + 900
    while len(list(store.glob("*/*.json"))) < at_least and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    return len(list(store.glob("*/*.json")))


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_batch_grades_a_class_with_csvs_reports_and_the_learners_own_score(tmp_path, tool_env):
    folder = class_folder(tmp_path)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = dict(tool_env, AUTOGRADER_SECRET=SECRET, TMPDIR=str(temporary))

    whole = tmp_path / "whole.csv"
    proc = run_batch(folder, whole, env, workers=2)
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    assert "\r" not in stderr  # no progress bar when stderr is not a terminal
    assert stderr.splitlines()[0] == "hidden cases included (secret from $AUTOGRADER_SECRET)"
    rows = read_csv(whole)
    assert len(rows) == 4 * 4
    totals = {}
    for row in rows:
        totals[row["student"]] = totals.get(row["student"], 0) + float(row["score"])
    assert totals["doe_jane_101"] == 10 and 0 < totals["roe_rick_102"] < 10 and totals["poe_edgar_103"] == 0
    # the renamed copy: graded as its metadata says, and the row says why (no KeyError, no missing row)
    assert totals["moe_max_104"] == 10
    assert all("its file name says 02_broadcasting" in r["notes"] for r in rows if r["student"] == "moe_max_104")
    assert not any(r["notes"] for r in rows if r["student"] != "moe_max_104")
    assert len(read_csv(tmp_path / "whole.students.csv")) == 4
    reports = tmp_path / "whole"
    jane = json.loads((reports / "doe_jane_101.json").read_text())
    assert jane["score"] == 10 and jane["lessons"][0]["hidden_cases"] is True
    page = (reports / "roe_rick_102.html").read_text()
    assert "one_hot" in page and "BEGIN HIDDEN" not in page and "hidden=True" not in page
    assert "only public cases are shown" in page

    # (a run killed midway and resumed: tests/test_class.py, on a class of 32)

    # the learner's own `grade` gives the score the instructor's batch gave, once the secret is set
    os.environ["AUTOGRADER_SECRET"] = SECRET
    try:
        report = grading.grade_notebook(folder / "roe_rick_102_9002_01_tensors.ipynb",
                                        grading.Limits(cell=30, notebook=120))
    finally:
        os.environ.pop("AUTOGRADER_SECRET")
    assert report.hidden and report.score == pytest.approx(totals["roe_rick_102"])


@pytest.mark.slow
def test_progress_shows_every_lesson_and_grades_only_what_changed(tmp_path, tool_env):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    (lessons / "01_tensors.ipynb").write_text(nbformat.writes(build(*GOOD.values())))
    env = dict(tool_env, XDG_CACHE_HOME=str(tmp_path / "cache"))

    def progress():
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "autograder", "progress", str(lessons)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout, time.monotonic() - start

    first, first_seconds = progress()
    lines = {line.split()[0]: line for line in first.splitlines()[1:]}
    assert set(lines) == set(LESSONS) | {"course"}
    assert lines["01_tensors"].split()[1:6] == ["10", "/", "10", "4", "/"]
    assert "no 02_broadcasting.ipynb here" in lines["02_broadcasting"]
    again, again_seconds = progress()
    assert again == first and again_seconds < first_seconds  # unchanged: read from the cache


@pytest.mark.slow
def test_a_timed_out_cell_is_in_the_csv_and_not_on_the_terminal(tmp_path, tool_env):
    folder = tmp_path / "downloads"
    folder.mkdir()
    nb = build(*GOOD.values(), "while True:\n    pass")
    (folder / "doe_jane_101_9001_01_tensors.ipynb").write_text(nbformat.writes(nb))
    proc = run_batch(folder, tmp_path / "grades.csv", dict(tool_env, AUTOGRADER_SECRET=SECRET), workers=1,
                     cell_timeout=10)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    rows = read_csv(tmp_path / "grades.csv")
    assert len(rows) == 4 and all("cell 6 ran past its 10 s limit" in r["problems"] for r in rows)
    assert {r["student"] for r in rows} == {"doe_jane_101"}
    assert "Task exception was never retrieved" not in stderr and "Traceback" not in stderr, stderr
