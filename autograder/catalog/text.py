"""The exercise catalogue's texts for translation: everything a learner (or the README) reads that
comes from the declarations, not from ``_()`` calls in the code.

``messages()`` maps each English text (the gettext msgid) to a short translator's comment saying
where it comes from. ``autograder.i18n`` adds them to the catalogue's template; they are
translated where they are shown (``_(exercise.title)``, ``_(hint)``, ``i18n.note(case.note)``).

Case notes are generated, so they are gathered by running every group's case maker with a few
seeds (those of ``SEEDS``, as the grader combines them with the exercise and group) and taken as
their templates (``i18n.note_template``: numbers become ``{0}``, ``{1}``, ...). A note that is a
program (lesson 03's ``a = Value(1.5); b = a.tanh(); b.backward()``) is code, not words, and
differs with every seed: it is left out and shown as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..exercise import GENERIC_HINTS, Draw, Exercise, Lesson
from ..i18n import note_template
from ..oracle import PUBLIC_SEED

# The seeds whose notes are gathered: a few plain ones and the grader's public seed (hidden seeds
# give the same templates with other numbers).
SEEDS: tuple[str, ...] = ("0", "1", "2", "3", "4", PUBLIC_SEED)

# One statement of a spelled program: "d = a * b", "e = (c + {0}).tanh()", "f.backward()".
_STATEMENT = r"(?:[a-z]\w* = [\w\s.+\-*/(){}]+|[a-z]\w*\.backward\(\))"
_PROGRAM = re.compile(rf"{_STATEMENT}(?:; {_STATEMENT})*")
# A signature with words in it ("a trained model: ...", "-> same structure"), not only code
_WORDS = re.compile(r"\b(?:a|an|the|same|inside|with) ")


def is_code(template: str) -> bool:
    """Whether a note (template) is a program rather than words: left untranslated."""
    return _PROGRAM.fullmatch(template) is not None


def lessons() -> list[Lesson]:
    """The course's own lessons (an instructor's added lessons are not part of its catalogue)."""
    from . import autograd, broadcasting, cnn, lm, rnn, scale, tensors, training, transformer

    return [m.LESSON for m in (tensors, broadcasting, autograd, training, cnn, rnn, transformer, scale, lm)]


def case_seed(seed: str, exercise: Exercise, group: str) -> str:
    """The seed of a group's cases, as the grader derives it (``oracle.make_cases``)."""
    return f"{seed}:{exercise.id}:{group}"


def note_templates(exercise: Exercise, seeds: Iterable[str] = SEEDS) -> dict[str, str]:
    """Every note template of ``exercise``'s cases for ``seeds`` (code left out) -> its group's name."""
    found: dict[str, str] = {}
    for group in exercise.groups:
        for seed in seeds:
            for case in group.make(Draw(case_seed(seed, exercise, group.name))):
                if case.note:
                    template = note_template(case.note)[0]
                    if not is_code(template):
                        found.setdefault(template, group.name)
    return found


def messages(seeds: Iterable[str] = SEEDS) -> dict[str, str]:
    """Every text of the exercise declarations that a learner or the README shows, msgid -> where it
    comes from ("tensors.one_hot hint (values)"), in catalogue order, each text once (its first place)."""
    seeds = tuple(seeds)
    out: dict[str, str] = {}

    def add(text: str, where: str) -> None:
        if text and text not in out:
            out[text] = where

    for lesson in lessons():
        number = lesson.key.split("_", 1)[0]
        add(lesson.title, f"lesson {number} title")
        add(lesson.builds, f"lesson {number}: what it builds")
        for exercise in lesson.exercises:
            add(exercise.title, f"{exercise.id} title")
            add(exercise.builds, f"{exercise.id}: what it builds")
            if _WORDS.search(exercise.signature):  # "a trained model: ...", "-> same structure"
                add(exercise.signature, f"{exercise.id} signature (keep its code as it is)")
            for group in exercise.groups:
                add(group.name, f"{exercise.id}: name of a group of cases, a few words shown in reports")
                add(group.hint, f"{exercise.id} hint (group {group.name!r})")
            for key, hint in exercise.hints.items():
                add(hint, f"{exercise.id} hint ({key})")
            if exercise.threshold is not None:
                add(exercise.threshold.name, f"{exercise.id}: name of the score")
                add(exercise.threshold.unit, f"{exercise.id}: unit of the score")
            for template, group in note_templates(exercise, seeds).items():
                add(template, f"{exercise.id} case note (group {group!r}); {{0}}, {{1}}...: its numbers")
    for symptom, hint in GENERIC_HINTS.items():
        add(hint, f"generic hint ({symptom})")
    return out
