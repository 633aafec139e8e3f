"""The course loop, for real: notebooks are clean and current, instructor editions score full
marks and student editions zero, through the CLI and through nbgrader's own autograde."""

from __future__ import annotations

import json
import re
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
# Every lesson in every language: (language, lesson key)
EDITIONS = [(lang, key) for lang in ["en"] + build.translations() for key in KEYS]


def instructor(lang: str, key: str):
    return build.course_dir(lang) / "source" / key / f"{key}.ipynb"


def student(lang: str, key: str):
    return ROOT / "lessons" / build.edition(lang) / f"{key}.ipynb"


def student_editions(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.glob("**/*.ipynb"))


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
    build.generate_lessons(tmp_path)
    assert student_editions(tmp_path) == student_editions(ROOT / "lessons") == sorted(
        str(student(lang, key).relative_to(ROOT / "lessons")) for lang, key in EDITIONS)
    for name in student_editions(tmp_path):
        assert (tmp_path / name).read_text() == (ROOT / "lessons" / name).read_text(), f"run `make lessons` ({name})"


def test_student_editions_hide_solutions_and_hidden_tests():
    for lang, key in EDITIONS:
        text = student(lang, key).read_text()
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        assert "raise NotImplementedError()" in text


def grade(path, tmp_path, tool_env, secret=True):
    out = tmp_path / "report.json"
    env = dict(tool_env, AUTOGRADER_SECRET=SECRET) if secret else dict(tool_env)
    env["LANG"] = "C.UTF-8"  # the notebook's own language, not the machine's, speaks
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(path), "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text()), proc.stdout


# The student editions (zero without errors, both languages) and the Chinese instructor editions
# (full marks) are graded in one `batch` run of a class mixing the editions, in
# test_translations.py: the same grader on two workers, instead of one serial `grade` per notebook.
@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_cli_gives_the_instructor_edition_full_marks(key, tmp_path, tool_env):
    report, text = grade(instructor("en", key), tmp_path, tool_env)
    assert report["hidden_cases"] is True
    assert [e["id"] for e in report["exercises"]] == [e.id for e in LESSONS[key].exercises]
    assert report["score"] == report["max_score"] > 0, text
    assert "(100%)" in text


# nbgrader executes every Chinese instructor edition and lesson 01's English one in the browser test (its Validate button, which fails
# unless every test cell has full marks) and lesson 01's student edition in test_recipe.py; here
# autograde records full marks and zero for a class-exercise lesson (English) and a trained-model
# lesson (in Chinese, from course/zh, whose test cells and feedback speak Chinese).
NBGRADER_EDITIONS = (("en", "03_autograd"), ("zh", "07_transformer"))
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.slow
def test_nbgrader_autograde_records_full_marks_and_zero(tmp_path, tool_env):
    from nbgrader.api import Gradebook

    shutil.copytree(ROOT / "course", tmp_path / "course", ignore=shutil.ignore_patterns(
        "translations", "release", "submitted", "autograded", "feedback", "*.db", ".autograder_secret"))
    env = dict(tool_env, AUTOGRADER_SECRET=SECRET, LANG="C.UTF-8")

    def nbgrader(course, *args):
        proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                              capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    for lang, key in NBGRADER_EDITIONS:
        course = tmp_path / "course" / build.edition(lang)
        nbgrader(course, "generate_assignment", key, "--force")
        for who, edition in (("instructor", course / "source"), ("learner", course / "release")):
            target = course / "submitted" / who / key
            target.mkdir(parents=True)
            shutil.copy(edition / key / f"{key}.ipynb", target)
        log = nbgrader(course, "autograde", key, "--create", "--force")
        assert "[ERROR]" not in log, log[-3000:]
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            full = gb.find_submission(key, "instructor")
            empty = gb.find_submission(key, "learner")
            assert full.max_score == sum(e.points for e in LESSONS[key].exercises)
            assert full.score == full.max_score, key
            assert empty.score == 0, key
        if lang != "en":  # the test cells' reports and the feedback speak the edition's language
            graded = nbformat.read(course / "autograded" / "instructor" / key / f"{key}.ipynb", as_version=4)
            reports = [json.dumps(c.outputs, ensure_ascii=False) for c in graded.cells
                       if c.metadata.get("minidl", {}).get("role") == "test"]
            assert reports and all(CJK.search(r) for r in reports), reports[:1]
            nbgrader(course, "generate_feedback", key, "--force")
            feedback = (course / "feedback" / "instructor" / key / f"{key}.html").read_text()
            assert CJK.search(feedback)
