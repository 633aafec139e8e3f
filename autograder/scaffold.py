"""``python -m autograder new extra.gelu``: an instructor's own exercise, scaffolded.

Writes, in the course folder (the nearest holding ``nbgrader_config.py``, or ``--course``):

- ``exercises/<module>.py``, the declaration: the reference, a case generator, the exercise
  (points, tolerances, forbidden built-ins, hints) and its lesson; a second exercise of the same
  module is added to the same file and lesson;
- ``minidl.toml``, which registers the file (see ``course.py``);
- ``source/<NN>_<module>/<NN>_<module>.ipynb``, the lesson's notebook with the exercise's cells:
  its text, the solution cell (nbgrader replaces the solution by a stub in the student edition)
  and the check cell, which ``make notebooks`` fills and turns into nbgrader's test cell.

The reference starts as ``raise NotImplementedError``, and ``make notebooks`` refuses to build
until it is written: the scaffold is where the instructor starts, the build is what checks it.
"""

from __future__ import annotations

import json
import pathlib
import re
import tomllib

import nbformat

from .course import CONFIG

MARKER = "# `python -m autograder new` adds the next exercise of this lesson above this line."

HEADER = '''"""Lesson {key}: the instructor's own exercises, declared here and registered in ../{config}.

Each exercise is one declaration: the reference, the cases it is checked on, the tolerances,
the built-ins that are off-limits, hints and points. `make notebooks` checks the declaration
(the reference must pass its own cases as a learner's code would) and stamps the notebook's
test cells; `python -m autograder list` shows the exercises.
"""

from __future__ import annotations

import torch

from autograder.exercise import Case, Draw, Exercise, Group, Lesson

'''

BLOCK = '''
# -- {id} {rule}

def {name}(x: torch.Tensor) -> torch.Tensor:
    """The reference: what the learner's {name} must compute (same name, same signature)."""
    raise NotImplementedError("write the reference of {id} here")


def {name}_values(draw: Draw):
    """Random inputs of float32 and float64, one to three dimensions."""
    for _ in range(8):
        shape = draw.shape(draw.rng.randint(1, 3))
        yield Case("", (draw.randn(*shape, dtype=draw.dtype()),), size=len(shape))


def {name}_edges(draw: Draw):
    yield Case("", (torch.zeros(0),), size=0, note="an empty tensor")
    yield Case("", (torch.tensor(1.5, dtype=torch.float64),), size=0, note="a 0-d tensor")


{const} = Exercise(
    id="{id}",
    title="{name}",
    signature="(x) -> Tensor",
    builds="what the learner builds, in a few words (the README's catalogue shows it)",
    groups=(
        Group("values", 3, {name}_values, hint="Compare your formula with the lesson's, term by term."),
        Group("edge cases", 1, {name}_edges),
    ),
    points=2,
    forbidden=(),  # built-ins switched off while the learner's code runs, e.g. "torch.nn.functional.gelu"
    hints={{}},  # "group:symptom" or "symptom" -> a hint for that mistake, e.g. "values:nonfinite"
    reference_at=f"{{__name__}}.{name}",
)

'''

LESSON_LINE = '{marker}\nLESSON = Lesson("{key}", "{title}", "the instructor\'s own exercises", exercises=({const},))\n'


class ScaffoldError(Exception):
    pass


def lesson_key(module: str, lessons: dict) -> str:
    """The key of ``module``'s lesson: the one declared already, else the next number."""
    for key, lesson in lessons.items():
        if any(e.module == module for e in lesson.exercises):
            return key
    numbers = [int(k[:2]) for k in lessons if k[:2].isdigit()]
    return f"{max(numbers, default=0) + 1:02d}_{module}"


def declaration(path: pathlib.Path, exercise_id: str, key: str) -> str:
    """The declaration file's new text: the file made, or the exercise added to its lesson."""
    module, name = exercise_id.split(".")
    const = name.upper()
    block = BLOCK.format(id=exercise_id, name=name, const=const, rule="-" * max(3, 90 - len(exercise_id)))
    if not path.exists():
        return (HEADER.format(key=key, config=CONFIG) + block
                + LESSON_LINE.format(marker=MARKER, key=key, title=module.capitalize(), const=const))
    text = path.read_text()
    if MARKER not in text:
        raise ScaffoldError(f"{path} has no line {MARKER!r}: add {exercise_id} to it by hand")
    text = text.replace(MARKER, block.lstrip("\n") + MARKER, 1)
    added, n = re.subn(r"(exercises=\()([^)]*?)(,?\)\))", rf"\g<1>\g<2>, {const}\g<3>", text, count=1)
    if not n:
        raise ScaffoldError(f"{path}: no `exercises=(...)` in its LESSON: add {const} to it by hand")
    return added


def registered(config: pathlib.Path, file: str) -> str:
    """``minidl.toml``'s text with ``file`` in its list of declaration files."""
    listed = tomllib.loads(config.read_text()).get("exercises", []) if config.exists() else []
    if file not in listed:
        listed.append(file)
    return ("# The course's own exercises: declaration files, relative to this folder (see autograder/course.py)\n"
            f"exercises = {json.dumps(listed)}\n")


def exercise_cells(exercise_id: str) -> list[nbformat.NotebookNode]:
    """The exercise's text, its solution cell and its check (test) cell."""
    name = exercise_id.split(".")[1]
    text = nbformat.v4.new_markdown_cell(
        f"### Exercise: `{name}`\n\nSay what `{name}(x)` computes, with its formula, and what the check "
        "tests (shapes, dtypes, devices, edge cases).")
    solution = nbformat.v4.new_code_cell(
        f"def {name}(x: torch.Tensor) -> torch.Tensor:\n    ### BEGIN SOLUTION\n"
        f"    raise NotImplementedError(\"the instructor's solution of {exercise_id}\")\n    ### END SOLUTION\n",
        metadata={"nbgrader": {"grade": False, "grade_id": name, "locked": False, "schema_version": 3,
                               "solution": True, "task": False}})
    test = nbformat.v4.new_code_cell(metadata={"minidl": {"role": "test", "exercise": exercise_id}})
    return [text, solution, test]


def notebook(path: pathlib.Path, key: str, exercise_id: str) -> nbformat.NotebookNode:
    """The lesson's notebook with the exercise's cells added (before the grade cell, if any)."""
    if path.exists():
        nb = nbformat.read(path, as_version=4)
    else:
        nb = nbformat.v4.new_notebook(cells=[
            nbformat.v4.new_markdown_cell(metadata={"minidl": {"role": "badge"}}),
            nbformat.v4.new_code_cell(metadata={"minidl": {"role": "setup"}}),
            nbformat.v4.new_markdown_cell("## Goals\n\nWhat the learner builds in this lesson, and why.")])
    grade = [i for i, c in enumerate(nb.cells) if c.metadata.get("minidl", {}).get("role") == "grade"]
    at = grade[0] if grade else len(nb.cells)
    nb.cells[at:at] = exercise_cells(exercise_id)
    for cell in nb.cells:
        cell.pop("id", None)
    nb.nbformat_minor = 4
    return nb


def new(exercise_id: str, course: pathlib.Path) -> list[pathlib.Path]:
    """Scaffold ``exercise_id`` in ``course``; returns the files written."""
    from .catalog import EXERCISES, LESSONS

    if not re.fullmatch(r"[a-z_][a-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*", exercise_id):
        raise ScaffoldError(f"{exercise_id!r}: an exercise id is module.name (e.g. extra.gelu), both Python names")
    if exercise_id in EXERCISES:
        raise ScaffoldError(f"{exercise_id} is declared already")
    module = exercise_id.split(".")[0]
    if any(e.module == module and not e.reference_at for e in EXERCISES.values()):
        raise ScaffoldError(f"{module} is one of the course's own modules (minidl.{module}): choose another name")
    key = lesson_key(module, LESSONS)
    decl = course / "exercises" / f"{module}.py"
    nb_path = course / "source" / key / f"{key}.ipynb"
    texts = {decl: declaration(decl, exercise_id, key),
             course / CONFIG: registered(course / CONFIG, f"exercises/{module}.py"),
             nb_path: nbformat.writes(notebook(nb_path, key, exercise_id), version=4) + "\n"}
    for path, text in texts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(texts)
