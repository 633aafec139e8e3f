"""The exercise catalogue: one file per lesson, each declaring its ``LESSON``.

Everything else (the notebook check, the CLI, nbgrader's test cells, the README's catalogue,
the tests) reads the exercises from here.
"""

from __future__ import annotations

from .. import course
from ..exercise import Exercise, Lesson
from . import autograd, broadcasting, cnn, lm, rnn, scale, tensors, training, transformer

LESSONS: dict[str, Lesson] = {
    m.LESSON.key: m.LESSON for m in (tensors, broadcasting, autograd, training, cnn, rnn, transformer, scale, lm)
}
LESSONS = course.merge(LESSONS, course.own_lessons())  # an instructor's own exercises (see course.py)
EXERCISES: dict[str, Exercise] = {e.id: e for lesson in LESSONS.values() for e in lesson.exercises}


def lesson_of(exercise_id: str) -> Lesson:
    return next(lesson for lesson in LESSONS.values() if any(e.id == exercise_id for e in lesson.exercises))
