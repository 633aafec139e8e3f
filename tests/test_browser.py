"""The learner's path in a real browser: `make lab` driven by Playwright on Debian's chromium.

For every lesson's Chinese instructor edition, and lesson 01's English one: Run All (all but the grade cell, which the student test
runs), no error outputs, every check report rendered as HTML, every figure an image, every
widget live (a control moved redraws its output), and nbgrader's Validate button's verdict.
For the student edition of lesson 01, in English and in Chinese: a wrong answer typed into an exercise cell through the
editor, run, and its report names the mistake; then the lesson's grade cell grades the saved
file and offers it for download. (The English instructor editions of the other lessons run
headless in test_notebooks.py: the same code, so the lab runs each lesson once, in Chinese.)
A Chinese edition's reports must be in Chinese, and no figure may draw a character as a box:
figure labels are code, shared by both editions, so they stay in English, and matplotlib's
"Glyph ... missing from font" warning fails the test. Screenshots of a failure go to build/browser-artifacts/ (of
every test with MINIDL_BROWSER_SCREENSHOTS=1), with the lab's log.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import time

import pytest

from autograder import build, i18n

from .conftest import ROOT
from .labserver import make_lab

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"  # Debian's; .ci/run installs it where it is missing
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-sync"]
ARTIFACTS = ROOT / "build" / "browser-artifacts"
LESSONS = [p.parent.name for p in sorted((ROOT / "course" / "source").glob("*/*.ipynb")) if p.stem == p.parent.name]
EDITIONS = [("en", "01_tensors")] + [(lang, key) for lang in build.translations() for key in LESSONS]
CJK = "[\u4e00-\u9fff]"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Debian's chromium at {CHROMIUM}")]

# The notebook open in the lab, as JupyterLab's own objects (make lab exposes the app to the page).
PANEL = "window.jupyterapp.shell.currentWidget"
IDLE = f"""() => {{
  const p = {PANEL};
  const k = p && p.sessionContext && p.sessionContext.session && p.sessionContext.session.kernel;
  return !!k && k.status === 'idle' && ![...p.node.querySelectorAll('.jp-InputArea-prompt')]
    .some(e => e.textContent.includes('*'));
}}"""
CELLS = f"""() => {PANEL}.content.widgets.map((c, i) => ({{
  index: i, type: c.model.type, role: ((c.model.getMetadata('minidl') || {{}}).role) || null,
  source: c.model.sharedModel.getSource(),
  count: c.model.type === 'code' ? c.model.executionCount : null,
  outputs: c.model.type === 'code' ? c.model.outputs.toJSON() : [],
  images: c.node.querySelectorAll('.jp-OutputArea-output img').length,
  html: [...c.node.querySelectorAll('.jp-OutputArea-output.jp-RenderedHTMLCommon')].map(e => e.textContent),
}}))"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab` serving copies of the instructor editions and, in student/, the student ones."""
    root = tmp_path_factory.mktemp("lab")
    for lang, key in EDITIONS:
        (root / build.edition(lang)).mkdir(exist_ok=True)
        shutil.copy(build.course_dir(lang) / "source" / key / f"{key}.ipynb", root / build.edition(lang))
    shutil.copytree(ROOT / "lessons", root / "student")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with make_lab(root, log=ARTIFACTS / "lab.log") as server:
        server.root = root
        yield server


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, lab, request):
    """A fresh page; a screenshot of it when the test fails; the kernels shut down after."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    failed_before = request.session.testsfailed
    yield page
    if request.session.testsfailed > failed_before or os.environ.get("MINIDL_BROWSER_SCREENSHOTS"):
        with contextlib.suppress(Exception):
            page.screenshot(path=ARTIFACTS / f"{request.node.name}.png", full_page=True)
    page.close()
    for kernel in lab.api("GET", "kernels").json():
        lab.api("DELETE", f"kernels/{kernel['id']}")


def open_notebook(page, lab, path: str) -> None:
    page.goto(lab.url(f"lab/tree/{path}") + "&reset")  # a fresh workspace: no tabs from an earlier run
    page.wait_for_function("window.jupyterapp !== undefined", timeout=120_000)
    page.wait_for_function(f"() => {PANEL} && {PANEL}.content && {PANEL}.content.widgets.length > 0",
                           timeout=120_000)
    page.wait_for_function(IDLE, timeout=120_000, polling=500)


def wait_idle(page, timeout_s: float) -> None:
    """Until the kernel is idle with no cell queued, twice in a row a second apart."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page.wait_for_function(IDLE, timeout=max(1, deadline - time.monotonic()) * 1000, polling=500)
        page.wait_for_timeout(1000)
        if page.evaluate(IDLE):
            return
    raise AssertionError(f"the notebook was still running after {timeout_s:.0f} s")


def cell(page, index: int):
    """Cell ``index`` scrolled into view (JupyterLab renders cells off screen lazily)."""
    page.evaluate(f"() => {PANEL}.content.scrollToItem({index}, 'center')")
    page.wait_for_timeout(300)
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def run_all_but_the_grade_cell(page) -> None:
    cells = page.evaluate(CELLS)
    grade = [c["index"] for c in cells if c["role"] == "grade"]
    assert grade == [len(cells) - 1], "the lesson does not end with its grade cell"
    page.evaluate(f"() => {{ {PANEL}.content.activeCellIndex = {grade[0]}; "
                  "return window.jupyterapp.commands.execute('notebook:run-all-above'); }")
    page.wait_for_timeout(2000)
    wait_idle(page, 600)


def widget_output_changes(page, index: int, act) -> bool:
    """Do ``act`` (move a control of cell ``index``'s widget); True when the widget's output
    area then draws something new (an output added under the widget)."""
    page.evaluate(f"""() => {{
      const node = {PANEL}.content.widgets[{index}].node;
      window.__redrawn = false;
      window.__observer = new MutationObserver(records => {{
        for (const r of records) for (const n of r.addedNodes)
          if (n.nodeType === 1 && (n.matches('.jp-OutputArea-child, .jp-OutputArea-output, img') ||
                                   n.querySelector('.jp-OutputArea-output, img'))) window.__redrawn = true;
      }});
      window.__observer.observe(node.querySelector('.jp-Cell-outputArea'), {{childList: true, subtree: true}});
    }}""")
    act()
    try:
        page.wait_for_function("window.__redrawn === true", timeout=120_000, polling=250)
        return True
    except playwright.TimeoutError:
        return False
    finally:
        page.evaluate("window.__observer.disconnect()")


def move_a_control(page, index: int) -> str:
    """Change one control of the widget in cell ``index`` as a learner would; say which."""
    cell_ = cell(page, index)
    dropdowns, handles = cell_.locator(".jupyter-widgets select"), cell_.locator(".jupyter-widgets .noUi-handle")
    texts = cell_.locator(".jupyter-widgets input[type=text]")
    if dropdowns.count():
        count, current = dropdowns.first.evaluate("s => [s.options.length, s.selectedIndex]")
        dropdowns.first.select_option(index=(current + 1) % count)
        return f"dropdown -> option {(current + 1) % count}"
    if handles.count():
        handles.first.focus()
        page.keyboard.press("ArrowRight")
        return "slider -> one step right"
    for i in range(texts.count()):
        value = texts.nth(i).input_value()
        if "," in value:  # same shape, written without spaces: the same picture, redrawn
            texts.nth(i).fill(value.replace(" ", "") if " " in value else value.replace(",", ", "))
            texts.nth(i).press("Enter")
            return f"text {value!r} rewritten"
    raise AssertionError(f"cell {index}: a widget with no control this test knows how to move")


def start_validate(page) -> None:
    """Click nbgrader's Validate button: it saves the notebook, and the server runs it in a
    kernel of its own while the page goes on (the verdict comes as a dialog)."""
    page.locator(".jp-NotebookPanel-toolbar").get_by_text("Validate", exact=True).click()
    page.wait_for_timeout(1000)


def validate_verdict(page) -> str:
    """The text of Validate's dialog, once it has come; the dialog is closed."""
    dialog = page.locator(".jp-Dialog-content")
    dialog.wait_for(timeout=600_000)
    text = dialog.inner_text()
    dialog.get_by_role("button", name="Ok").click()
    return text


@pytest.mark.parametrize("lang,key", EDITIONS)
def test_instructor_edition_in_the_lab(page, lab, lang, key):
    open_notebook(page, lab, f"{build.edition(lang)}{key}.ipynb")
    started = time.monotonic()
    start_validate(page)  # the server validates the saved file while the page runs the cells
    run_all_but_the_grade_cell(page)
    ran = time.monotonic() - started
    verdict = validate_verdict(page)
    assert "Success! Your notebook passes all the tests." in verdict, verdict
    cells = page.evaluate(CELLS)
    code = [c for c in cells if c["type"] == "code" and c["role"] != "grade"]
    assert all(c["count"] for c in code), f"cells not run: {[c['index'] for c in code if not c['count']]}"
    errors = [(c["index"], o.get("ename"), o.get("evalue")) for c in code for o in c["outputs"]
              if o["output_type"] == "error"]
    assert not errors, f"error outputs: {errors}"
    for c in cells:
        if c["role"] == "test":  # the check's report, rendered as HTML, passed, in the edition's language
            passed = i18n.gettext_in(lang, "PASSED")
            assert any(passed in h for h in c["html"]), f"cell {c['index']}: no rendered report: {c['html']}"
        boxes = [o.get("text", "") for o in c["outputs"] if "missing from" in str(o.get("text", ""))]
        assert not boxes, f"cell {c['index']}: a character drawn as a box: {boxes}"
        pictures = sum("image/png" in o.get("data", {}) for o in c["outputs"])
        assert c["images"] >= pictures, f"cell {c['index']}: {pictures} figures, {c['images']} images on the page"
        as_text = [o for o in c["outputs"] if "<Figure size" in str(o.get("text", ""))
                   or ("<Figure size" in str(o.get("data", {}).get("text/plain", "")) and "image/png" not in o["data"])]
        assert not as_text, f"cell {c['index']}: a figure shown as text, not drawn"
    assert sum(c["images"] for c in cells) > 0, "no figure drawn"
    widgets = [c["index"] for c in cells if any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                                                 for o in c["outputs"])]
    for index in widgets:
        shown = cell(page, index)
        assert shown.locator(".jupyter-widgets").count(), f"cell {index}: a widget output with no live widget view"
        if not shown.locator(".jupyter-widgets select, .jupyter-widgets .noUi-handle, .jupyter-widgets input").count():
            continue  # a progress bar: shown, nothing to move
        moved = []
        assert widget_output_changes(page, index, lambda: moved.append(move_a_control(page, index))), \
            f"cell {index}: the widget did not redraw after {moved}"
        wait_idle(page, 300)
    if lang != "en" and key == "01_tensors":  # a report and a figure of the edition, for a person to look at
        assert drawn_as_letters(page, ".jp-RenderedHTMLCommon", "张量"), \
            "the page draws Chinese as boxes: install a Chinese font (.ci/run installs fonts-wqy-microhei)"
        look(page, next(c["index"] for c in cells if c["role"] == "test"), f"{lang}-report")
        look(page, next(c["index"] for c in cells if c["images"]), f"{lang}-figure")
    print(f"{lang} {key}: Validate and Run All {ran:.0f} s, with the widgets {time.monotonic() - started:.0f} s")


def drawn_as_letters(page, selector: str, letters: str) -> bool:
    """Does the page draw ``letters`` in the font of ``selector`` as distinct glyphs? A character
    missing from every font is drawn as the same empty box, so two different ones look alike."""
    return page.evaluate("""([selector, letters]) => {
      const canvas = document.createElement('canvas'); canvas.width = 48; canvas.height = 48;
      const pen = canvas.getContext('2d');
      pen.font = '32px ' + getComputedStyle(document.querySelector(selector)).fontFamily;
      const draw = letter => { pen.clearRect(0, 0, 48, 48); pen.fillText(letter, 4, 38);
                               return pen.getImageData(0, 0, 48, 48).data.join(','); };
      const shapes = [...letters].map(draw);
      return new Set(shapes).size === shapes.length;
    }""", [selector, letters])


def look(page, index: int, name: str) -> None:
    """A screenshot of cell ``index`` in build/browser-artifacts/<name>.png."""
    cell(page, index).screenshot(path=ARTIFACTS / f"{name}.png")


@pytest.mark.parametrize("lang", ["en"] + build.translations())
def test_student_edition_wrong_answer_through_the_editor(page, lab, lang):
    open_notebook(page, lab, f"student/{build.edition(lang)}01_tensors.ipynb")
    cells = page.evaluate(CELLS)
    setup = next(c["index"] for c in cells if c["role"] == "setup")
    exercise = next(c["index"] for c in cells if c["source"].startswith("def one_hot("))
    test = next(c["index"] for c in cells[exercise:] if c["role"] == "test")
    run_cell(page, setup)
    cell(page, exercise).locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.type("def one_hot(labels, num_classes):")
    page.keyboard.press("Enter")  # the editor indents the body
    page.keyboard.type("return torch.eye(num_classes, dtype=torch.float64)[labels]")
    typed = page.evaluate(f"() => {PANEL}.content.widgets[{exercise}].model.sharedModel.getSource()")
    assert typed == "def one_hot(labels, num_classes):\n    return torch.eye(num_classes, dtype=torch.float64)[labels]"
    page.keyboard.press("Shift+Enter")
    wait_idle(page, 120)
    run_cell(page, test)
    report = " ".join(page.evaluate(CELLS)[test]["html"])
    assert i18n.gettext_in(lang, "NOT YET") in report and "float64" in report and "float32" in report, report
    assert lang != "en" or "dtype float64, expected float32" in report, report
    assert (lang == "en") != bool(re.search(CJK, report)), report
    if lang != "en":
        look(page, test, f"{lang}-wrong-answer")

    grade = len(cells) - 1
    run_cell(page, grade, timeout_s=600)  # saves the notebook, grades the saved file
    shown = cell(page, grade).locator(".minidl-grade")
    shown.scroll_into_view_if_needed()
    assert shown.count() == 1, page.evaluate(CELLS)[grade]["outputs"]
    text = shown.inner_text()
    assert "tensors.one_hot" in text and "float64" in text, text
    assert (lang == "en") != bool(re.search(CJK, text)) and (lang != "en" or "Hint for" in text), text
    href = shown.locator("a[download]").get_attribute("href")
    assert f"/files/student/{build.edition(lang)}01_tensors.ipynb" in href, href
    if lang != "en":
        look(page, grade, f"{lang}-grade")


def run_cell(page, index: int, timeout_s: float = 300) -> None:
    page.evaluate(f"() => {{ {PANEL}.content.activeCellIndex = {index}; "
                  "return window.jupyterapp.commands.execute('notebook:run-cell'); }")
    page.wait_for_timeout(500)
    wait_idle(page, timeout_s)
