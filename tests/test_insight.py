"""``python -m autograder insight``: the class at a glance, checked against the CSV batch wrote.

A class of 18 students hands in lessons 01 and 02 (36 submissions) made of a dozen kinds of
answer: right, wrong, forbidden, unstable, stubs, a cell that never ends, a kernel that dies, a
file that is not a notebook. ``batch`` grades them for real (each distinct notebook once: the
stand-in pool hands the same report to every copy), then the pages' numbers are read back and
compared with the CSV and the stored reports, and the pages are opened in Chromium at a phone's
width. Screenshots go to build/browser-artifacts/insight-*.png.
"""

from __future__ import annotations

import collections
import csv
import html.parser
import inspect
import json
import os
import pathlib
import re
import time

import nbformat
import pytest

import minidl.broadcasting
from autograder import batch, cli, grading, insight, policy
from autograder.catalog import LESSONS

from .conftest import ROOT
from .test_hostile import GOOD, WRONG_ONE_HOT, build

SECRET = "insight-test-secret"
ARTIFACTS = ROOT / "build" / "browser-artifacts"
CHROMIUM = "/usr/bin/chromium"
STUB = "def {name}(*args, **kwargs):\n    raise NotImplementedError()\n"
GOOD2 = {e.name: inspect.getsource(getattr(minidl.broadcasting, e.name)) for e in LESSONS["02_broadcasting"].exercises}
IMPORTS2 = "from collections.abc import Sequence\n"
HOSTILE_TEXT = "<script>alert('x')</script> & <b>bold</b>"
ONE_HOT_FORBIDDEN = ("def one_hot(labels, num_classes):\n"
                     "    return torch.nn.functional.one_hot(labels, num_classes).float()\n")
ONE_HOT_RAISES = f"def one_hot(labels, num_classes):\n    raise ValueError({HOSTILE_TEXT!r})\n"
SOFTMAX_UNSTABLE = "def softmax(x, dim=-1):\n    e = x.exp()\n    return e / e.sum(dim=dim, keepdim=True)\n"
SHAPES_FORBIDDEN = "def broadcast_shapes(*shapes):\n    return tuple(torch.broadcast_shapes(*shapes))\n"


def lesson01(**replaced: str) -> nbformat.NotebookNode:
    return build(*{**GOOD, **replaced}.values())


def lesson02(*extra: str, **replaced: str) -> nbformat.NotebookNode:
    return build(IMPORTS2, *{**GOOD2, **replaced}.values(), *extra, lesson="02_broadcasting")


def stubs(names) -> dict[str, str]:
    return {n: STUB.format(name=n) for n in names}


# (kind, notebook, how many students hand it in); 18 students each lesson
LESSON01 = [("full", lesson01(), 5), ("wrong one_hot", lesson01(one_hot=WRONG_ONE_HOT), 4),
            ("forbidden one_hot", lesson01(one_hot=ONE_HOT_FORBIDDEN), 3),
            ("one_hot raises", lesson01(one_hot=ONE_HOT_RAISES), 1), ("stubs", lesson01(**stubs(GOOD)), 2),
            ("endless cell", build(*GOOD.values(), "while True:\n    pass"), 2),
            ("not a notebook", '{"cells": [ this is not JSON', 1)]
LESSON02 = [("full", lesson02(), 5), ("unstable softmax", lesson02(softmax=SOFTMAX_UNSTABLE), 5),
            ("forbidden broadcast_shapes", lesson02(broadcast_shapes=SHAPES_FORBIDDEN), 3),
            ("stubs", lesson02(**stubs(GOOD2)), 3),
            ("kernel dies", lesson02("import os\nos._exit(1)"), 2)]
STUDENTS = [f"{last}_{first}_{100 + i}" for i, (last, first) in enumerate(
    [("doe", "jane"), ("roe", "rick"), ("poe", "edgar"), ("moe", "maxim"), ("lee", "annika"), ("kim", "sunhee"),
     ("ray", "tomas"), ("fox", "amya"), ("orr", "benno"), ("ash", "evita"), ("bay", "idalia"), ("cho", "linnea"),
     ("dunn", "olamide"), ("eze", "obinna"), ("ford", "pilar"), ("gray", "quincy"), ("hale", "rosalind"),
     ("ives", "saulo")])]


def handed_in(plan) -> list[tuple[str, object]]:
    """The plan's notebooks, one per student in order."""
    out = [(kind, nb) for kind, nb, n in plan for _ in range(n)]
    assert len(out) == len(STUDENTS)
    return out


def once_per_notebook(tasks, expected, hidden, limits):
    """The local pool of two workers, grading each distinct notebook once and handing its report to
    every submission of the same bytes (they would all get the same grade)."""
    first = {}
    for task in tasks:
        first.setdefault((task.data, task.sub.lesson), task)
    reports = {(t.data, t.sub.lesson): result
               for t, result in batch.local_pool(list(first.values()), expected, hidden, limits, workers=2)}
    for task in tasks:
        yield task, reports[(task.data, task.sub.lesson)]


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """36 submissions graded by batch (hidden cases on); the CSV's path, and each student's kinds."""
    root = tmp_path_factory.mktemp("class")
    folder = root / "downloads"
    folder.mkdir()
    kinds: dict[str, dict[str, str]] = collections.defaultdict(dict)
    for key, plan in (("01_tensors", LESSON01), ("02_broadcasting", LESSON02)):
        order = STUDENTS if key == "01_tensors" else STUDENTS[::-1]  # the best of 01 are not the best of 02
        for i, (student, (kind, nb)) in enumerate(zip(order, handed_in(plan))):
            text = nb if isinstance(nb, str) else nbformat.writes(nb)
            (folder / f"{student}_{9000 + i}_{key}.ipynb").write_text(text)
            kinds[student][key] = kind
    os.environ["AUTOGRADER_SECRET"] = SECRET
    try:
        csv_path = root / "grades.csv"
        batch.run(folder, csv_path, limits=policy.Limits(cell=8, notebook=90), hidden=True, progress=False,
                  grader=once_per_notebook)
        insight.write(csv_path, root / "insight")
        yield csv_path, kinds
    finally:
        os.environ.pop("AUTOGRADER_SECRET", None)


# -- reading the pages back ----------------------------------------------------------------------------

class Tables(html.parser.HTMLParser):
    """Every table of a page: its class, caption, header and rows of cell texts, and the exercise
    section (h3) it sits under."""

    def __init__(self):
        super().__init__()
        self.tables, self.section, self.cell, self.in_caption, self.skip = [], "", None, False, 0

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"class": dict(attrs).get("class", ""), "section": self.section, "caption": "",
                                "header": [], "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self.cell = ""
        elif tag == "caption":
            self.in_caption = True
        elif tag == "h3":
            self.section = None
        elif tag == "details":
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            table = self.tables[-1]
            (table["header"] if tag == "th" else table["rows"][-1]).append(self.cell.strip())
            self.cell = None
        elif tag == "caption":
            self.in_caption = False
        elif tag == "details":
            self.skip -= 1
        elif tag == "table":
            self.tables[-1]["rows"] = [r for r in self.tables[-1]["rows"] if r]

    def handle_data(self, data):
        if self.section is None:
            self.section = data.strip()
        elif self.in_caption:
            self.tables[-1]["caption"] += data
        elif self.cell is not None and not self.skip:
            self.cell += data


def tables(path: pathlib.Path) -> list[dict]:
    parser = Tables()
    parser.feed(path.read_text())
    return parser.tables


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%"


def outcome(row: dict) -> str:
    score, most = float(row["score"]), float(row["max_score"])
    return "full" if score >= most - 1e-9 else "partial" if score > 0 else "zero"


# -- the numbers ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_pages_numbers_are_the_csvs(graded_class):
    csv_path, kinds = graded_class
    rows = read_csv(csv_path)
    assert len({(r["student"], r["lesson"]) for r in rows}) == 36
    ids = {r["student"]: r["id"] for r in read_csv(csv_path.with_name("grades.students.csv"))}
    assert len(set(ids.values())) == len(STUDENTS)
    stored = {(json.loads(p.read_text())["student"], json.loads(p.read_text())["lesson"]): json.loads(p.read_text())
              for p in csv_path.with_suffix("").glob("*/*.json")}
    pages = csv_path.parent / "insight"
    for key in ("01_tensors", "02_broadcasting"):
        lesson_rows = [r for r in rows if r["lesson"] == key]
        found = tables(pages / f"{key}.html")
        overview = found[0]
        assert overview["header"][:4] == ["exercise", "full", "partial", "zero"]
        for line in overview["rows"]:
            ex = [r for r in lesson_rows if r["exercise"] == line[0]]
            counts = collections.Counter(outcome(r) for r in ex)
            assert line[1:4] == [pct(counts[k], len(ex)) for k in ("full", "partial", "zero")], line
        # the first failures: per exercise, their counts are the CSV's rows that failed a check,
        # by the check group the CSV's message names, and each has the symptom the stored report has
        for table in (t for t in found if "failures" in t["class"]):
            ex = [r for r in lesson_rows if r["exercise"] == table["section"]]
            failed = [r for r in ex if r["status"] in ("checked", "forbidden") and outcome(r) != "full"]
            assert sum(int(line[1]) for line in table["rows"]) == len(failed)
            def symptom(r):
                return next(e["failure"]["symptom"] for e in stored[(r["student"], key)]["exercises"]
                            if e["id"] == r["exercise"])

            expected = collections.Counter("forbidden" if symptom(r) == "forbidden" else
                                           re.match(r"\[([^]]+)\]", r["message"]).group(1) for r in failed)
            shown = collections.Counter()
            for line in table["rows"]:
                shown["forbidden" if line[0].startswith("forbidden") else line[0].split(":")[0]] += int(line[1])
            assert shown == expected, table["section"]
        # the unattempted: the CSV's not_implemented rows
        unattempted = next(t for t in found if t["header"][:2] == ["exercise", "not implemented"])
        for line in unattempted["rows"]:
            assert int(line[1]) == sum(1 for r in lesson_rows if r["exercise"] == line[0]
                                       and r["status"] == "not_implemented")
        # the grader problems: exactly the students whose rows carry problems or an error
        problems = next(t for t in found if "problems" in t["class"])
        hit = {ids[r["student"]] for r in lesson_rows if r["problems"] or r["status"] == "error"}
        assert {line[0] for line in problems["rows"]} == hit
    # what the class got wrong, by name, as each kind of answer makes it
    l01, l02 = tables(pages / "01_tensors.html"), tables(pages / "02_broadcasting.html")
    failures = {t["section"]: {line[0]: int(line[1]) for line in t["rows"]} for t in l01 + l02
                if "failures" in t["class"]}
    assert failures["tensors.one_hot"]["forbidden: torch.nn.functional.one_hot"] == 3
    assert failures["tensors.one_hot"]["values: wrong values"] == 4
    assert failures["tensors.one_hot"]["values: raised an exception"] == 1
    assert failures["broadcasting.softmax"]["large inputs: NaN or inf"] == 5
    assert failures["broadcasting.broadcast_shapes"]["forbidden: torch.broadcast_shapes"] == 3
    problems01 = next(t for t in l01 if "problems" in t["class"])["rows"]
    assert collections.Counter(line[1] for line in problems01) == {"timeout": 2, "unreadable": 1}
    problems02 = next(t for t in l02 if "problems" in t["class"])["rows"]
    assert {line[1] for line in problems02} == {"crash"}
    died = {ids[s] for s, k in kinds.items() if k["02_broadcasting"] == "kernel dies"}
    assert {line[0] for line in problems02} == died


@pytest.mark.slow
def test_the_index_names_the_students_whose_scores_fall_and_no_one_by_name(graded_class):
    csv_path, kinds = graded_class
    rows = read_csv(csv_path)
    ids = {r["student"]: r["id"] for r in read_csv(csv_path.with_name("grades.students.csv"))}
    percent = collections.defaultdict(dict)
    for (student, lesson), group in insight.grouped([insight.Row(r["student"], r["lesson"], r["exercise"],
                                                                  float(r["score"]), float(r["max_score"]), "", "", [])
                                                     for r in rows], lambda r: (r.student, r.lesson)):
        percent[student][lesson] = 100 * sum(r.score for r in group) / sum(r.max_score for r in group)
    falling = {ids[s] for s, p in percent.items() if p["01_tensors"] - p["02_broadcasting"] > insight.FALL}
    pages = csv_path.parent / "insight"
    falls = next(t for t in tables(pages / "index.html") if "falls" in t["class"])
    assert {line[0] for line in falls["rows"]} == falling and falling
    lessons = next(t for t in tables(pages / "index.html") if t["header"][:2] == ["lesson", "handed in"])
    assert [line[:2] for line in lessons["rows"]] == [["01_tensors", "18"], ["02_broadcasting", "18"]]
    text = " ".join(p.read_text() for p in pages.glob("*.html"))
    for student in STUDENTS:
        assert not re.search(rf"\b{student.split('_')[1]}\b", text, re.IGNORECASE), student
    assert "<script>alert" not in text and "&lt;script&gt;alert(" in text  # the learner's text, escaped
    # --names shows them, through the CLI; batch --insight writes the same pages at the end of its run
    assert cli.main(["insight", str(csv_path), "--out", str(csv_path.parent / "named"), "--names"]) == 0
    named = " ".join(p.read_text() for p in (csv_path.parent / "named").glob("*.html"))
    assert "doe_<wbr>jane_<wbr>100" in named and ids["doe_jane_100"] not in named


@pytest.mark.slow
def test_batch_insight_writes_the_pages_at_the_end_of_a_run(graded_class, monkeypatch, capsys):
    csv_path, _ = graded_class
    monkeypatch.setenv("AUTOGRADER_SECRET", SECRET)
    out = csv_path.parent / "from-batch"
    assert cli.main(["batch", str(csv_path.parent / "downloads"), "--out", str(csv_path), "--insight", str(out)]) == 0
    captured = capsys.readouterr()
    assert "36 already graded, 0 to grade" in captured.err
    assert (out / "index.html").read_text() == (csv_path.parent / "insight" / "index.html").read_text()


# -- in a browser, at a phone's width -------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Debian's chromium at {CHROMIUM}")
def test_the_pages_in_chromium_plots_render_tables_sort_and_fit_a_phone(graded_class):
    playwright = pytest.importorskip("playwright.sync_api")
    from .test_browser import FLAGS

    csv_path, _ = graded_class
    pages = csv_path.parent / "insight"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            for width in (390, 1280):
                page = browser.new_page(viewport={"width": width, "height": 900})
                for name in ("index", "01_tensors", "02_broadcasting"):
                    page.goto((pages / f"{name}.html").as_uri())
                    images = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth])")
                    assert images and all(done and w > 100 for done, w in images), (name, images)
                    assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
                    wide = page.evaluate("[...document.querySelectorAll('.wrap')].filter(e => e.scrollWidth > "
                                         "e.clientWidth + 1).length")
                    assert wide == 0, (name, width)
                    page.screenshot(path=ARTIFACTS / f"insight-{name}-{width}.png", full_page=True)
                page.close()
            page = browser.new_page(viewport={"width": 390, "height": 900})
            page.goto((pages / "01_tensors.html").as_uri())
            column = "[...document.querySelector('table.sortable').tBodies[0].rows].map(r => r.cells[1].dataset.v)"
            before = [float(v) for v in page.evaluate(column)]
            header = page.locator("table.sortable").first.locator("th").nth(1)
            header.click()
            assert [float(v) for v in page.evaluate(column)] == sorted(before)
            header.click()
            assert [float(v) for v in page.evaluate(column)] == sorted(before, reverse=True)
            page.locator("details summary").first.click()
            assert page.locator("details pre").first.is_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=ARTIFACTS / "insight-01_tensors-390-sorted.png", full_page=True)
        finally:
            browser.close()


# -- cheap: the helpers, and 1,000 stored results in seconds ----------------------------------------------

def test_a_students_name_is_scrubbed_from_an_example_and_falls_are_found():
    names = insight.Names({"doe_jane_12345": "s0000abcd"}, show_names=False)
    text = names.scrub("cell 3 of /tmp/doe_jane_12345_01.ipynb by Jane (student 12345) does not 1234", "doe_jane_12345")
    assert "jane" not in text.lower() and "12345" not in text and "does not 1234" in text
    falls = insight.falling_students({"01": {"a": 90.0, "b": 50.0}, "02": {"a": 60.0, "b": 45.0}, "03": {"a": 10.0}},
                                     ["01", "02", "03"])
    assert [(f.student, f.before, f.after) for f in falls] == [("a", "02", "03"), ("a", "01", "02")]


def test_insight_on_a_thousand_stored_results_takes_seconds(tmp_path, monkeypatch):
    from bench import bench_insight

    monkeypatch.setattr(grading, "expected_values", lambda key, hidden: ({}, {}))
    csv_path = bench_insight.synthetic_class(tmp_path, results=1000)
    assert len(read_csv(csv_path)) == 1000 // 2 * (4 + 4)
    start = time.perf_counter()
    written = insight.write(csv_path, tmp_path / "insight")
    seconds = time.perf_counter() - start
    assert [p.name for p in written] == ["index.html", "01_tensors.html", "02_broadcasting.html"]
    assert seconds < 15, seconds
    print(f"insight on 1,000 stored results: {seconds:.2f} s")


def test_a_notebook_of_no_known_lesson_has_its_page_without_the_name_of_its_file(tmp_path, monkeypatch):
    monkeypatch.setattr(grading, "expected_values", lambda key, hidden: ({}, {}))
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "jdoe_homework.ipynb").write_text(nbformat.writes(build(lesson=None)))
    batch.run(folder, tmp_path / "grades.csv", hidden=True, progress=False, grader=lambda *a: iter([]))
    written = insight.write(tmp_path / "grades.csv", tmp_path / "insight")
    assert [p.name for p in written] == ["index.html", "unknown-lesson.html"]
    problems = next(t for t in tables(written[1]) if "problems" in t["class"])["rows"]
    assert len(problems) == 1 and "could not tell which lesson" in problems[0][3]
    assert not any("jdoe" in p.read_text() for p in written)


def test_a_failure_in_hidden_cases_only_is_named_so(tmp_path, monkeypatch):
    from .test_batch import IDS, Workers, exercise, report

    monkeypatch.setattr(grading, "expected_values", lambda key, hidden: ({}, {}))
    folder = tmp_path / "downloads"
    folder.mkdir()
    name = "doe_jane_101_9001_01_tensors.ipynb"
    (folder / name).write_text(nbformat.writes(build()))
    hidden_only = report(exercise(IDS[0], 1.5, 2, passed_cases=8), exercise(IDS[1], 3, 3),
                         exercise(IDS[2], 2, 2), exercise(IDS[3], 3, 3))
    batch.run(folder, tmp_path / "grades.csv", hidden=True, progress=False, grader=Workers({name: hidden_only}))
    page = insight.write(tmp_path / "grades.csv", tmp_path / "insight")[1]
    failures = [t for t in tables(page) if "failures" in t["class"]]
    assert [(t["section"], t["rows"][0][:2]) for t in failures] == [
        (IDS[0], ["hidden cases only (the public cases pass)", "1"])]
    assert "2 of 10 cases failed, all of them hidden cases" in page.read_text()
