"""grade_this_notebook: the lesson's last cell grades the notebook as the CLI does, in JupyterLab
(the kernel's JPY_SESSION_NAME) and in Colab (the front-end's get_ipynb), and does nothing in a
headless run."""

from __future__ import annotations

import shutil
import sys
import types

import nbformat
import pytest

from autograder import selfgrade
from autograder.build import grade_cell

from .conftest import ROOT

WRONG_ONE_HOT = (
    "def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:\n"
    "    return torch.eye(num_classes, dtype=torch.float64)[labels]"
)


def student_with_wrong_one_hot(tmp_path):
    nb = nbformat.read(ROOT / "lessons" / "01_tensors.ipynb", as_version=4)
    [cell] = [c for c in nb.cells if c.source.startswith("def one_hot(")]
    cell.source = WRONG_ONE_HOT
    path = tmp_path / "01_tensors.ipynb"
    nbformat.write(nb, path)
    return path


def test_every_lesson_ends_with_the_grade_cell():
    for path in [*sorted((ROOT / "course" / "source").glob("*/*.ipynb")), *sorted((ROOT / "lessons").glob("*.ipynb"))]:
        last = nbformat.read(path, as_version=4).cells[-1]
        assert last.metadata.get("minidl", {}).get("role") == "grade" and last.source == grade_cell(), path


@pytest.mark.parametrize("variable", ["AUTOGRADER_COLLECT", "NBGRADER_EXECUTION"])
def test_headless_runs_do_nothing(monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    monkeypatch.setattr(selfgrade, "notebook_path", lambda: pytest.fail("looked for a notebook in a headless run"))
    assert selfgrade.grade_this_notebook() is None


def test_without_a_notebook_path_it_says_how_to_grade(monkeypatch, capsys):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("AUTOGRADER_COLLECT", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert selfgrade.grade_this_notebook() is None
    assert "python -m autograder grade" in capsys.readouterr().out


def test_an_unsaved_definition_is_found(tmp_path, monkeypatch):
    path = student_with_wrong_one_hot(tmp_path)
    ran = {"In": ["", "import torch", WRONG_ONE_HOT]}
    monkeypatch.setattr(selfgrade, "_user_ns", lambda: ran)
    assert selfgrade.unsaved(path) == []
    ran["In"].append(WRONG_ONE_HOT.replace("float64", "float32"))  # edited and run, not saved
    assert selfgrade.unsaved(path) == ["one_hot"]


def test_colab_grades_the_notebook_the_front_end_hands_over(tmp_path, monkeypatch):
    nb = nbformat.read(student_with_wrong_one_hot(tmp_path), as_version=4)
    downloads, graded = [], []
    colab = types.ModuleType("google.colab")
    colab._message = types.SimpleNamespace(blocking_request=lambda kind, request, timeout_sec: {"ipynb": nb}
                                           if kind == "get_ipynb" else None)
    colab.files = types.SimpleNamespace(download=downloads.append)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.delenv("AUTOGRADER_COLLECT", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.chdir(tmp_path / "..")

    def grade_notebook(path, limits):
        graded.append(nbformat.read(path, as_version=4))
        from autograder.grading import Report
        return Report(str(path), "01_tensors")

    monkeypatch.setattr("autograder.grading.grade_notebook", grade_notebook)
    shown = selfgrade.grade_this_notebook()
    written = tmp_path.parent / "01_tensors.ipynb"
    assert graded and graded[0].cells == nb.cells and downloads == [str(written)]
    assert not shown.link and "01_tensors.ipynb" in repr(shown)


@pytest.mark.slow
def test_jupyterlab_grades_the_saved_file_as_the_cli_does(tmp_path, monkeypatch):
    """A real grade: the notebook's own grade cell runs in the grader's run and does nothing
    there (no recursion); the wrong one_hot scores zero and its hint is shown."""
    path = student_with_wrong_one_hot(tmp_path)
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    monkeypatch.delenv("AUTOGRADER_COLLECT", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setattr(selfgrade, "save_in_jupyterlab", lambda p: selfgrade.unsaved(p))
    shown = selfgrade.grade_this_notebook()
    one_hot = next(r for r in shown.report.results if r.exercise == "tensors.one_hot")
    assert one_hot.points == 0 and "float64" in one_hot.message
    assert ("tensors.one_hot", one_hot.failures[0].hint) in shown.hints()
    assert shown.report.max_score > 0 and not shown.report.problems, shown.report.problems
    page = shown._repr_html_()
    assert "dtype float64" in page and "download='01_tensors.ipynb'" in page
