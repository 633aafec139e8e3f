"""The README's "Add an exercise", followed word for word in a temporary course repository.

``python -m autograder new extra.gelu`` scaffolds the declaration, its registration and the
notebook cells; the build refuses the scaffold (its reference is not written) and three
declaration mistakes, each with a message naming it; then the README's own declaration and
solution are written in, ``python -m autograder.build lessons`` builds the notebook, the README
catalogue and the student edition, nbgrader releases it, three students fetch and submit it
(right, the tanh approximation, untouched), and nbgrader's ``autograde`` and ``batch`` grade it
alike, hidden cases included.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from .conftest import ROOT
from .test_nbgrader import nbgrader
from .test_recipe import as_student

SECRET = "new-exercise-secret-42"
WRONG = ("import math\n\n\ndef gelu(x):\n"
         "    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))\n")


def readme_blocks() -> tuple[str, str]:
    """The declaration and the solution cell that README's "Add an exercise" shows."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Add an exercise"):text.index("## The catalogue")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    declaration = next(b for b in blocks if b.startswith("# course/exercises/extra.py"))
    solution = next(b for b in blocks if b.startswith("# the solution cell of"))
    return declaration, solution


def autograder(cwd, env, *args, ok=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)
    assert (proc.returncode == 0) == ok, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def build(repo, env, *args, ok=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "autograder.build", "--root", str(repo), *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=900)
    assert (proc.returncode == 0) == ok, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def solution_cell(nb) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if (c.metadata.get("nbgrader") or {}).get("grade_id") == "gelu")


def answer(path, source: str | None) -> None:
    """A student's answer written into the fetched notebook's solution cell (None: left untouched)."""
    if source is None:
        return
    nb = nbformat.read(path, as_version=4)
    solution_cell(nb).source = source
    nbformat.write(nb, path)


@pytest.mark.slow
def test_an_instructors_exercise_from_the_readme_is_built_released_and_graded_alike(tmp_path, tool_env):
    repo, exchange = tmp_path / "repo", tmp_path / "exchange"
    course = repo / "course"
    course.mkdir(parents=True)
    exchange.mkdir(mode=0o777)
    shutil.copy(ROOT / "course" / "nbgrader_config.py", course)
    shutil.copy(ROOT / "README.md", repo)  # its catalogue markers
    (course / ".autograder_secret").write_text(SECRET + "\n")
    env = dict(tool_env, NBGRADER_EXCHANGE=str(exchange), XDG_CACHE_HOME=str(tmp_path / "cache"))

    # scaffolded: the declaration, its registration, the lesson's notebook
    out = autograder(repo, env, "new", "extra.gelu").stdout
    key = re.search(r"source/(\d\d_extra)/", out).group(1)
    declaration_file, notebook = course / "exercises" / "extra.py", course / "source" / key / f"{key}.ipynb"
    assert declaration_file.exists() and notebook.exists()
    assert (course / "minidl.toml").read_text().splitlines()[-1] == 'exercises = ["exercises/extra.py"]'
    assert "extra.gelu" in autograder(repo, env, "list").stdout
    refused = build(repo, env, ok=False).stderr
    assert "extra.gelu: the reference fails its own cases" in refused and "not implemented" in refused

    # the README's declaration and solution, and three mistakes the build names
    declaration, solution = (b.replace("10_extra", key) for b in readme_blocks())
    mistakes = {
        "does not resolve": declaration.replace('"torch.nn.functional.gelu",', '"torch.nn.functional.gelux",'),
        "the reference fails its own cases": declaration.replace(
            "return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))", "return torch.nn.functional.gelu(x)"),
        "points must be more than 0": declaration.replace("points=2,", "points=0,"),
    }
    for words, text in mistakes.items():
        assert text != declaration, words
        declaration_file.write_text(text)
        refused = build(repo, env, ok=False).stderr
        assert f"{declaration_file}: extra.gelu: " in refused and words in refused, refused
    declaration_file.write_text(declaration)
    nb = nbformat.read(notebook, as_version=4)
    solution_cell(nb).source = solution.split("\n", 1)[1]
    tests = [c for c in nb.cells if c.metadata.get("minidl", {}).get("role") == "test"]
    nb.cells = [c for c in nb.cells if c not in tests]
    nbformat.write(nb, notebook)
    refused = build(repo, env, ok=False).stderr
    assert "the points do not add up" in refused and "test cells for: none" in refused
    nb.cells += tests
    nbformat.write(nb, notebook)

    # built: the test cell stamped, the README's catalogue, the student edition
    built = build(repo, env, "lessons")
    assert f"student edition: lessons/{key}.ipynb" in built.stdout
    stamped = nbformat.read(notebook, as_version=4)
    test = next(c for c in stamped.cells if c.metadata.get("minidl", {}).get("role") == "test")
    assert test.metadata["nbgrader"]["points"] == 2 and 'check("extra.gelu", gelu, hidden=True)' in test.source
    assert "| `extra.gelu` | GELU(x) = x * Phi(x) with torch.erf, as F.gelu |" in (repo / "README.md").read_text()
    student_edition = (repo / "lessons" / f"{key}.ipynb").read_text()
    assert "torch.erf" not in student_edition and "NotImplementedError" in student_edition

    # released with nbgrader, answered right, wrong and not at all, graded by nbgrader and batch
    nbgrader(course, env, "generate_assignment", key)
    nbgrader(course, env, "release_assignment", key)
    answers = {"right": solution.split("\n", 1)[1], "tanh": WRONG, "untouched": None}
    for student, source in answers.items():
        home = tmp_path / "home" / student
        home.mkdir(parents=True)
        as_student(home, env, student, "fetch_assignment", key, "--course=minidl", f"--Exchange.root={exchange}")
        answer(home / key / f"{key}.ipynb", source)
        as_student(home, env, student, "submit", key, "--course=minidl", f"--Exchange.root={exchange}")
    nbgrader(course, env, "collect", key)
    nbgrader(course, env, "autograde", key)
    graded = autograder(course, env, "batch", ".", "--out", "grades/extra.csv", "--gradebook",
                        "sqlite:///gradebook.db")
    assert graded.stderr.splitlines()[0].startswith("hidden cases included")

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        cells = {s: next((g.auto_score, g.manual_score) for g in gb.find_submission_notebook(key, key, s).grades
                         if g.name == "test_gelu") for s in answers}
    with open(course / "grades" / "extra.csv") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    for student, (auto, manual) in cells.items():  # nbgrader's autograde and batch agree
        assert auto == pytest.approx(manual, abs=1e-3) == pytest.approx(float(rows[student]["score"]), abs=1e-3)
    assert cells["right"][1] == 2 and rows["right"]["status"] == "checked"
    assert 0 < cells["tanh"][1] < 2 and "tanh approximation" in rows["tanh"]["message"] + \
        (course / "grades" / "extra" / "tanh.html").read_text()
    assert cells["untouched"][1] == 0 and rows["untouched"]["status"] == "not_implemented"


# -- cheap: the scaffold's second exercise, and what a declaration check names ---------------------------

def test_a_second_exercise_joins_the_first_ones_file_lesson_and_notebook(tmp_path):
    from autograder import scaffold

    path = tmp_path / "extra.py"
    path.write_text(scaffold.declaration(path, "extra.gelu", "10_extra"))
    text = scaffold.declaration(path, "extra.swish", "10_extra")
    namespace = {"__name__": "minidl_course_extra"}
    exec(compile(text, str(path), "exec"), namespace)
    assert [e.id for e in namespace["LESSON"].exercises] == ["extra.gelu", "extra.swish"]
    assert namespace["SWISH"].reference_path == "minidl_course_extra.swish"
    nb_path = tmp_path / "10_extra.ipynb"
    nbformat.write(scaffold.notebook(nb_path, "10_extra", "extra.gelu"), nb_path)
    nb = scaffold.notebook(nb_path, "10_extra", "extra.swish")
    assert [c.metadata["minidl"]["exercise"] for c in nb.cells if c.metadata.get("minidl", {}).get("role") == "test"] \
        == ["extra.gelu", "extra.swish"]


def test_a_declaration_check_names_each_mistake():
    import torch

    from autograder.course import exercise_problems
    from autograder.exercise import Case, Exercise, Group

    def cases(draw):
        yield Case("", (torch.ones(2),))

    wrong = Exercise("extra.gelu", "gelu", "(x) -> Tensor", (Group("values", 0, cases),), points=-1,
                     forbidden=("torch.nn.functional.gelu", "torch.nn.functionl.gelu"),
                     hints={"valeus:values": "a typo in the group"}, reference_at="torch.nn.functional.gelu")
    found = "\n".join(exercise_problems(wrong))
    assert "points must be more than 0" in found and "'values' has weight 0" in found
    assert "'valeus:values' names no group" in found and "'torch.nn.functionl.gelu' does not resolve" in found
    assert "torch.nn.functional.gelu' does not" not in found
