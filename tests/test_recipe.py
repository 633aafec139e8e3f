"""The README's JupyterHub recipe, followed word for word in a temporary course and exchange.

The secret is only in ``course/.autograder_secret`` (no variable set), as the README says to
keep it. Three students fetch lesson 01, work and submit: one solves everything, one submits
the notebook untouched, one memorised the public cases of ``contiguous_strides`` in a lookup
table. Every grader the recipe uses must count the hidden cases and agree: nbgrader's
``autograde``, ``batch --gradebook``, the feedback, ``export``, and ``grade`` and ``progress``.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

import minidl.tensors
from autograder import oracle

from .conftest import ROOT
from .test_hostile import GOOD, HEADER
from .test_nbgrader import nbgrader

LESSON = "01_tensors"
STUDENTS = ("solved", "untouched", "memorised")


def memorised_strides() -> str:
    """contiguous_strides as a table of the public cases' answers: right on them, wrong elsewhere."""
    cases = oracle.cases_and_expected(["tensors.contiguous_strides"])["tensors.contiguous_strides"]["cases"]
    table = {}
    for case in cases:
        try:
            table[repr(tuple(case.args[0]))] = minidl.tensors.contiguous_strides(*case.args)
        except Exception:  # noqa: BLE001 (a case that asks for an error: not memorised)
            pass
    return (f"TABLE = {table!r}\n\n\ndef contiguous_strides(shape):\n"
            "    return TABLE.get(repr(tuple(shape)), (1,) * len(shape))\n")


def work(path, student: str) -> None:
    if student == "untouched":
        return
    answers = {name: HEADER + source for name, source in GOOD.items()}  # the reference's own imports
    if student == "memorised":
        answers["contiguous_strides"] = memorised_strides()
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        grade_id = (cell.metadata.get("nbgrader") or {}).get("grade_id")
        if (cell.metadata.get("nbgrader") or {}).get("solution") and grade_id in answers:
            cell.source = answers[grade_id]
    nbformat.write(nb, path)


# A hub's single-user containers run as ``jovyan`` with the hub's user name in $JUPYTERHUB_USER,
# which nbgrader takes as the student's id; here every process is root, so the students' nbgrader
# is told it runs as jovyan.
AS_STUDENT = ("import sys, nbgrader.utils\nnbgrader.utils.get_osusername = lambda: 'jovyan'\n"
              "from nbgrader.apps.nbgraderapp import main\nsys.argv[0] = 'nbgrader'\nmain()")


def as_student(home, env, student, *args):
    proc = subprocess.run([sys.executable, "-c", AS_STUDENT, *args], cwd=home, env=dict(env, JUPYTERHUB_USER=student),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} as {student}:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"


def run(cwd, env, *args):
    proc = subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_the_jupyterhub_recipe_grades_hidden_cases_the_same_everywhere(tmp_path, tool_env):
    course, exchange = tmp_path / "course", tmp_path / "exchange"
    (course / "source").mkdir(parents=True)
    exchange.mkdir(mode=0o777)
    shutil.copytree(ROOT / "course" / "source" / LESSON, course / "source" / LESSON)
    shutil.copy(ROOT / "course" / "nbgrader_config.py", course)
    (course / ".autograder_secret").write_text("recipe-secret-0123\n")  # the README's only step for the secret
    env = dict(tool_env, NBGRADER_EXCHANGE=str(exchange))
    assert not any(k.startswith("AUTOGRADER_") for k in env)

    nbgrader(course, env, "generate_assignment", LESSON)
    nbgrader(course, env, "release_assignment", LESSON)
    for student in STUDENTS:
        home = tmp_path / "home" / student
        home.mkdir(parents=True)
        as_student(home, env, student, "fetch_assignment", LESSON, "--course=minidl", f"--Exchange.root={exchange}")
        work(home / LESSON / f"{LESSON}.ipynb", student)
        as_student(home, env, student, "submit", LESSON, "--course=minidl", f"--Exchange.root={exchange}")
    nbgrader(course, env, "collect", LESSON)
    nbgrader(course, env, "autograde", LESSON)
    batch = run(course, env, "batch", ".", "--out", "grades/01.csv", "--workers", "2",
                "--gradebook", "sqlite:///gradebook.db")
    assert batch.stderr.splitlines()[0].startswith("hidden cases included"), batch.stderr[:500]
    nbgrader(course, env, "generate_feedback", LESSON)
    nbgrader(course, env, "export")

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        grades = {s: {g.name: (g.auto_score, g.manual_score) for g in
                      gb.find_submission_notebook(LESSON, LESSON, s).grades if g.name.startswith("test_")}
                  for s in STUDENTS}
    for student, cells in grades.items():
        for name, (auto, manual) in cells.items():  # nbgrader's own autograde and batch agree on every cell
            assert auto == pytest.approx(manual, abs=1e-3), (student, name, auto, manual)
    assert all(manual == 0 for _, manual in grades["untouched"].values())
    assert all(cells["test_" + n][1] > 0 for cells in (grades["solved"],) for n in GOOD)
    memorised = grades["memorised"]["test_contiguous_strides"][1]
    assert 0 < memorised < 2, memorised  # public cases right, hidden cases wrong: hidden cases counted
    totals = {s: sum(m for _, m in cells.values()) for s, cells in grades.items()}
    assert totals["solved"] == 10

    with open(course / "grades.csv") as f:  # nbgrader export
        exported = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f) if row["assignment"] == LESSON}
    assert exported == pytest.approx(totals)
    for student in STUDENTS:  # the feedback shows the score each cell recorded
        page = next((course / "feedback" / student / LESSON).glob("*.html")).read_text()
        shown = [float(x) for x in re.findall(r"Score recorded for this cell: <b>([0-9.]+)</b>", page)]
        assert sum(shown) == pytest.approx(totals[student], abs=1e-3), (student, shown)
        assert "BEGIN HIDDEN TESTS" not in page

    submitted = course / "submitted" / "memorised" / LESSON / f"{LESSON}.ipynb"
    graded = run(course, env, "grade", str(submitted), "--json", str(tmp_path / "grade.json"))
    assert graded.stderr.splitlines()[0].startswith("hidden cases included")
    report = json.loads((tmp_path / "grade.json").read_text())
    assert {e["id"]: e["score"] for e in report["exercises"]}["tensors.contiguous_strides"] == pytest.approx(memorised)
    assert report["score"] == pytest.approx(totals["memorised"])
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(submitted, mine / f"{LESSON}.ipynb")
    progress = run(course, env, "progress", str(mine)).stdout
    assert re.search(rf"{LESSON}\s+{totals['memorised']:g} / 10", progress), progress
