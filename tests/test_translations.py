"""The translated editions come from the one English source: every prose cell and comment is
translated and current, the glossary is kept, the code is the English code, and a change to the
English is caught, naming the cell. (Their grading is in test_notebooks.py and test_browser.py.)"""

from __future__ import annotations

import csv
import io
import re
import pathlib
import shutil
import subprocess
import sys
import tokenize

import nbformat
import pytest

from autograder import build, translate

from .conftest import ROOT

KEYS = [key for key, _ in build.source_notebooks()]
LANGS = build.translations()


def test_the_course_has_a_chinese_edition():
    assert "zh" in LANGS


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("key", KEYS)
def test_every_cell_is_translated_current_and_on_the_glossary(key, lang):
    problems = translate.Lesson(key, lang).problems()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lang", LANGS)
def test_the_glossary_lists_each_term_once(lang):
    terms, problems = translate.glossary(lang)
    assert len(terms) >= 40 and not problems, problems


def code_without_comments(source: str) -> list[tuple[int, str]]:
    """A code cell's tokens, comments left out: what must be the same in every edition."""
    return [(t.type, t.string) for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type not in (tokenize.COMMENT, tokenize.NL)]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("key", KEYS)
def test_the_edition_shares_the_english_code(key, lang):
    english = nbformat.read(ROOT / "course" / "source" / key / f"{key}.ipynb", as_version=4)
    edition = nbformat.read(build.course_dir(lang) / "source" / key / f"{key}.ipynb", as_version=4)
    assert edition.metadata["minidl"] == {"lesson": key, "lang": lang}
    assert [c.cell_type for c in edition.cells] == [c.cell_type for c in english.cells]
    for index, (ours, theirs) in enumerate(zip(english.cells, edition.cells)):
        assert ours.metadata == theirs.metadata, f"cell {index}"
        if ours.cell_type != "code":
            continue
        if ours.metadata.get("minidl", {}).get("role") == "setup":  # its messages are in each language
            assert f'use_language("{lang}")' in theirs.source
        else:
            assert code_without_comments(ours.source) == code_without_comments(theirs.source), f"{key} cell {index}"


@pytest.fixture
def course_copy(tmp_path, monkeypatch):
    """The sources and translations copied, and translate.py pointed at the copy."""
    shutil.copytree(ROOT / "course" / "source", tmp_path / "course" / "source")
    shutil.copytree(ROOT / "course" / "translations", tmp_path / "course" / "translations")
    monkeypatch.setattr(translate, "ROOT", tmp_path)
    monkeypatch.setattr(translate, "TRANSLATIONS", tmp_path / "course" / "translations")
    return tmp_path


def edit_first(path: pathlib.Path, cell_type: str, change) -> tuple[int, str]:
    """Change the first cell of ``cell_type`` with a key; return its index and key."""
    nb = nbformat.read(path, as_version=4)
    index, cell = next((i, c) for i, c in enumerate(nb.cells)
                       if c.cell_type == cell_type and translate.key_of(c) and translate.translatable(c))
    change(cell)
    nbformat.write(nb, path)
    return index, translate.key_of(cell)


def test_a_changed_english_cell_is_named(course_copy):
    source = course_copy / "course" / "source" / "02_broadcasting" / "02_broadcasting.ipynb"
    index, key = edit_first(source, "markdown", lambda c: setattr(c, "source", c.source + "\n\nOne more sentence."))
    problems = translate.Lesson("02_broadcasting", "zh").problems()
    assert len(problems) == 1 and f"02_broadcasting cell {index} ({key}:" in problems[0], problems
    assert "the English changed after its translation" in problems[0]


def test_a_changed_comment_is_named_and_a_new_cell_has_no_translation(course_copy):
    source = course_copy / "course" / "source" / "01_tensors" / "01_tensors.ipynb"
    index, key = edit_first(source, "code", lambda c: setattr(c, "source", c.source + "\nx = 1  # a new comment"))
    nb = nbformat.read(source, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("A new paragraph about tensors."))
    nbformat.write(nb, source)
    problems = translate.Lesson("01_tensors", "zh").problems()
    assert any(f"01_tensors cell {index + 1} ({key}:" in p and "changed" in p for p in problems), problems
    assert any("01_tensors cell 1 (" in p and "has no key" in p for p in problems), problems
    translate.Lesson("01_tensors", "zh").sync()  # keys it and writes its entry, marked todo
    problems = translate.Lesson("01_tensors", "zh").problems()
    assert any("01_tensors cell 1 (p" in p and "not translated yet" in p for p in problems), problems


def test_a_missing_translation_is_named(course_copy):
    file = translate.Lesson("05_cnn", "zh").file
    entries = translate.read_entries(file)
    dropped = next(iter(entries))
    translate.write_entries(file, [e for k, e in entries.items() if k != dropped])
    problems = translate.Lesson("05_cnn", "zh").problems()
    assert len(problems) == 1 and f"({dropped}:" in problems[0] and "no translation" in problems[0], problems


def test_a_term_translated_two_ways_fails(course_copy):
    glossary = course_copy / "course" / "translations" / "zh" / "glossary.md"
    glossary.write_text(glossary.read_text() + "| tensor | 张量体 |\n")
    assert translate.glossary("zh")[1] == ["glossary.md: 'tensor' is translated two ways: 张量 and 张量体"]
    # ... and a cell whose translation uses another word for a term
    file = translate.Lesson("01_tensors", "zh").file
    entries = translate.read_entries(file)
    key, entry = next((k, e) for k, e in entries.items() if e.kind == "cell" and "梯度" in e.text)
    entry.text = entry.text.replace("梯度", "斜率")
    translate.write_entries(file, list(entries.values()))
    problems = translate.Lesson("01_tensors", "zh").problems()
    assert any(f"({key}:" in p and "'gradient'" in p and "梯度" in p for p in problems), problems


def test_comments_are_replaced_in_place_and_markers_kept():
    code = ("### BEGIN SOLUTION\n"
            "x = 1  # one\n"
            "# two\n"
            "s = '# not a comment'\n"
            "### END SOLUTION\n")
    assert [text for _, _, text in translate.comments(code)] == ["# one", "# two"]
    assert translate.with_comments(code, ["# 一", "# 二"]) == code.replace("# one", "# 一").replace("# two", "# 二")


@pytest.mark.slow
def test_one_batch_grades_every_chinese_edition_and_a_class_mixing_languages_alike(tmp_path, tool_env):
    """One ``batch`` run (2 workers, hidden cases on) of a class that mixes the editions: the
    Chinese instructor edition of every lesson gets full marks (the English ones are graded by
    ``grade`` in test_notebooks.py), every student edition, English and Chinese, zero without a
    grader error, and the same answers (lesson 01, two exercises solved and two
    not) get the same scores in an English and a Chinese notebook, each student's feedback in
    the language of their notebook."""
    from autograder.catalog import EXERCISES, LESSONS

    folder = tmp_path / "submitted"

    def submit(who: str, key: str, nb) -> None:
        (folder / who / key).mkdir(parents=True)
        nbformat.write(nb, folder / who / key / f"{key}.ipynb")

    for lang in ["en"] + LANGS:
        for key in KEYS:
            if lang != "en":
                submit(f"instructor-{lang}", key, nbformat.read(build.course_dir(lang) / "source" / key / f"{key}.ipynb", 4))
            submit(f"student-{lang}", key, nbformat.read(ROOT / "lessons" / build.edition(lang) / f"{key}.ipynb", 4))
    key = "01_tensors"
    solved = nbformat.read(ROOT / "course" / "source" / key / f"{key}.ipynb", as_version=4)
    answers = [i for i, c in enumerate(solved.cells) if c.metadata.get("nbgrader", {}).get("solution")][:2]
    for who, lang in (("ana", "en"), ("bo", "zh")):
        nb = nbformat.read(ROOT / "lessons" / build.edition(lang) / f"{key}.ipynb", as_version=4)
        for i in answers:
            nb.cells[i].source = solved.cells[i].source
        submit(who, key, nb)

    out = tmp_path / "grades.csv"
    # Two notebooks share the two cores here, so a cell takes up to twice its time alone: lesson 09's
    # training cell (74-118 s alone) passes the 120 s default. A TA gives each worker a core.
    proc = subprocess.run([sys.executable, "-m", "autograder", "batch", str(folder), "--out", str(out), "--workers", "2",
                           "--cell-timeout", "300"],
                          cwd=ROOT, env=dict(tool_env, AUTOGRADER_SECRET="ci-instructor-secret", LANG="C.UTF-8"),
                          capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_csv(out)

    def graded(who: str) -> dict[str, list[dict]]:
        by_lesson: dict[str, list[dict]] = {}
        for r in rows:
            if r["student"] == who:
                by_lesson.setdefault(r["lesson"], []).append(r)
        return by_lesson

    for lang in ["en"] + LANGS:
        full, empty = graded(f"instructor-{lang}"), graded(f"student-{lang}")
        assert sorted(empty) == KEYS and sorted(full) == ([] if lang == "en" else KEYS)
        for lesson in KEYS:
            ids = [e.id for e in LESSONS[lesson].exercises]
            assert [r["exercise"] for r in empty[lesson]] == ids
            assert lang == "en" or [r["exercise"] for r in full[lesson]] == ids
            for r in full.get(lesson, []):
                assert not r["problems"], r
                assert float(r["score"]) == float(r["max_score"]) > 0 and r["status"] == "checked", r
            for r in empty[lesson]:  # not implemented; an untrained model is measured, and scores 0
                trained = EXERCISES[r["exercise"]].threshold is not None
                assert float(r["score"]) == 0 and not r["problems"], r
                assert r["status"] == "not_implemented" or (trained and r["status"] == "checked"), r
    scores = {who: [(r["exercise"], r["score"], r["passed"]) for r in graded(who)[key]] for who in ("ana", "bo")}
    assert scores["ana"] == scores["bo"] and len(scores["ana"]) == 4, scores
    assert sorted(float(s) > 0 for _, s, _ in scores["ana"]) == [False, False, True, True], scores
    feedback = out.with_suffix("")
    assert not re.search(r"[\u4e00-\u9fff]", (feedback / "ana.html").read_text())
    assert re.search(r"[\u4e00-\u9fff]", (feedback / "bo.html").read_text())
    assert re.search(r"[\u4e00-\u9fff]", (feedback / "student-zh.html").read_text())


def read_csv(path: pathlib.Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
