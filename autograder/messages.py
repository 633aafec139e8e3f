"""The upkeep of the grader's message catalogue (i18n.py reads it at run time). For the course's
maintainers, with Babel; a learner's run never imports this.

    python -m autograder.messages extract   # write locale/minidl.pot from the code and the exercise catalogue
    python -m autograder.messages update    # merge the messages into each .po (translations kept)
    python -m autograder.messages compile   # write each .mo from its .po
    python -m autograder.messages check     # exit 1 if a message lacks a translation or a .mo is stale

The messages are every ``_``/``N_``/``ngettext`` string of the package and the texts of the
exercise declarations (``catalog/text.py``).
"""

from __future__ import annotations

import pathlib

from .i18n import DOMAIN, LANGUAGES, LOCALE_DIR, SOURCE_LANGUAGE

PACKAGE = pathlib.Path(__file__).resolve().parent
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def po_path(lang: str) -> pathlib.Path:
    return LOCALE_DIR / LANGUAGES[lang][0] / "LC_MESSAGES" / f"{DOMAIN}.po"


def _fixed_date():
    """The catalogue's dates never change, so its files change only with its messages."""
    import datetime
    return datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def new_catalog(**kwargs):
    """An empty Babel catalogue of the course (dated once, so its files change only with its messages)."""
    from babel.messages.catalog import Catalog

    return Catalog(project="minidl", version="0.1", copyright_holder="the minidl course", domain=DOMAIN,
                   creation_date=_fixed_date(), revision_date=_fixed_date(), fuzzy=False, **kwargs)


def template():
    """The catalogue's template: every ``_``/``N_``/``ngettext`` message of the package, and the
    exercise catalogue's texts (``catalog.text.messages()``), as a Babel Catalog."""
    from babel.messages.extract import extract_from_dir

    pot = new_catalog()
    for filename, lineno, message, comments, context in extract_from_dir(
            str(PACKAGE), keywords=KEYWORDS, comment_tags=("TRANSLATORS:",), strip_comment_tags=True,
            directory_filter=lambda d: "locale" not in pathlib.Path(d).parts and "__pycache__" not in d):
        if not (message[0] if isinstance(message, tuple) else message):
            continue
        pot.add(message, None, [(f"autograder/{filename}", lineno)], auto_comments=comments, context=context)
    from .catalog import text

    for message, where in text.messages().items():
        if message not in pot:
            pot.add(message, None, auto_comments=[where])
        else:
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
    """Merge the template into ``lang``'s .po (translations kept, no fuzzy matching, messages gone
    from the code dropped). Returns how many messages are left untranslated."""
    path = po_path(lang)
    pot = template()
    if path.exists():
        po = read_po(path)
    else:
        po = new_catalog(locale=LANGUAGES[lang][0])
    po.update(pot, no_fuzzy_matching=True, update_creation_date=False)
    po.obsolete.clear()
    for m in po:
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
        return [f"{po_file} is missing: run python -m autograder.messages update"]
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
        found.append(f"{mo_file.name} is not compiled from the current {po_file.name}: run python -m autograder.messages compile")
    return found


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m autograder.messages", description="the grader's message catalogue")
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
