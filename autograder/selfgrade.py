"""``grade_this_notebook()``: the last cell of every lesson grades the notebook it sits in.

It grades exactly as ``python -m autograder grade`` does (``grading.grade_notebook``: the
notebook runs again from the top in a fresh kernel, then each exercise is checked in a process of
its own), shows the score table with the first hint per exercise, and offers the file to submit.

Where the notebook comes from:
- Colab: the front-end hands the kernel the notebook as it is now (``get_ipynb``); it is
  written next to the kernel and graded, and offered as a download.
- JupyterLab: the kernel knows the notebook's path (``JPY_SESSION_NAME``, set by
  jupyter_server). The front-end is asked to save first; when the saved file still lacks a
  definition the kernel ran, the learner is told to save and nothing is graded.

In a headless run (the grader's own run of the notebook, nbgrader's autograde or validate) it
does nothing, so grading never grades itself.
"""

from __future__ import annotations

import html
import os
import pathlib
import sys
import time
from dataclasses import dataclass

import nbformat

from .catalog import LESSONS
from . import i18n
from .i18n import _
from .policy import COLLECT_ENV

_running = False  # a grade in progress in this process: a nested call does nothing


@dataclass
class SelfGrade:
    """What the grade cell shows: the grader's score table, the first hint per exercise, and
    where the graded file is (a download link in JupyterLab)."""

    report: object  # grading.Report
    path: pathlib.Path
    link: bool = False

    def hints(self) -> list[tuple[str, str]]:
        """(exercise, its first hint) for each exercise not passed that has one."""
        return [(r.exercise, r.hint) for r in self.report.results if r.hint and not r.passed]

    def __repr__(self) -> str:
        lines = [self.report.table()]  # the CLI's table, first hint per exercise included
        lines.append(_("Graded file: {path} (submit this file)").format(path=self.path))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        r = self.report
        rows = "".join(
            f"<tr><td><code>{html.escape(x.exercise)}</code></td><td style='text-align:right'>{x.points:g} / {x.max_score:g}</td>"
            f"<td>{'✔' if x.passed else '✘'}</td><td style='text-align:left'>{html.escape(x.message)}</td></tr>"
            for x in r.results)
        pct = 100 * r.score / r.max_score if r.max_score else 0.0
        parts = ["<div class='minidl-grade'><b>" + _("{notebook}: {score:g} / {max_score:g} points ({percent:.0f}%)").format(
                     notebook=html.escape(pathlib.Path(r.notebook).name), score=r.score, max_score=r.max_score,
                     percent=pct) + "</b>",
                 "" if r.hidden else " <i>" + _("(public cases only: the instructor's grade adds hidden cases)") + "</i>"]
        parts += [f"<div>&#9888; {html.escape(p)}</div>" for p in r.problems]
        parts.append("<table><tr><th>{}</th><th>{}</th><th></th><th>{}</th></tr>{}</table>".format(
            _("exercise"), _("points"), _("first problem"), rows))
        parts += ["<div>" + _("<b>Hint for <code>{exercise}</code>:</b> {hint}").format(
            exercise=html.escape(e), hint=html.escape(_(h))) + "</div>" for e, h in self.hints()]
        if self.link:
            name = html.escape(self.path.name)
            parts.append("<div>" + _("File to submit: {link} (download)").format(
                link=f"<a href='{name}' download='{name}'>{name}</a>") + "</div>")
        parts.append("</div>")
        return "".join(parts)


def headless() -> bool:
    """True in a run without a learner at the screen: the grader's own run of the notebook
    (AUTOGRADER_COLLECT), nbgrader's autograde and validate (NBGRADER_EXECUTION)."""
    return bool(os.environ.get(COLLECT_ENV) or os.environ.get("NBGRADER_EXECUTION"))


def in_colab() -> bool:
    return "google.colab" in sys.modules


def notebook_path() -> pathlib.Path | None:
    """The file of the notebook this kernel serves: jupyter_server tells the kernel at start
    (JPY_SESSION_NAME, also ``__session__``); VS Code sets ``__vsc_ipynb_file__``."""
    ns = _user_ns()
    for candidate in (os.environ.get("JPY_SESSION_NAME"), ns.get("__session__"), ns.get("__vsc_ipynb_file__")):
        if candidate and str(candidate).endswith(".ipynb"):
            path = pathlib.Path(candidate)
            for p in (path, pathlib.Path.cwd() / path.name):
                if p.is_file():
                    return p.resolve()
    return None


def _user_ns() -> dict:
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except ImportError:
        shell = None
    return shell.user_ns if shell is not None else {}


def executed_sources() -> list[str]:
    """The cells this kernel has run, in order (IPython's input history)."""
    return [s for s in _user_ns().get("In", []) if s]


def unsaved(path: pathlib.Path) -> list[str]:
    """The exercises whose latest definition run in this kernel is not in the file on disk."""
    nb = nbformat.read(path, as_version=4)
    key = (nb.metadata.get("minidl") or {}).get("lesson")
    if key not in LESSONS:
        return []
    saved = [c.source.strip() for c in nb.cells if c.cell_type == "code"]
    missing = []
    history = executed_sources()
    for e in LESSONS[key].exercises:
        ran = [s for s in history if f"def {e.name}(" in s or f"class {e.name}(" in s or f"class {e.name}:" in s]
        if ran and not any(ran[-1].strip() in cell for cell in saved):
            missing.append(e.name)
    return missing


def save_in_jupyterlab(path: pathlib.Path, wait: float = 10.0) -> list[str]:
    """Ask JupyterLab to save the notebook (``make lab`` exposes the app to the page), then wait
    until the file holds what the kernel ran; return what is still unsaved."""
    from IPython.display import Javascript, display
    display(Javascript("if (window.jupyterapp) { window.jupyterapp.commands.execute('docmanager:save'); }"))
    deadline = time.monotonic() + wait
    while (missing := unsaved(path)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return missing


def notebook_from_colab(folder: pathlib.Path) -> pathlib.Path:
    """Colab's front-end hands the kernel the notebook as it is now; write it to ``folder``."""
    from google.colab import _message  # type: ignore[import-not-found]
    reply = _message.blocking_request("get_ipynb", request="", timeout_sec=60)
    nb = nbformat.from_dict(reply["ipynb"])
    key = (nb.metadata.get("minidl") or {}).get("lesson") or "lesson"
    path = folder / f"{key}.ipynb"
    nbformat.write(nb, path)
    return path


def grade_this_notebook() -> SelfGrade | None:
    """Save and grade the notebook this cell is in, as the instructor's grader does; show the
    score table and the first hint per exercise; offer the file to submit."""
    global _running
    if headless() or _running:
        return None
    from .grading import grade_notebook
    from .policy import Limits
    if in_colab():
        path = notebook_from_colab(pathlib.Path.cwd())
    else:
        path = notebook_path()
        if path is None:
            print(_("Could not tell which file this notebook is (no Jupyter server told the kernel). "
                    "Save it, then grade it from a terminal: python -m autograder grade NOTEBOOK.ipynb"))
            return None
        missing = save_in_jupyterlab(path)
        if missing:
            print(_("The saved file {file} does not have the {names} you ran last: save the notebook "
                    "(File > Save Notebook, or Ctrl+S), then run this cell again.").format(
                        file=path.name, names=", ".join(missing)))
            return None
    print(_("Grading {file}: the notebook runs again from the top, then each exercise is checked "
            "(a minute or two)...").format(file=path.name), flush=True)
    _running = True
    try:
        with i18n.speaking(i18n.language()):  # the grading kernel and worker speak the notebook's language too
            report = grade_notebook(path, Limits())
    finally:
        _running = False
    result = SelfGrade(report, path, link=not in_colab())
    if in_colab():
        from google.colab import files  # type: ignore[import-not-found]
        files.download(str(path))
    return result
