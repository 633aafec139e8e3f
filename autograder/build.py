"""Build the notebooks from the one source of truth, the instructor notebooks in course/source.

    python -m autograder.build            stamp course/source/*/*.ipynb and README's catalogue in place
    python -m autograder.build --check    fail if a notebook is not stamped, clean and valid
    python -m autograder.build lessons    also regenerate lessons/ with nbgrader generate_assignment

Every language of the course gets its editions from the same source: the instructor notebooks in
course/<lang>/source and the student editions in lessons/<lang>/ (English, the source language, in
course/source and lessons/). Prose and comments come from course/translations/<lang>/ (see
translate.py), the stamped cells' words from the message catalogue (i18n.py); the code is the same.

Stamping fills the cells marked in their metadata (``{"minidl": {"role": ...}}``) from the
catalogue and pyproject.toml: the "Open in Colab" badge, the set-up cell, one test cell per
exercise (its check call, hidden-test block and nbgrader points), and the grade cell that ends
every lesson (added when missing). It also clears outputs, and
writes the catalogue of exercises into README.md between its two catalogue markers.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import tomllib

import nbformat

from . import course, i18n, translate
from .catalog import EXERCISES, LESSONS

ROOT = pathlib.Path(__file__).resolve().parent.parent
REPO = ROOT  # the course repository built: this one, or an instructor's own (--root)
SOURCE = ROOT / "course" / "source"
LESSONS_DIR = ROOT / "lessons"
README = ROOT / "README.md"


def use_root(root: pathlib.Path) -> None:
    """Build the course repository at ``root`` (its README.md, course/ and lessons/) instead of this one."""
    global REPO, SOURCE, LESSONS_DIR, README
    REPO = root.resolve()
    SOURCE, LESSONS_DIR, README = REPO / "course" / "source", REPO / "lessons", REPO / "README.md"
CATALOGUE_BEGIN = "<!-- catalogue: written by `make notebooks` from autograder/catalog; edit the declarations, not this -->"
CATALOGUE_END = "<!-- end of catalogue -->"


def repository() -> str:
    """The repository address, set in one place: pyproject.toml's [project.urls] Repository."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["urls"]["Repository"].rstrip("/")


def edition(lang: str) -> str:
    """Where a language's editions live, below course/ and lessons/: "" for English, "zh/" for Chinese."""
    return "" if lang == i18n.SOURCE_LANGUAGE else f"{lang}/"


def badge(key: str, lang: str = "en") -> str:
    repo = repository().removeprefix("https://github.com/")
    title = i18n.gettext_in(lang, LESSONS[key].title) if key in LESSONS else key
    return (
        f"# {key[:2]} · {title}\n\n"
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{repo}/blob/main/lessons/{edition(lang)}{key}.ipynb)"
    )


# The packages a Colab runtime brings and must keep: the set-up cell pins them to the versions
# installed, so that installing the course adds what is missing and never upgrades one of them.
KEEP = ("torch", "torchvision", "torchaudio", "numpy", "ipykernel", "ipython", "ipywidgets",
        "jupyter-client", "jupyter-core", "tornado", "traitlets", "notebook")


def literal(text: str) -> str:
    """``text`` as Python string literals, one per line of it (an f-string where it has {names})."""
    lines = text.split("\n")
    return "\n".join(("f" if "{" in line else "") + json.dumps(line + ("\n" if i < len(lines) - 1 else ""),
                                                              ensure_ascii=False)
                     for i, line in enumerate(lines))


def setup(lang: str = "en") -> str:
    """The set-up cell. In Colab, once per runtime, it installs the course package from the
    repository without changing a package the runtime has (``KEEP``); a failed install ends
    with what to do, not a traceback. Everywhere it then sets the language of the checks' reports,
    picks the device and seeds."""
    _ = functools.partial(i18n.gettext_in, lang)
    installing = literal(_("Installing the course package from {REPOSITORY} ..."))
    ready = literal(_("torch {torch.__version__}, computing on {device}"))
    failed = _("The course package could not be installed from {REPOSITORY}.\n"
               "What to do: check that this runtime is connected to the internet, then run this cell again.\n"
               "If it fails again, open the lesson anew from the course's repository page (its address may have changed),\n"
               "or work on your own machine: clone the repository and run `make lab`.")
    return (
        "# " + _("Set-up: run this cell first. In Colab it installs the course package once (about a minute).") + "\n"
        "import importlib.metadata, importlib.util, subprocess, sys, tempfile\n"
        "\n"
        f"REPOSITORY = \"{repository()}\"\n"
        "if \"google.colab\" in sys.modules and importlib.util.find_spec(\"autograder\") is None:\n"
        f"    print({installing})\n"
        "    with tempfile.NamedTemporaryFile(\"w\", suffix=\".txt\", delete=False) as keep:  # "
        + _("never upgrade these") + "\n"
        f"        for name in \"{' '.join(KEEP)}\".split():\n"
        "            try:\n"
        "                keep.write(f\"{name}=={importlib.metadata.version(name)}\\n\")\n"
        "            except importlib.metadata.PackageNotFoundError:\n"
        "                pass\n"
        "    pip = subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", \"-c\", keep.name,\n"
        "                          f\"minidl @ git+{REPOSITORY}\"], capture_output=True, text=True)\n"
        "    importlib.invalidate_caches()\n"
        "    if pip.returncode != 0:\n"
        "        class SetupFailed(Exception):\n"
        "            def _render_traceback_(self):  # " + _("IPython shows this message instead of a traceback") + "\n"
        "                return [str(self)]\n"
        "        raise SetupFailed(\n"
        "            f\"{pip.stderr.strip()[-1500:]}\\n\\n\"\n"
        + "\n".join("            " + line for line in literal(failed).splitlines()) + ")\n"
        "\n"
        "import torch\n"
        "from autograder import check, use_language\n"
        "from minidl.device import default_device, seed_everything\n"
        "\n"
        f"use_language(\"{lang}\")  # " + _("the language of the checks' reports") + "\n"
        "device = default_device()\n"
        "seed_everything(0)\n"
        f"print({ready})"
    )


def test_cell(exercise_id: str, lang: str = "en") -> str:
    e = EXERCISES[exercise_id]
    _ = functools.partial(i18n.gettext_in, lang)
    comment = _("Check your {name} ({points} points). Run this cell: the report says what to fix, and\n"
                "the number it ends with is the score that nbgrader's Validate button and the graders read.")
    return (
        "".join(f"# {line}\n" for line in comment.format(name=e.name, points=f"{e.points:g}").splitlines())
        + f"check(\"{e.id}\", {e.name}).points\n"
        "### BEGIN HIDDEN TESTS\n"
        f"check(\"{e.id}\", {e.name}, hidden=True).points\n"
        "### END HIDDEN TESTS"
    )


def grade_cell(lang: str = "en") -> str:
    _ = functools.partial(i18n.gettext_in, lang)
    comment = _("Done? Grade this notebook as the instructor's grader does: it saves the notebook, runs it again\n"
                "from the top and checks every exercise (a minute or two), then offers the file to submit.")
    return (
        "".join(f"# {line}\n" for line in comment.splitlines())
        + "from autograder.selfgrade import grade_this_notebook\n"
        "grade_this_notebook()"
    )


def stamp(nb: nbformat.NotebookNode, key: str, lang: str = "en") -> nbformat.NotebookNode:
    """Fill the stamped cells of ``nb`` (lesson ``key``) in ``lang``, clear outputs, set the metadata."""
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["minidl"] = {"lesson": key, "lang": lang}
    if not any(c.metadata.get("minidl", {}).get("role") == "grade" for c in nb.cells):
        nb.cells.append(nbformat.v4.new_code_cell(metadata={"minidl": {"role": "grade"}}))
    for cell in nb.cells:
        role = cell.metadata.get("minidl", {}).get("role")
        if role == "badge":
            cell.source = badge(key, lang)
        elif role == "setup":
            cell.source = setup(lang)
        elif role == "test":
            eid = cell.metadata["minidl"]["exercise"]
            cell.source = test_cell(eid, lang)
            cell.metadata["nbgrader"] = {
                "grade": True, "grade_id": f"test_{EXERCISES[eid].name}", "locked": True,
                "points": EXERCISES[eid].points, "schema_version": 3, "solution": False, "task": False,
            }
        elif role == "grade":
            cell.source = grade_cell(lang)
            cell.metadata["nbgrader"] = {"grade": False, "grade_id": "grade_this_notebook", "locked": True,
                                         "schema_version": 3, "solution": False, "task": False}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.pop("id", None)
    nbformat.validator.normalize(nb)
    return nb


def source_notebooks() -> list[tuple[str, pathlib.Path]]:
    return [(p.parent.name, p) for p in sorted(SOURCE.glob("*/*.ipynb")) if p.stem == p.parent.name]


def translations() -> list[str]:
    """The languages the course is translated into (those with a folder in course/translations)."""
    return sorted(p.name for p in (SOURCE.parent / "translations").glob("*") if p.name in i18n.LANGUAGES)


def course_dir(lang: str) -> pathlib.Path:
    """The nbgrader course folder of a language's editions: course/, course/zh/."""
    return SOURCE.parent / edition(lang)


def instructor_edition(nb: nbformat.NotebookNode, key: str, lang: str) -> tuple[nbformat.NotebookNode, list[str]]:
    """The instructor edition of lesson ``key`` in ``lang`` from its stamped English source ``nb``,
    and the cells left in English (no current translation: ``python -m autograder.translate check``)."""
    translated, english = translate.translated(nb, key, lang)
    return stamp(translated, key, lang), english


def dumps(nb: nbformat.NotebookNode) -> str:
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def catalogue() -> str:
    """The exercise catalogue as Markdown: one table per lesson, from the declarations."""
    parts = []
    for lesson in LESSONS.values():
        parts += [f"**{lesson.key[:2]} · {lesson.title}**: {lesson.builds}.", "",
                  "| exercise | you build | signature | points | off-limits while checked |", "|---|---|---|---|---|"]
        for e in lesson.exercises:
            forbidden = ", ".join(f"`{n}`" for n in e.forbidden if "::" not in n) or "—"
            cells = (f"`{e.id}`", e.builds, f"`{e.signature}`", f"{e.points:g}", forbidden)
            parts.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        parts.append("")
    return "\n".join(parts)


def stamp_readme(text: str) -> str:
    """README's text with the catalogue between its markers replaced by the current one."""
    return between(text, CATALOGUE_BEGIN, CATALOGUE_END, catalogue(), "README.md")


LESSONS_BEGIN = "<!-- lessons: written by `make notebooks` from autograder/catalog and its translation; edit those, not this -->"
LESSONS_END = "<!-- end of lessons -->"


def lessons_table(lang: str) -> str:
    """The lessons of a translated README (README.<lang>.md): title, what you build, Colab badge."""
    _ = functools.partial(i18n.gettext_in, lang)
    repo = repository().removeprefix("https://github.com/")
    rows = ["| # | " + _("lesson") + " | " + _("what you build") + " | Colab |", "|---|---|---|---|"]
    for key, _path in source_notebooks():
        lesson = LESSONS[key]
        url = f"https://colab.research.google.com/github/{repo}/blob/main/lessons/{edition(lang)}{key}.ipynb"
        rows.append(f"| {key[:2]} | {_(lesson.title)} | {_(lesson.builds)} | "
                    f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url}) |")
    return "\n".join(rows) + "\n"


def between(text: str, begin: str, end: str, inner: str, name: str) -> str:
    """``text`` with what lies between its lines ``begin`` and ``end`` replaced by ``inner``."""
    head, found, rest = text.partition(begin)
    if not found:
        raise ValueError(f"{name} has no line {begin!r}")
    _, found, tail = rest.partition(end)
    if not found:
        raise ValueError(f"{name} has no line {end!r}")
    return f"{head}{begin}\n{inner}{end}{tail}"


def stamp_all(check_only: bool = False) -> list[str]:
    """Stamp every source notebook and edition, README's catalogue and the translated READMEs'
    lesson tables; return the files that changed (or would)."""
    stale = []
    readmes = [(README, stamp_readme)] + [
        (REPO / f"README.{lang}.md", lambda text, lang=lang: between(text, LESSONS_BEGIN, LESSONS_END,
                                                                     lessons_table(lang), f"README.{lang}.md"))
        for lang in translations() if (REPO / f"README.{lang}.md").exists()]
    for readme, restamp in readmes:
        text = readme.read_text()
        new = restamp(text)
        if new != text:
            stale.append(str(readme.relative_to(REPO)))
            if not check_only:
                readme.write_text(new)
    for key, path in source_notebooks():
        text = path.read_text()
        nb = nbformat.reads(text, as_version=4)
        nb.nbformat_minor = 4  # stable: no cell ids, which nbgrader 0.9 does not keep
        nb = stamp(nb, key)
        editions = [(path, nb)]
        for lang in translations():
            translated, english = instructor_edition(nb, key, lang)
            editions.append((course_dir(lang) / "source" / key / f"{key}.ipynb", translated))
            if english and not check_only:
                print(f"{lang}: {len(english)} cells of {key} left in English (python -m autograder.translate check)")
        for target, edited in editions:
            new = dumps(edited)
            nbformat.validate(nbformat.reads(new, as_version=4))
            if not target.exists() or new != target.read_text():
                stale.append(str(target.relative_to(REPO)))
                if not check_only:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(new)
    return stale


def tool_env() -> dict[str, str]:
    """The environment for nbgrader's commands: this interpreter's bin first on PATH, because
    creating a gradebook shells out to ``alembic``."""
    bin_dir = str(pathlib.Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def generate_lessons(out: pathlib.Path = LESSONS_DIR) -> list[pathlib.Path]:
    """Run ``nbgrader generate_assignment`` on every lesson of every edition (in a scratch copy
    of the course) and copy the student editions to ``out`` (``out/zh/`` for Chinese)."""
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        course = pathlib.Path(tmp, "course")
        shutil.copytree(SOURCE.parent, course, ignore=shutil.ignore_patterns("release", "submitted", "autograded",
                                                                                 "feedback", "*.db", ".ipynb_checkpoints"))
        for lang in [i18n.SOURCE_LANGUAGE] + translations():
            folder = out / edition(lang)
            folder.mkdir(parents=True, exist_ok=True)
            for key, _ in source_notebooks():
                subprocess.run(
                    [sys.executable, "-m", "nbgrader", "generate_assignment", key, "--force", "--log-level=ERROR"],
                    cwd=course / edition(lang), check=True, capture_output=True, text=True, env=tool_env(),
                )
                student = course / edition(lang) / "release" / key / f"{key}.ipynb"
                target = folder / f"{key}.ipynb"
                target.write_text(dumps(nbformat.read(student, as_version=4)))
                written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", choices=["stamp", "lessons"], default="stamp")
    parser.add_argument("--check", action="store_true", help="only report notebooks that are not up to date")
    parser.add_argument("--root", type=pathlib.Path, help="the course repository to build (default: this one)")
    args = parser.parse_args(argv)
    if args.root:
        use_root(args.root)
    mistakes = course.problems(course.OWN, SOURCE)  # an instructor's own declarations, checked first
    for mistake in mistakes:
        print(f"declaration error: {mistake}", file=sys.stderr)
    if mistakes:
        return 1
    stale = stamp_all(check_only=args.check)
    for path in stale:
        print(f"{'stale' if args.check else 'stamped'}: {path}")
    if args.check:
        return 1 if stale else 0
    if args.what == "lessons":
        for path in generate_lessons(LESSONS_DIR):
            print(f"student edition: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
