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


# -- the catalogue's upkeep (Babel: for the course's maintainers, not a learner's run time) -----------
#
#     python -m autograder.i18n extract   # write locale/minidl.pot from the code and the exercise catalogue
#     python -m autograder.i18n update    # merge it into every .po (translations kept; *.draft.po fill gaps)
#     python -m autograder.i18n compile   # write each .mo from its .po
#     python -m autograder.i18n check     # exit 1 if a message lacks a translation or a .mo is stale

PACKAGE = pathlib.Path(__file__).resolve().parent
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def po_path(lang: str) -> pathlib.Path:
    return LOCALE_DIR / LANGUAGES[lang][0] / "LC_MESSAGES" / f"{DOMAIN}.po"


def _fixed_date():
    """The catalogue's dates never change, so its files change only with its messages."""
    import datetime
    return datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def template():
    """The catalogue's template: every ``_``/``N_``/``ngettext`` message of the package, and the
    exercise catalogue's texts (``catalog.text.messages()``), as a Babel Catalog."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir

    pot = Catalog(project="minidl", version="0.1", copyright_holder="the minidl course", domain=DOMAIN, creation_date=_fixed_date(), revision_date=_fixed_date(),
                  fuzzy=False)

    for filename, lineno, message, comments, context in extract_from_dir(
            str(PACKAGE), keywords=KEYWORDS, comment_tags=("TRANSLATORS:",), strip_comment_tags=True,
            directory_filter=lambda d: "locale" not in pathlib.Path(d).parts and "__pycache__" not in d):
        if not (message[0] if isinstance(message, tuple) else message):
            continue
        pot.add(message, None, [(f"autograder/{filename}", lineno)], auto_comments=comments, context=context)
    try:
        from .catalog import text
    except ImportError:  # the exercise catalogue's texts are not marked yet
        text = None
    if text is not None:
        for message, where in text.messages().items():
            if message and message not in pot:
                pot.add(message, None, auto_comments=[where] if where else ())
            elif message:
                pot[message].auto_comments.append(where)
    return pot


def read_po(path: pathlib.Path):
    from babel.messages.pofile import read_po as babel_read_po
    with open(path, "rb") as f:
        return babel_read_po(f, locale=path.parent.parent.name, domain=DOMAIN)


def write_po(catalog, path: pathlib.Path) -> None:
    import io
    from babel.messages.pofile import write_po as babel_write_po
    buffer = io.BytesIO()
    babel_write_po(buffer, catalog, width=100, include_lineno=False, sort_output=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


def mo_bytes(catalog) -> bytes:
    import io
    from babel.messages.mofile import write_mo
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    return buffer.getvalue()


def placeholders(text: str) -> list[str]:
    """The ``{fields}`` of a message, sorted ('{name}', '{points:g}'); doubled braces are text."""
    import string
    try:
        return sorted("{%s%s}" % (f, ":" + spec if spec else "") for _lit, f, spec, _conv in string.Formatter().parse(text)
                      if f is not None)
    except ValueError:
        return ["<unbalanced braces>"]


def update(lang: str = "zh") -> int:
    """Merge the template into ``lang``'s .po (translations kept, no fuzzy matching); untranslated
    messages take their translation from ``*.draft.po`` next to it. Returns the messages left untranslated."""
    from babel.messages.catalog import Catalog

    path = po_path(lang)
    pot = template()
    if path.exists():
        po = read_po(path)
    else:
        po = Catalog(locale=LANGUAGES[lang][0], project="minidl", version="0.1", copyright_holder="the minidl course", domain=DOMAIN, creation_date=_fixed_date(),
                     revision_date=_fixed_date(), fuzzy=False)
    po.update(pot, no_fuzzy_matching=True, update_creation_date=False)
    po.obsolete.clear()
    drafts = {}
    for draft in sorted(path.parent.glob("*.draft.po")):
        for m in read_po(draft):
            if m.id and m.string and not m.fuzzy:
                drafts.setdefault(m.id, m.string)
    for m in po:
        if m.id and not m.string and m.id in drafts:
            m.string = drafts[m.id]
        if m.id and m.string and "fuzzy" in m.flags:
            m.flags.discard("fuzzy")
    po.revision_date = _fixed_date()
    po.last_translator = "minidl course <minidl-course@users.noreply.github.com>"
    po.language_team = "Simplified Chinese"
    write_po(po, path)
    return sum(1 for m in po if m.id and not m.string)


def compile_mo(lang: str = "zh") -> pathlib.Path:
    path = po_path(lang)
    mo = path.with_suffix(".mo")
    mo.write_bytes(mo_bytes(read_po(path)))
    return mo


def problems(lang: str = "zh", po_file: pathlib.Path | None = None, mo_file: pathlib.Path | None = None,
             pot=None) -> list[str]:
    """What is wrong with ``lang``'s catalogue: messages of a fresh extraction missing from the .po,
    untranslated or fuzzy ones, translations whose ``{placeholders}`` differ, a stale .mo."""
    po_file = po_file or po_path(lang)
    mo_file = mo_file or po_file.with_suffix(".mo")
    if not po_file.exists():
        return [f"{po_file} is missing: run python -m autograder.i18n update"]
    pot = template() if pot is None else pot
    po = read_po(po_file)
    found = []
    for m in pot:
        if m.id and m.id not in po:
            found.append(f"not in the catalogue: {m.id!r}")
    for m in po:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        if not all(strings):
            found.append(f"no translation: {ids[0]!r}")
        elif m.fuzzy:
            found.append(f"fuzzy translation: {ids[0]!r}")
        elif any(placeholders(s) != placeholders(ids[-1 if k else 0]) for k, s in enumerate(strings)):
            found.append(f"placeholders differ: {ids[0]!r} -> {strings[0]!r}")
    if not mo_file.exists() or mo_file.read_bytes() != mo_bytes(po):
        found.append(f"{mo_file.name} is not compiled from the current {po_file.name}: run python -m autograder.i18n compile")
    return found


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m autograder.i18n", description="the grader's message catalogue")
    parser.add_argument("command", choices=["extract", "update", "compile", "check"])
    parser.add_argument("--lang", default="zh", choices=[k for k in LANGUAGES if k != SOURCE_LANGUAGE])
    args = parser.parse_args(argv)
    if args.command == "extract":
        from babel.messages.pofile import write_po as babel_write_po
        out = LOCALE_DIR / f"{DOMAIN}.pot"
        pot = template()
        with open(out, "wb") as f:
            babel_write_po(f, pot, width=100, include_lineno=False)
        print(f"{len(pot)} messages in {out}")
    elif args.command == "update":
        left = update(args.lang)
        print(f"updated {po_path(args.lang)}: {left} message(s) without a translation")
    elif args.command == "compile":
        print(f"wrote {compile_mo(args.lang)}")
    else:
        found = problems(args.lang)
        for line in found:
            print(line, file=sys.stderr)
        print(f"{po_path(args.lang)}: " + (f"{len(found)} problem(s)" if found else "complete"))
        return 1 if found else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
