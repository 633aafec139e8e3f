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

from autograder import batch, grading
from autograder.catalog import LESSONS

from .conftest import ROOT
from .test_hostile import GOOD, WRONG_ONE_HOT, build

SECRET = "batch-test-secret"


@pytest.mark.parametrize("stem, student", [
    ("doe_jane_12345_67890_01_tensors", "doe_jane_12345"),
    ("doejane_LATE_12345_67890_01_tensors-1", "doejane_12345"),
    ("Lesson1_jdoe_attempt_2026-01-05-10-00-00_01_tensors", "jdoe"),
    ("jdoe_01_tensors", "jdoe"),
    ("Jane Doe_12345_assignsubmission_file_01_tensors", "Jane_Doe_12345"),
])
def test_student_ids_from_lms_file_names(stem, student):
    assert batch.student_from_name(stem) == student


def test_discover_reads_nbgrader_trees_and_lms_folders(tmp_path):
    nb = nbformat.writes(build())
    for student in ("alice", "bob"):
        target = tmp_path / "course" / "submitted" / student / "01_tensors"
        target.mkdir(parents=True)
        (target / "01_tensors.ipynb").write_text(nb)
    subs, _ = batch.discover(tmp_path / "course")
    assert [(s.student, s.lesson) for s in subs] == [("alice", "01_tensors"), ("bob", "01_tensors")]
    lms = tmp_path / "lms"
    (lms / "Jane Doe_12345_assignsubmission_file_").mkdir(parents=True)
    (lms / "Jane Doe_12345_assignsubmission_file_" / "01_tensors.ipynb").write_text(nb)
    (lms / "doe_john_777_888_01_tensors.ipynb").write_text(nb)
    (lms / "doe_john_777_999_01_tensors.ipynb").write_text(nb)  # a resubmission: the newer one counts
    os.utime(lms / "doe_john_777_888_01_tensors.ipynb", (1, 1))
    subs, notes = batch.discover(lms)
    assert [(s.student, s.path.name) for s in subs] == [("Jane_Doe_12345", "01_tensors.ipynb"),
                                                        ("doe_john_777", "doe_john_777_999_01_tensors.ipynb")]
    assert notes and "newer" in notes[0]


def class_folder(tmp_path):
    """Three students: full marks, one exercise wrong, nothing done; named as an LMS names them."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    notebooks = {
        "doe_jane_101_9001_01_tensors.ipynb": build(*GOOD.values()),
        "roe_rick_102_9002_01_tensors.ipynb": build(GOOD["contiguous_strides"], WRONG_ONE_HOT, GOOD["patchify"]),
        "poe_edgar_103_9003_01_tensors.ipynb": build(),
    }
    for name, nb in notebooks.items():
        (folder / name).write_text(nbformat.writes(nb))
    return folder


def run_batch(folder, out, env, workers=2):
    return subprocess.Popen([sys.executable, "-m", "autograder", "batch", str(folder), "--out", str(out),
                             "--workers", str(workers), "--cell-timeout", "30", "--timeout", "120",
                             "--exercise-timeout", "60"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_batch_grades_a_class_and_resumes_after_a_kill_with_the_same_grades(tmp_path, tool_env):
    folder = class_folder(tmp_path)
    env = dict(tool_env, AUTOGRADER_SECRET=SECRET)

    whole = tmp_path / "whole.csv"
    proc = run_batch(folder, whole, env, workers=2)
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    assert "\r" not in stderr  # no progress bar when stderr is not a terminal
    rows = read_csv(whole)
    assert len(rows) == 3 * 4
    totals = {}
    for row in rows:
        totals[row["student"]] = totals.get(row["student"], 0) + float(row["score"])
    assert totals["doe_jane_101"] == 10 and 0 < totals["roe_rick_102"] < 10 and totals["poe_edgar_103"] == 0
    reports = tmp_path / "whole"
    jane = json.loads((reports / "doe_jane_101.json").read_text())
    assert jane["score"] == 10 and jane["lessons"][0]["hidden_cases"] is True
    page = (reports / "roe_rick_102.html").read_text()
    assert "one_hot" in page and "BEGIN HIDDEN" not in page and "hidden=True" not in page
    assert "only public cases are shown" in page

    # killed as soon as the first submission is written, then started again
    resumed = tmp_path / "resumed.csv"
    proc = run_batch(folder, resumed, env, workers=1)
    deadline = time.monotonic() + 600
    while not list((tmp_path / "resumed").glob("*/*.json")) and time.monotonic() < deadline:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    graded_before = len(list((tmp_path / "resumed").glob("*/*.json")))
    assert 1 <= graded_before < 3
    proc = run_batch(folder, resumed, env, workers=1)
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    assert f"{graded_before} already graded" in stderr
    assert read_csv(resumed) == [dict(r, notebook=r["notebook"]) for r in rows]

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
