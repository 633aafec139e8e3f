"""Notebooks as the grader reads them: defensively, whatever state a learner left them in.

``read`` parses the JSON, then the format version, then each cell, repairing what it can and
saying what it repaired; ``diagnose`` says what nbgrader's autograde would stumble on. Running a
notebook is kernel.py's job.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field

import nbformat

from .catalog import LESSONS
from .i18n import _


@dataclass
class Loaded:
    """A notebook as read: ``nb`` is None when it cannot be read (``problem`` says why);
    ``repairs`` says what was fixed to read it, ``notes`` what nbgrader would reject."""

    nb: nbformat.NotebookNode | None
    problem: str = ""
    repairs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read(path: pathlib.Path) -> Loaded:
    """Read a notebook whatever state it is in: the JSON, then the format version, then each cell."""
    try:
        text = pathlib.Path(path).read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    except OSError as e:
        return Loaded(None, _("the file cannot be read ({error})").format(error=e.strerror))
    loaded = Loaded(None)
    try:
        raw, end = json.JSONDecoder().raw_decode(text.lstrip())
        if text.lstrip()[end:].strip():
            loaded.repairs.append(_("ignored text after the end of the notebook's JSON"))
    except ValueError as e:
        return Loaded(None, _("the file is not a notebook: its JSON is broken ({error})").format(error=str(e)[:120]))
    if not isinstance(raw, dict) or not isinstance(raw.get("cells", raw.get("worksheets")), list):
        return Loaded(None, _("the file is JSON but not a notebook (it has no cells)"))
    version = raw.get("nbformat")
    if version != 4:
        try:
            raw = nbformat.convert(nbformat.from_dict(raw), 4)
            loaded.repairs.append(_("converted from nbformat {version} to 4").format(version=version))
        except Exception:
            loaded.repairs.append(_("read as nbformat 4 although it says {version!r}").format(version=version))
    loaded.nb = rebuild(raw, loaded.repairs)
    return loaded


def rebuild(raw: dict, repairs: list[str]) -> nbformat.NotebookNode:
    """A valid nbformat-4 notebook from the cells of ``raw``, each repaired as needed."""
    cells = []
    for number, cell in enumerate(raw.get("cells") or [], start=1):
        if not isinstance(cell, dict):
            repairs.append(_("dropped cell {number}, which is not a cell").format(number=number))
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(str(s) for s in source)
        elif not isinstance(source, str):
            repairs.append(_("cell {number} had no readable source").format(number=number))
            source = ""
        metadata = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        kind = cell.get("cell_type")
        grader = metadata.get("nbgrader") if isinstance(metadata.get("nbgrader"), dict) else {}
        if kind != "code" and (grader.get("solution") or grader.get("grade")) and grader.get("cell_type", "code") == "code":
            repairs.append(_("cell {number} is an exercise cell turned into {kind}: run as code again").format(
                number=number, kind=kind))
            kind = "code"
        if kind not in ("code", "markdown", "raw"):
            repairs.append(_("cell {number} had an unknown type {kind!r}: kept as raw text").format(number=number, kind=kind))
            kind = "raw"
        make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
                "raw": nbformat.v4.new_raw_cell}[kind]
        cells.append(make(source=source, metadata=metadata))
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    return nbformat.v4.new_notebook(cells=cells, metadata=metadata)


def diagnose(nb: nbformat.NotebookNode, key: str) -> list[str]:
    """What nbgrader's autograde would stumble on (the CLI grades the notebook all the same)."""
    notes, seen = [], {}
    for cell in nb.cells:
        grade_id = (cell.metadata.get("nbgrader") or {}).get("grade_id")
        if grade_id:
            seen[grade_id] = seen.get(grade_id, 0) + 1
    for grade_id, count in seen.items():
        if count > 1:
            notes.append(_("grade id {grade_id!r} appears in {count} cells (copied cells); nbgrader would reject "
                           "this").format(grade_id=grade_id, count=count))
    for exercise in LESSONS[key].exercises if seen else ():  # only for notebooks made by nbgrader
        if f"test_{exercise.name}" not in seen:
            notes.append(_("the test cell of {exercise} was deleted or its metadata changed; nbgrader would "
                           "not grade it").format(exercise=exercise.id))
    return notes
