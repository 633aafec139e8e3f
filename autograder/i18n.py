"""The grader's languages: every message a learner or grader reads comes from one gettext
catalogue, ``autograder/locale/<locale>/LC_MESSAGES/minidl.po`` (compiled to ``minidl.mo``).

    from .i18n import _
    _("{name} is not implemented yet").format(name=...)

English is the source language: a message is written in English in the code, and ``_`` looks
it up in the current language's catalogue (English when it has none). The current language is
set once per process: in a notebook by its set-up cell (``use_language("zh")``), on the CLI by
``--lang``, ``LANG`` or the notebook's metadata (``{"minidl": {"lang": "zh"}}``).
``MINIDL_LANG`` in the environment wins over all of them, so a grader can pass its language to
the kernels it starts.

The catalogue's upkeep (extracting messages, merging, compiling, checking) is messages.py.

Case notes ("N=300, M=400, D=32") are looked up by their template: numbers become ``{0}``,
``{1}``, ..., so one catalogue entry serves every drawn size (``note_template``).
"""

from __future__ import annotations

import contextlib
import functools
import gettext
import os
import pathlib
import re

DOMAIN = "minidl"
LOCALE_DIR = pathlib.Path(__file__).resolve().parent / "locale"
# The course's languages: code -> (gettext locale folder, name in that language)
LANGUAGES: dict[str, tuple[str, str]] = {"en": ("en", "English"), "zh": ("zh_CN", "简体中文")}
SOURCE_LANGUAGE = "en"

_current = SOURCE_LANGUAGE


def normalize(lang: str | None) -> str | None:
    """The course's code for a language setting ("zh_CN.UTF-8", "zh-Hans", "en_US" -> "zh", "zh",
    "en"); None for an unset or neutral one ("", "C", "POSIX") or a language the course lacks."""
    if not lang:
        return None
    code = re.split(r"[_.@-]", lang.strip(), maxsplit=1)[0].lower()
    return code if code in LANGUAGES else None


def environment_language() -> str | None:
    """The language the environment asks for: ``MINIDL_LANG``, else None."""
    return normalize(os.environ.get("MINIDL_LANG"))


_current = environment_language() or SOURCE_LANGUAGE  # a process a grader started speaks the grader's language


def locale_language() -> str | None:
    """The user's locale (``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``, the first set), as a course language."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name)
        if value and value.split(":")[0] not in ("C", "POSIX", "C.UTF-8", "C.utf8"):
            return normalize(value.split(":")[0])
    return None


def use_language(lang: str) -> str:
    """Speak ``lang`` ("en", "zh") from now on in this process; ``MINIDL_LANG`` wins when set.
    Returns the language in use."""
    global _current
    chosen = environment_language() or normalize(lang)
    if chosen is None:
        raise ValueError(f"unknown language {lang!r}: the course has {', '.join(LANGUAGES)}")
    _current = chosen
    return _current


@contextlib.contextmanager
def speaking(lang: str | None):
    """Speak ``lang`` inside the block, and pass it to the processes started there (``MINIDL_LANG``);
    the language and the environment before it come back after. None: leave things as they are.
    (A grader of many notebooks speaks each one's own language in turn, whatever ``MINIDL_LANG`` says.)"""
    global _current
    chosen = normalize(lang)
    if chosen is None:
        yield _current
        return
    before, env = _current, os.environ.get("MINIDL_LANG")
    _current = chosen
    os.environ["MINIDL_LANG"] = chosen
    try:
        yield chosen
    finally:
        _current = before
        if env is None:
            os.environ.pop("MINIDL_LANG", None)
        else:
            os.environ["MINIDL_LANG"] = env


def language() -> str:
    """The language in use in this process."""
    return _current


def notebook_language(nb) -> str:
    """A notebook's language, from its metadata ({"minidl": {"lang": "zh"}}); English when unset."""
    meta = nb.get("metadata", {}) if isinstance(nb, dict) else nb.metadata
    return normalize(meta.get("minidl", {}).get("lang")) or SOURCE_LANGUAGE


@functools.cache
def translation(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of ``lang`` (a NullTranslations for English, the source language)."""
    if lang == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[LANGUAGES[lang][0]], fallback=True)


def gettext_in(lang: str, message: str) -> str:
    """``message`` in ``lang``."""
    return translation(lang).gettext(message) if message else message


def _(message: str) -> str:
    """``message`` in the language in use."""
    return gettext_in(_current, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translation(_current).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a message for the catalogue without translating it here (translated where shown)."""
    return message


def width(text: str) -> int:
    """Columns ``text`` takes in a terminal: a Chinese character takes two."""
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text: str, columns: int, right: bool = False) -> str:
    """``text`` padded with spaces to ``columns`` terminal columns (on the left when ``right``)."""
    fill = " " * max(0, columns - width(text))
    return fill + text if right else text + fill


NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.])")


def note_template(note: str) -> tuple[str, list[str]]:
    """A case note as its catalogue template and its numbers:
    "N=300, M=400" -> ("N={0}, M={1}", ["300", "400"]). Braces in the note are doubled."""
    numbers: list[str] = []

    def slot(match: re.Match) -> str:
        numbers.append(match.group(0))
        return "{%d}" % (len(numbers) - 1)

    escaped = note.replace("{", "{{").replace("}", "}}")
    return NUMBER.sub(slot, escaped), numbers


def note(text: str) -> str:
    """A case note in the language in use (see ``note_template``)."""
    if not text or _current == SOURCE_LANGUAGE:
        return text
    template, numbers = note_template(text)
    translated = _(template)
    return text if translated == template else translated.format(*numbers)
