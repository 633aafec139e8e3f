"""What an LMS's download says about a file: whose it is, and which of a student's attempts it is.

- Canvas: ``<lastfirst>[_LATE]_<user id>_<attachment id>_<file>[-N].ipynb``. The attachment id
  grows with every upload, and Canvas adds ``-N`` to a file name uploaded again.
- Moodle: a folder per student, ``<Full Name>_<id>_assignsubmission_file_/<file>``; Moodle's
  download holds the student's latest attempt only, so two notebooks of one lesson in one folder
  were uploaded together and cannot be ordered.
- Blackboard: ``<assignment>_<user>_attempt_<YYYY-MM-DD-HH-MM-SS>_<file>``: the attempt's date.
- Anything else: ``<student>_<file>`` (``jdoe_01_tensors.ipynb``), no order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .catalog import LESSONS

MOODLE = "_assignsubmission_"
BLACKBOARD = re.compile(r"_attempt_(\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)")
CANVAS_AGAIN = re.compile(r"-(\d+)$")  # Canvas's suffix on a file name uploaded again


@dataclass(frozen=True)
class Named:
    """A file's name read as an LMS names it. ``attempt`` orders one student's attempts (larger
    is later) within one LMS; None where the name does not tell."""

    student: str
    lms: str  # canvas | moodle | blackboard | plain
    attempt: tuple | None = None


def safe(text: str) -> str:
    """A name usable as a file name and a CSV cell."""
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", text).strip("_.")[:80] or "unknown"


def lesson_in(text: str) -> str | None:
    """The lesson a file or folder name mentions ('..._01_tensors.ipynb' -> '01_tensors')."""
    return next((key for key in LESSONS if key in text), None)


def without_lessons(text: str) -> str:
    for key in LESSONS:
        text = text.replace(key, "")
    return text


def read_folder(name: str) -> Named | None:
    """A Moodle submission folder's student ('Jane Doe_12345_assignsubmission_file_'), else None."""
    if MOODLE not in name:
        return None
    return Named(safe(name.split(MOODLE)[0]), "moodle")


def read_name(stem: str) -> Named:
    """A file name (without ``.ipynb``) read as Canvas, Moodle, Blackboard or plain names it."""
    name = without_lessons(stem)
    if MOODLE in name:
        return Named(safe(name.split(MOODLE)[0]), "moodle")
    date = BLACKBOARD.search(name)
    if date:
        return Named(safe(name[: date.start()].split("_", 1)[-1]), "blackboard", (date.group(1),))
    again = CANVAS_AGAIN.search(name)
    tokens = [t for t in re.split(r"[_\s]+", CANVAS_AGAIN.sub("", name)) if t and t.upper() != "LATE"]
    numbers = [i for i, t in enumerate(tokens) if t.isdigit()]
    if len(numbers) >= 2 and numbers[1] == numbers[0] + 1:  # Canvas: user id, then attachment id
        first = numbers[0]
        return Named(safe("_".join(tokens[: first + 1])), "canvas",
                     (int(tokens[first + 1]), int(again.group(1)) if again else 0))
    if numbers:
        return Named(safe("_".join(tokens[: numbers[0] + 1])), "plain")
    return Named(safe("_".join(tokens)), "plain")
