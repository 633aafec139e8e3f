"""The one submission lookup: student, lesson and attempt from LMS names, folders and metadata."""

from __future__ import annotations

import os

import nbformat
import pytest

from autograder import lms
from autograder.submission import choose_lesson, discover

from .test_hostile import build


def write(path, lesson="01_tensors", mtime=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(build(lesson=lesson)))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.mark.parametrize("stem, student, kind", [
    ("doe_jane_12345_67890_01_tensors", "doe_jane_12345", "canvas"),
    ("doejane_LATE_12345_67890_01_tensors-1", "doejane_12345", "canvas"),
    ("Lesson1_jdoe_attempt_2026-01-05-10-00-00_01_tensors", "jdoe", "blackboard"),
    ("jdoe_01_tensors", "jdoe", "plain"),
    ("Jane Doe_12345_assignsubmission_file_01_tensors", "Jane_Doe_12345", "moodle"),
])
def test_student_and_lms_from_file_names(stem, student, kind):
    named = lms.read_name(stem)
    assert (named.student, named.lms) == (student, kind)


def test_canvas_upload_order_decides_when_file_times_are_equal(tmp_path):
    # after `cp` or some unzip tools every file has the same time: the attachment id tells
    write(tmp_path / "doe_john_777_999_01_tensors.ipynb", mtime=1000)
    write(tmp_path / "doe_john_777_888_01_tensors.ipynb", mtime=1000)
    subs, notes = discover(tmp_path)
    assert [s.path.name for s in subs] == ["doe_john_777_999_01_tensors.ipynb"]
    assert "graded doe_john_777_999_01_tensors.ipynb" in notes[0] and "Canvas's upload order" in notes[0]
    assert subs[0].notes == (notes[0].split(": ", 1)[1],)  # said in the student's rows too


def test_canvas_resubmission_suffix_and_a_newer_file_time_of_an_older_upload(tmp_path):
    write(tmp_path / "doe_john_777_999_01_tensors.ipynb", mtime=2000)  # re-downloaded: newer time
    write(tmp_path / "doe_john_777_999_01_tensors-2.ipynb", mtime=1000)
    write(tmp_path / "doe_john_777_999_01_tensors-1.ipynb", mtime=1000)
    subs, notes = discover(tmp_path)
    assert [s.path.name for s in subs] == ["doe_john_777_999_01_tensors-2.ipynb"]
    assert len(subs[0].notes) == 2


def test_blackboard_attempt_dates_decide(tmp_path):
    write(tmp_path / "L1_jdoe_attempt_2026-01-05-10-00-00_01_tensors.ipynb", mtime=5000)
    write(tmp_path / "L1_jdoe_attempt_2026-01-06-09-00-00_01_tensors.ipynb", mtime=1000)
    subs, notes = discover(tmp_path)
    assert subs[0].path.name == "L1_jdoe_attempt_2026-01-06-09-00-00_01_tensors.ipynb"
    assert "Blackboard's attempt dates" in notes[0]


def test_no_order_is_said_honestly(tmp_path):
    folder = tmp_path / "Jane Doe_12345_assignsubmission_file_"
    write(folder / "01_tensors.ipynb", mtime=1000)
    write(folder / "01_tensors_final.ipynb", mtime=1000)
    subs, notes = discover(tmp_path)
    assert len(subs) == 1 and subs[0].student == "Jane_Doe_12345"
    assert "check by hand" in notes[0] and "newer" not in notes[0]
    write(folder / "01_tensors.ipynb", mtime=3000)
    _, notes = discover(tmp_path)
    assert "file time" in notes[0] and "check by hand" in notes[0]


def test_a_renamed_or_copied_notebook_is_graded_as_its_metadata_says(tmp_path):
    write(tmp_path / "jdoe_my_homework.ipynb", lesson="01_tensors")
    write(tmp_path / "rroe_02_broadcasting.ipynb", lesson="01_tensors")  # a copy of lesson 01's notebook
    subs, notes = discover(tmp_path)
    assert [(s.student, s.lesson) for s in subs] == [("jdoe_my_homework", "01_tensors"), ("rroe", "01_tensors")]
    assert subs[0].notes == ()
    assert "its file name says 02_broadcasting" in subs[1].notes[0] and "graded as 01_tensors" in subs[1].notes[0]
    assert any(n.startswith("rroe: its file name") for n in notes)


def test_nbgrader_assignment_folder_comes_first(tmp_path):
    write(tmp_path / "submitted" / "alice" / "02_broadcasting" / "02_broadcasting.ipynb", lesson="01_tensors")
    write(tmp_path / "submitted" / "bob" / "01_tensors" / "01_tensors.ipynb")
    subs, _ = discover(tmp_path)
    assert [(s.student, s.lesson, s.assignment) for s in subs] == [
        ("alice", "02_broadcasting", "02_broadcasting"), ("bob", "01_tensors", "01_tensors")]
    assert "its metadata says 01_tensors" in subs[0].notes[0] and subs[1].notes == ()


def test_choose_lesson():
    assert choose_lesson(None, None, None) == (None, [])
    assert choose_lesson(None, None, "01_tensors") == ("01_tensors", [])
    assert choose_lesson(None, "02_broadcasting", "02_broadcasting") == ("02_broadcasting", [])
    chosen, notes = choose_lesson("03_autograd", "01_tensors", "02_broadcasting")
    assert chosen == "03_autograd" and len(notes) == 2


def test_broken_notebook_still_found_by_its_name(tmp_path):
    (tmp_path / "jdoe_01_tensors.ipynb").write_text("{not json")
    subs, _ = discover(tmp_path)
    assert [(s.student, s.lesson) for s in subs] == [("jdoe", "01_tensors")]
