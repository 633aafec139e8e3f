"""Which student, which lesson, which attempt: the one place a submission is looked up.

Every command that grades a folder asks ``discover``. The lesson of a notebook is, in order:
nbgrader's assignment folder (where nbgrader files it, and where its grade goes), the notebook's
own metadata (``metadata.minidl.lesson``, stamped by the course and kept when a learner renames or
copies the file), then its file name. When these disagree the submission is still graded, as the
first of them, and the disagreement is said in the student's rows. When a student has several
notebooks for one lesson, the LMS's own order of attempts chooses (``lms.py``); where it cannot
tell, the row says so.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field

from . import lms
from .catalog import LESSONS
from .i18n import N_, _


@dataclass(frozen=True)
class Submission:
    student: str
    lesson: str | None  # the lesson it is graded as; None when nothing tells
    path: pathlib.Path
    assignment: str | None = None  # nbgrader's assignment folder, where there is one
    attempt: tuple | None = None  # the LMS's order of this student's attempts (larger is later)
    lms: str = "plain"
    notes: tuple[str, ...] = field(default=(), compare=False)  # said in the student's rows

    @property
    def key(self) -> str:
        """The submission's slot: its lesson, else its file name."""
        return self.lesson or lms.safe(self.path.stem)


def metadata_lesson(path: pathlib.Path) -> str | None:
    """``metadata.minidl.lesson`` of a notebook file, when it is readable and names a lesson."""
    try:
        raw = json.loads(path.read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff"))
        key = raw["metadata"]["minidl"]["lesson"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return key if key in LESSONS else None


def choose_lesson(assignment: str | None, metadata: str | None, name: str | None) -> tuple[str | None, list[str]]:
    """The lesson to grade as, and a note for each source that disagrees with it."""
    sources = [(_("its assignment folder"), assignment), (_("its metadata"), metadata), (_("its file name"), name)]
    told = [(where, key) for where, key in sources if key]
    if not told:
        return None, []
    where, chosen = told[0]
    notes = [_("{other} says {key}, but {where} says {chosen}: graded as {chosen}").format(
        other=other, key=key, where=where, chosen=chosen) for other, key in told[1:] if key != chosen]
    return chosen, notes


def lesson_of(nb, path: pathlib.Path) -> tuple[str | None, list[str]]:
    """One notebook's lesson (``grade``, ``progress``): its metadata, then its file name, as
    ``look_up`` decides, and as a last resort the exercises its check calls name."""
    metadata = nb.metadata.get("minidl", {}).get("lesson") if nb is not None else None
    lesson, notes = choose_lesson(None, metadata if metadata in LESSONS else None, lms.lesson_in(path.name))
    if lesson is None and nb is not None:
        text = "\n".join(c.get("source", "") for c in nb.cells if isinstance(c.get("source", ""), str))
        lesson = next((key for key, les in LESSONS.items()
                       if any(f'"{e.id}"' in text or f"'{e.id}'" in text for e in les.exercises)), None)
    return lesson, notes


def look_up(path: pathlib.Path, folder: pathlib.Path) -> Submission:
    """One notebook under ``folder``: its student, lesson and attempt, with notes on conflicts."""
    rel = path.relative_to(folder)
    assignment = None
    if len(rel.parts) == 3:  # nbgrader: <student>/<assignment>/<notebook>
        named = lms.Named(lms.safe(rel.parts[0]), "nbgrader")
        assignment = rel.parts[1]
    elif len(rel.parts) == 2 and not lms.lesson_in(rel.parts[0]):  # a folder per student (Moodle)
        named = lms.read_folder(rel.parts[0]) or lms.Named(lms.safe(rel.parts[0]), "plain")
    else:
        named = lms.read_name(path.stem)
    lesson, notes = choose_lesson(assignment and lms.lesson_in(assignment), metadata_lesson(path),
                                  lms.lesson_in(path.name))
    return Submission(named.student, lesson, path, assignment, named.attempt, named.lms, tuple(notes))


def later(a: Submission, b: Submission) -> tuple[Submission, Submission, str]:
    """Of two notebooks of one student and lesson, the later, the earlier, and how that was told."""
    if a.lms == b.lms and a.attempt is not None and b.attempt is not None and a.attempt != b.attempt:
        newer, older = (a, b) if a.attempt > b.attempt else (b, a)
        how = {"canvas": _("Canvas's upload order"), "blackboard": _("Blackboard's attempt dates")}.get(a.lms, _("the LMS"))
        return newer, older, _("the later by {how}").format(how=how)
    ta, tb = a.path.stat().st_mtime, b.path.stat().st_mtime
    if ta != tb:
        newer, older = (a, b) if ta > tb else (b, a)
        return newer, older, _("the one with the later file time (the LMS's names do not tell which is later, "
                               "and file times change when files are copied or unzipped: check by hand)")
    newer, older = sorted([a, b], key=lambda s: str(s.path), reverse=True)
    return newer, older, _("chosen by name only: neither the LMS's names nor the file times tell which is later, "
                           "check by hand")


TWO_NOTEBOOKS = N_("two notebooks for {lesson}: graded {newer}, {how}; not {older}")


def two_notebooks(note: str) -> bool:
    """Whether ``note`` is the note on two notebooks of one lesson (in the language in use)."""
    return note.startswith(_(TWO_NOTEBOOKS).split("{", 1)[0])


def submissions_root(folder: pathlib.Path) -> pathlib.Path:
    """Where the notebooks are: nbgrader's ``submitted/`` in a course folder, else the folder."""
    return folder / "submitted" if (folder / "submitted").is_dir() else folder


def discover(folder: pathlib.Path) -> tuple[list[Submission], list[str]]:
    """Every submission under ``folder`` (nbgrader's ``submitted/`` tree or an LMS download),
    one per student and lesson, and notes on what was chosen or skipped."""
    folder = submissions_root(folder)
    found: dict[tuple[str, str], Submission] = {}
    notes: list[str] = []
    for path in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.relative_to(folder).parts:
            continue
        sub = look_up(path, folder)
        old = found.get((sub.student, sub.key))
        if old is not None:
            newer, older, how = later(old, sub)
            note = _(TWO_NOTEBOOKS).format(lesson=sub.key, newer=newer.path.name, how=how, older=older.path.name)
            notes.append(f"{sub.student}: {note}")
            earlier = tuple(n for n in old.notes if two_notebooks(n))  # a third notebook
            sub = Submission(newer.student, newer.lesson, newer.path, newer.assignment, newer.attempt, newer.lms,
                             tuple(dict.fromkeys(newer.notes + earlier + (note,))))
        found[(sub.student, sub.key)] = sub
    notes += [f"{s.student}: {n}" for s in found.values() for n in s.notes if not two_notebooks(n)]
    return sorted(found.values(), key=lambda s: (s.student, s.key)), notes
