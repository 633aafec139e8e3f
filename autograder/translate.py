"""Translated editions of the lessons, from the one English source.

Each lesson's translation is a Markdown file beside the sources, ``course/translations/<lang>/<lesson>.md``.
It holds one entry per prose cell of ``course/source/<lesson>/<lesson>.ipynb``, headed by the
cell's key (kept in the cell's metadata, ``{"minidl": {"key": "p7"}}``) and a hash of its
English text:

    <!-- cell p7 sha 1a2b3c4d5e6f -->
    ## 广播
    ……

and one entry per code cell with comments: the comments translated, one per line, in the order
they appear (code, names and strings stay as they are; nbgrader's markers are not comments to
translate):

    <!-- comments c12 sha 9f8e7d6c5b4a -->
    # 每行一个注释

A header ending in ``todo`` marks an entry not yet translated (``sync`` writes those, with the
English to translate in place). When an English cell changes, its hash no longer matches and
the check names the cell. ``glossary.md`` in the same folder lists each term once, English beside
its translation; where a cell's English uses a term, its translation must use that word.

    python -m autograder.translate sync  [--lang zh] [LESSON ...]   keys for new cells, entries to translate
    python -m autograder.translate check [--lang zh] [LESSON ...]   list what is missing, stale or off-glossary
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import io
import pathlib
import re
import sys
import tokenize

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "course" / "translations"
HEADER = re.compile(r"^<!-- (cell|comments) (\w+) sha (\w*)( todo)? -->$", re.M)
# Comments that are not prose: nbgrader's markers, linters' and type checkers' pragmas, rules.
NOT_PROSE = re.compile(r"^#+\s*(BEGIN|END) (SOLUTION|HIDDEN TESTS)|^#\s*(noqa|type:|pragma)|^#!|^[#\W\d_]*$")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def comments(code: str) -> list[tuple[int, int, str]]:
    """The prose comments of a code cell: (line, column, text) of each, in order. IPython's
    ``%magic`` and ``!shell`` lines are left out (they are not Python)."""
    lines = code.splitlines(keepends=True)
    python = "".join("\n" if line.lstrip().startswith(("%", "!")) else line for line in lines)
    found = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(python).readline):
            if token.type == tokenize.COMMENT and not NOT_PROSE.match(token.string):
                found.append((token.start[0] - 1, token.start[1], token.string))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    return found


def english(cell) -> str:
    """What a cell's translation is made from: a prose cell's text, a code cell's comments."""
    if cell.cell_type == "markdown":
        return cell.source
    return "\n".join(text for _, _, text in comments(cell.source))


def translatable(cell) -> bool:
    """Prose cells, and code cells with comments that the build does not stamp (badge, set-up,
    test and grade cells are stamped in each language from the message catalogue)."""
    if cell.metadata.get("minidl", {}).get("role"):
        return False
    return cell.cell_type == "markdown" or (cell.cell_type == "code" and bool(comments(cell.source)))


@dataclasses.dataclass
class Entry:
    kind: str  # "cell" or "comments"
    key: str
    sha: str
    text: str
    todo: bool = False

    def render(self) -> str:
        return f"<!-- {self.kind} {self.key} sha {self.sha}{' todo' if self.todo else ''} -->\n{self.text.strip()}\n"


def read_entries(path: pathlib.Path) -> dict[str, Entry]:
    """The entries of a translation file, by cell key."""
    if not path.exists():
        return {}
    text = path.read_text()
    heads = list(HEADER.finditer(text))
    entries = {}
    for head, after in zip(heads, heads[1:] + [None]):
        body = text[head.end():after.start() if after else len(text)].strip("\n")
        entries[head.group(2)] = Entry(head.group(1), head.group(2), head.group(3), body, bool(head.group(4)))
    return entries


def write_entries(path: pathlib.Path, entries: list[Entry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(e.render() for e in entries))


def key_of(cell) -> str | None:
    return cell.metadata.get("minidl", {}).get("key")


def assign_keys(nb) -> bool:
    """Give every translatable cell without a key the next free one (p1, p2, ... for prose,
    c1, c2, ... for code). Keys are never reused or renumbered. True if a key was added."""
    used = {key_of(c) for c in nb.cells} - {None}
    numbers = [int(k[1:]) for k in used if k[1:].isdigit()]
    following = max(numbers, default=0) + 1
    added = False
    for cell in nb.cells:
        if translatable(cell) and key_of(cell) is None:
            cell.metadata.setdefault("minidl", {})["key"] = f"{'p' if cell.cell_type == 'markdown' else 'c'}{following}"
            following += 1
            added = True
    return added


def entry_for(cell) -> Entry:
    """A cell's entry to translate: its English in place, marked todo."""
    return Entry("cell" if cell.cell_type == "markdown" else "comments", key_of(cell), sha(english(cell)),
                 english(cell), todo=True)


def glossary(lang: str) -> tuple[dict[str, str], list[str]]:
    """The glossary of ``lang`` (English term -> translation) and its problems (a term listed twice)."""
    path = TRANSLATIONS / lang / "glossary.md"
    terms: dict[str, str] = {}
    problems = []
    if not path.exists():
        return terms, problems
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or set(cells[0]) <= set("-: ") or cells[0].lower() == "english":
            continue
        term, word = cells[0].lower(), cells[1]
        if term in terms and terms[term] != word:
            problems.append(f"glossary.md: {term!r} is translated two ways: {terms[term]} and {word}")
        terms[term] = word
    return terms, problems


# What a term check ignores in the English: code, formulas, links' targets and HTML tags.
NOT_WORDS = re.compile(r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\]\([^)]*\)|<[^>]+>|https?://\S+", re.S)


def uses(term: str, text: str) -> bool:
    """Does ``text`` use ``term`` as a word (plural too), not as code: not in backticks or formulas,
    and not a part of a name such as ``torch.ao.quantization`` or ``id(optimizer)``?"""
    return re.search(rf"(?<![\w.(-]){re.escape(term)}(e?s)?(?![\w(-]|\.\w)", NOT_WORDS.sub(" ", text), re.I) is not None


@dataclasses.dataclass
class Lesson:
    """A lesson's source notebook and its translation file in one language."""

    key: str
    lang: str

    @property
    def source(self) -> pathlib.Path:
        return ROOT / "course" / "source" / self.key / f"{self.key}.ipynb"

    @property
    def file(self) -> pathlib.Path:
        return TRANSLATIONS / self.lang / f"{self.key}.md"

    def problems(self) -> list[str]:
        """What keeps the translation from being complete and current, one line per cell."""
        nb = nbformat.read(self.source, as_version=4)
        entries = read_entries(self.file)
        terms, _ = glossary(self.lang)
        where = f"{self.file.relative_to(ROOT)}"
        found, keys = [], set()
        for index, cell in enumerate(nb.cells):
            if not translatable(cell):
                continue
            key = key_of(cell)
            first = english(cell).strip().splitlines()[0][:60] if english(cell).strip() else ""
            name = f"{self.key} cell {index} ({key}: {first!r})"
            if key is None:
                found.append(f"{name}: has no key; run `python -m autograder.translate sync`")
                continue
            keys.add(key)
            entry = entries.get(key)
            if entry is None:
                found.append(f"{name}: no translation in {where}; run `python -m autograder.translate sync`")
            elif entry.todo:
                found.append(f"{name}: not translated yet in {where} (its header ends in 'todo')")
            elif entry.sha != sha(english(cell)):
                found.append(f"{name}: the English changed after its translation in {where} "
                             f"(sha {entry.sha}, now {sha(english(cell))}): update the translation, then its sha")
            elif cell.cell_type == "code" and not self.comments_fit(cell, entry):
                found.append(f"{name}: {len(comments(cell.source))} comments in the code, but "
                             f"{len(entry.text.splitlines())} lines in {where}, or a line not starting with '#'")
            else:
                found += [f"{name}: uses {term!r}, so its translation must say {word}"
                          for term, word in terms.items() if uses(term, english(cell)) and word not in entry.text]
        found += [f"{where}: entry {key} belongs to no cell of {self.key}" for key in entries.keys() - keys]
        return found

    @staticmethod
    def comments_fit(cell, entry: Entry) -> bool:
        lines = entry.text.splitlines()
        return len(lines) == len(comments(cell.source)) and all(line.startswith("#") for line in lines)

    def sync(self) -> int:
        """Key new cells (in the source notebook) and add entries to translate; returns how many were added."""
        nb = nbformat.read(self.source, as_version=4)
        if assign_keys(nb):
            text = nbformat.writes(nb, version=4)
            self.source.write_text(text if text.endswith("\n") else text + "\n")
        entries = read_entries(self.file)
        ordered, added = [], 0
        for cell in nb.cells:
            if translatable(cell):
                if key_of(cell) not in entries:
                    entries[key_of(cell)] = entry_for(cell)
                    added += 1
                ordered.append(entries.pop(key_of(cell)))
        write_entries(self.file, ordered + list(entries.values()))  # entries of deleted cells stay, for the check to name
        return added


def translated(nb, lesson: str, lang: str) -> tuple[object, list[str]]:
    """A copy of the stamped notebook ``nb`` with its prose and comments in ``lang``, and the cells
    left in English (no current translation). Code is untouched but for its comments."""
    nb = copy.deepcopy(nb)
    entries = read_entries(Lesson(lesson, lang).file)
    english_left = []
    for index, cell in enumerate(nb.cells):
        if not translatable(cell):
            continue
        entry = entries.get(key_of(cell))
        if entry is None or entry.todo or entry.sha != sha(english(cell)) or (
                cell.cell_type == "code" and not Lesson.comments_fit(cell, entry)):
            english_left.append(f"{lesson} cell {index} ({key_of(cell)})")
        elif cell.cell_type == "markdown":
            cell.source = entry.text
        else:
            cell.source = with_comments(cell.source, entry.text.splitlines())
    return nb, english_left


def with_comments(code: str, translations: list[str]) -> str:
    """``code`` with its prose comments replaced, in order, by ``translations``."""
    lines = code.splitlines(keepends=True)
    for (row, col, text), new in zip(reversed(comments(code)), reversed(translations)):
        lines[row] = lines[row][:col] + new + lines[row][col + len(text):]
    return "".join(lines)


def lessons(names: list[str]) -> list[str]:
    found = sorted(p.parent.name for p in (ROOT / "course" / "source").glob("*/*.ipynb") if p.stem == p.parent.name)
    return [k for k in found if not names or any(k.startswith(n) for n in names)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.translate", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["sync", "check"])
    parser.add_argument("lessons", nargs="*", help="lesson keys or their numbers (default: all)")
    parser.add_argument("--lang", default="zh")
    args = parser.parse_args(argv)
    problems = glossary(args.lang)[1]
    for key in lessons(args.lessons):
        lesson = Lesson(key, args.lang)
        if args.what == "sync":
            print(f"{lesson.file.relative_to(ROOT)}: {lesson.sync()} entries added")
        problems += lesson.problems()
    print("\n".join(problems) or "every cell is translated and current")
    return 1 if problems and args.what == "check" else 0


if __name__ == "__main__":
    sys.exit(main())
