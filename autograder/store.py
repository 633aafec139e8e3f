"""The store of graded submissions: one JSON per submission, written atomically by the grading
run's own process (never by a worker), keyed by what the grade depends on.

    <out>/<student>/<lesson>.json    {"digest": ..., "student": ..., report keys...}

A submission whose JSON carries the current ``digest`` is graded; any other is graded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib


def digest(data: bytes, hidden: bool, lesson: str | None = None) -> str:
    """What a stored result depends on: the notebook's bytes, the lesson it is graded as, hidden
    cases or not (and which secret), the language its messages are in when ``batch --lang`` sets
    one (``MINIDL_LANG``; else the notebook's own, in its bytes), and the grader (``policy.grader_digest``)."""
    from .i18n import environment_language
    from .policy import grader_digest, secret

    key = hashlib.sha256((secret().value or "").encode()).hexdigest()[:12] if hidden else "public"
    lang = environment_language() or "own"
    return hashlib.sha256(data + f"|{lesson}|{key}|{lang}|{grader_digest()}".encode()).hexdigest()[:24]


def write_atomic(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def unit_file(out: pathlib.Path, student: str, key: str) -> pathlib.Path:
    return out / student / f"{key}.json"


def load(out: pathlib.Path, student: str, key: str) -> dict | None:
    """The stored report of one submission, or None."""
    try:
        return json.loads(unit_file(out, student, key).read_text())
    except (OSError, ValueError):
        return None


def is_current(out: pathlib.Path, student: str, key: str, current: str) -> bool:
    stored = load(out, student, key)
    return stored is not None and stored.get("digest") == current


def save(out: pathlib.Path, student: str, key: str, report: dict) -> None:
    write_atomic(unit_file(out, student, key), json.dumps(report, indent=1))
