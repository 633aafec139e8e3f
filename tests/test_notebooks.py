"""The course loop, for real: notebooks are clean and current, instructor editions score full
marks and student editions zero, through the CLI and through nbgrader's own autograde."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder import build
from autograder.catalog import LESSONS

from .conftest import ROOT

SOURCES = build.source_notebooks()
KEYS = [key for key, _ in SOURCES]
SECRET = "ci-instructor-secret"


def test_every_notebook_is_stamped_clean_and_valid():
    assert build.stamp_all(check_only=True) == [], "run `make notebooks`"
    for _, path in SOURCES:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path} has outputs"


def test_readme_catalogue_lists_every_exercise():
    readme = (ROOT / "README.md").read_text()
    assert build.stamp_readme(readme) == readme, "run `make notebooks`"
    for lesson in LESSONS.values():
        for exercise in lesson.exercises:
            assert f"`{exercise.id}`" in readme


def test_every_notebook_belongs_to_a_catalogued_lesson():
    assert KEYS and set(KEYS) <= set(LESSONS)


def test_lessons_are_the_current_student_editions(tmp_path):
    generated = build.generate_lessons(tmp_path)
    assert sorted(p.name for p in generated) == sorted(p.name for p in (ROOT / "lessons").glob("*.ipynb"))
    for path in generated:
        assert path.read_text() == (ROOT / "lessons" / path.name).read_text(), f"run `make lessons` ({path.name})"


def test_student_editions_hide_solutions_and_hidden_tests():
    for key in KEYS:
        text = (ROOT / "lessons" / f"{key}.ipynb").read_text()
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        assert "raise NotImplementedError()" in text


def grade(path, tmp_path, tool_env, secret=True):
    out = tmp_path / "report.json"
    env = dict(tool_env, AUTOGRADER_SECRET=SECRET) if secret else tool_env
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(path), "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text()), proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_cli_gives_the_instructor_edition_full_marks(key, tmp_path, tool_env):
    report, text = grade(ROOT / "course" / "source" / key / f"{key}.ipynb", tmp_path, tool_env)
    assert report["hidden_cases"] is True
    assert [e["id"] for e in report["exercises"]] == [e.id for e in LESSONS[key].exercises]
    assert report["score"] == report["max_score"] > 0, text
    assert "(100%)" in text


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_cli_gives_the_student_edition_zero_without_errors(key, tmp_path, tool_env):
    report, text = grade(ROOT / "lessons" / f"{key}.ipynb", tmp_path, tool_env)
    assert report["score"] == 0 and "(0%)" in text
    assert [e["id"] for e in report["exercises"]] == [e.id for e in LESSONS[key].exercises]
    from autograder.catalog import EXERCISES

    for exercise in report["exercises"]:
        trained = EXERCISES[exercise["id"]].threshold is not None  # an untrained model is measured, and scores 0
        assert exercise["status"] == "not_implemented" or (trained and exercise["status"] == "checked"), exercise


# nbgrader executes every instructor edition in the browser test (its Validate button, which fails
# unless every test cell has full marks) and lesson 01's student edition in test_recipe.py; here
# autograde records full marks and zero for a class-exercise lesson and a trained-model lesson.
NBGRADER_KEYS = ("03_autograd", "07_transformer")


@pytest.mark.slow
def test_nbgrader_autograde_records_full_marks_and_zero(tmp_path, tool_env):
    from nbgrader.api import Gradebook

    course = tmp_path / "course"
    shutil.copytree(ROOT / "course" / "source", course / "source")
    shutil.copy(ROOT / "course" / "nbgrader_config.py", course)
    env = dict(tool_env, AUTOGRADER_SECRET=SECRET)

    def nbgrader(*args):
        proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                              capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    for key in NBGRADER_KEYS:
        nbgrader("generate_assignment", key, "--force")
        for student, edition in (("instructor", course / "source"), ("learner", course / "release")):
            target = course / "submitted" / student / key
            target.mkdir(parents=True)
            shutil.copy(edition / key / f"{key}.ipynb", target)
        log = nbgrader("autograde", key, "--create", "--force")
        assert "[ERROR]" not in log, log[-3000:]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for key in NBGRADER_KEYS:
            full = gb.find_submission(key, "instructor")
            empty = gb.find_submission(key, "learner")
            assert full.max_score == sum(e.points for e in LESSONS[key].exercises)
            assert full.score == full.max_score, key
            assert empty.score == 0, key
