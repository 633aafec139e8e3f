"""An instructor's own exercises: declared in files of their course, not in autograder/catalog/.

A declaration file is a Python file that defines ``LESSON``, a ``Lesson`` of its own exercises
(``python -m autograder new extra.gelu`` writes one). It is registered in either of two ways:

- a path in the course's config, ``minidl.toml`` next to ``nbgrader_config.py``::

      exercises = ["exercises/extra.py"]       # relative to the course folder

- an entry point of an installed package (a course installed on a hub), in its pyproject.toml::

      [project.entry-points."minidl.exercises"]
      extra = "my_course.extra"                # a module that defines LESSON

The catalogue (``catalog/__init__.py``) adds these lessons to its own. It finds the course's
config from the working directory, as the secret is found (``policy.course_folders``), and
hands the files it loaded to every process it starts in ``$MINIDL_EXERCISES``: the grading
kernel, the checking worker and the reference process see the same exercises wherever they
run. ``problems`` is what ``make notebooks`` runs before it builds anything: a declaration
mistake fails there, with its file and exercise named, never in a grading run.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import pathlib
import sys
import tomllib
import types

from .exercise import Exercise, Lesson

CONFIG = "minidl.toml"
ENV = "MINIDL_EXERCISES"
ENTRY_POINTS = "minidl.exercises"


class DeclarationError(Exception):
    """A declaration file that cannot be loaded, or a lesson that clashes with another."""


def configured_files() -> list[pathlib.Path]:
    """The declaration files of ``$MINIDL_EXERCISES``, then of each course folder's ``minidl.toml``."""
    from .policy import course_folders

    files = [pathlib.Path(p) for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    for course in course_folders():
        config = course / CONFIG
        if config.is_file():
            try:
                listed = tomllib.loads(config.read_text()).get("exercises", [])
            except tomllib.TOMLDecodeError as e:
                raise DeclarationError(f"{config}: not valid TOML ({e})") from None
            files += [(course / p).resolve() for p in listed]
    return list(dict.fromkeys(f.resolve() for f in files))


def module_name(path: pathlib.Path) -> str:
    """The name a declaration file is imported under: ``minidl_course_<stem>``."""
    return f"minidl_course_{path.stem}"


def load_file(path: pathlib.Path, name: str | None = None) -> types.ModuleType:
    """Import the declaration file ``path`` (as ``module_name(path)`` unless ``name`` is given)."""
    name = name or module_name(path)
    if not path.is_file():
        raise DeclarationError(f"{path}: no such declaration file (listed in {CONFIG} or ${ENV})")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise DeclarationError(f"{path}: the declaration raised {type(e).__name__}: {e}") from e
    return module


def lesson_in(module: types.ModuleType, where: str) -> Lesson:
    lesson = getattr(module, "LESSON", None)
    if not isinstance(lesson, Lesson):
        raise DeclarationError(f"{where}: defines no LESSON (a Lesson of the exercises it declares)")
    return lesson


OWN: list[tuple[Lesson, str]] = []  # this process's own lessons, each with the file it was declared in
LOADED: list[pathlib.Path] = []  # those files (in the grader's digest)


def own_lessons() -> list[tuple[Lesson, str]]:
    """Every registered lesson with the file it was declared in; ``$MINIDL_EXERCISES`` then names
    the files loaded, for the processes this one starts."""
    files = configured_files()
    found = [(lesson_in(load_file(f), str(f)), str(f)) for f in files]
    for point in importlib.metadata.entry_points(group=ENTRY_POINTS):
        module = importlib.import_module(point.value)
        found.append((lesson_in(module, point.value), module.__file__))
    if files:
        os.environ[ENV] = os.pathsep.join(str(f) for f in files)
    OWN[:] = found
    LOADED[:] = [pathlib.Path(where) for _, where in found]
    return found


def merge(lessons: dict[str, Lesson], own: list[tuple[Lesson, str]]) -> dict[str, Lesson]:
    """The built-in lessons and the instructor's, in order of their keys; a clash is an error."""
    ids = {e.id for lesson in lessons.values() for e in lesson.exercises}
    merged = dict(lessons)
    for lesson, where in own:
        if lesson.key in merged:
            raise DeclarationError(f"{where}: lesson {lesson.key} is declared twice")
        clash = [e.id for e in lesson.exercises if e.id in ids]
        if clash:
            raise DeclarationError(f"{where}: exercise {', '.join(clash)} is declared twice")
        ids |= {e.id for e in lesson.exercises}
        merged[lesson.key] = lesson
    return dict(sorted(merged.items()))


# -- checks of a declaration, run by the build -------------------------------------------------------

def problems(lessons: list[tuple[Lesson, str]], source: pathlib.Path) -> list[str]:
    """Every mistake in the instructor's declarations, one line each naming its file and exercise:
    ids, points and weights, hints, forbidden names, the notebook's test cells, and the reference
    run on its own public cases as a learner's code is (in the sandbox)."""
    found = []
    for lesson, where in lessons:
        for e in lesson.exercises:
            found += [f"{where}: {e.id}: {p}" for p in exercise_problems(e)]
        found += [f"{where}: {p}" for p in notebook_problems(lesson, source)]
        if not found:
            found += [f"{where}: {e.id}: {p}" for e in lesson.exercises for p in reference_problems(e, where)]
    return found


def exercise_problems(e: Exercise) -> list[str]:
    """What is wrong in the declaration itself: its id, points, weights, hints and forbidden names."""
    from .sandbox import resolve

    found = []
    module, _, name = e.id.partition(".")
    if not (module.isidentifier() and name.isidentifier()):
        found.append("the id must be module.name, both Python names (the learner writes name)")
    if not e.reference_at and e.threshold is None:
        found.append("reference_at is not set: name the reference, e.g. reference_at=f\"{__name__}.gelu\"")
    if not e.points > 0:
        found.append(f"points must be more than 0, not {e.points!r}")
    if not e.groups:
        found.append("it has no groups of cases")
    found += [f"group {g.name!r} has weight {g.weight!r}: a weight must be more than 0" for g in e.groups
              if not g.weight > 0]
    groups = {g.name for g in e.groups}
    found += [f"the hint for {key!r} names no group of this exercise (groups: {', '.join(sorted(groups))})"
              for key in e.hints if ":" in key and key.split(":")[0] not in groups]
    found += [f"the forbidden name {n!r} does not resolve to anything (a typo, or a module that is not "
              "installed?)" for n in e.forbidden if "::" not in n and not resolve(n)]
    if e.reference_at and not found:
        try:
            e.reference()
        except Exception as err:
            found.append(f"reference_at {e.reference_at!r} does not resolve ({type(err).__name__}: {err})")
    return found


def notebook_problems(lesson: Lesson, source: pathlib.Path) -> list[str]:
    """The lesson's notebook must have one test cell per exercise: its points then add up to the
    lesson's, for nbgrader as for the autograder."""
    import nbformat

    path = source / lesson.key / f"{lesson.key}.ipynb"
    if not path.is_file():
        return [f"lesson {lesson.key} has no notebook {path} (python -m autograder new writes one)"]
    nb = nbformat.read(path, as_version=4)
    tested = [c.metadata["minidl"].get("exercise") for c in nb.cells
              if c.metadata.get("minidl", {}).get("role") == "test"]
    declared = [e.id for e in lesson.exercises]
    if sorted(tested) == sorted(declared):
        return []
    total = sum(e.points for e in lesson.exercises)
    counted = sum(e.points for e in lesson.exercises if e.id in tested)
    return [f"the points do not add up: lesson {lesson.key} declares {total:g} points over "
            f"{', '.join(declared)}, but {path.name}'s test cells count {counted:g} (test cells for: "
            f"{', '.join(tested) or 'none'}); each exercise needs exactly one test cell "
            "(metadata minidl.role = test, minidl.exercise = its id)"]


def reference_problems(e: Exercise, where: str) -> list[str]:
    """The reference, loaded afresh, checked on its own public cases as a learner's code is: it
    must pass them all (a reference that calls a forbidden built-in, draws random numbers, or
    depends on the device fails here)."""
    from . import attempt, oracle

    if e.threshold is not None:
        return []
    fresh = getattr(load_file(pathlib.Path(where), module_name(pathlib.Path(where)) + "_copy"),
                    e.reference_path.rpartition(".")[2])
    data = oracle.compute([e.id], hidden=False, devices=["cpu"])[e.id]
    plan = attempt.prepare(e, data)
    got, ratios = attempt.run(e, fresh, plan.cases, plan.seconds)
    result = attempt.score(plan, got, ratios)
    if result.passed:
        return []
    counted = f" ({result.passed_cases} of {result.cases} pass)" if result.status == "checked" else ""
    return [f"the reference fails its own cases{counted}: {result.message}"]
