"""The class at a glance: what a graded class got right and wrong, as static HTML pages.

    python -m autograder insight grades.csv --out insight/ [--names]
    python -m autograder batch DIR --out grades.csv --insight insight/

Reads what ``batch`` wrote: the CSV (one row per student and exercise, the scores and statuses)
and, for each graded submission, its stored JSON (``grades/<student>/<lesson>.json``), whose
exercises carry the first failing case the learner saw (check group, symptom, message, hint).
Writes ``index.html`` (the lessons side by side, where the class drops, the students whose
scores fall) and one page per lesson: per exercise the shares of full, partial and zero scores,
a histogram, median and spread, and the most common first failures with the hint learners saw
and one anonymised example; the lesson's score distribution, what was left unattempted and the
grader's problems with the students they hit.

The pages need no server (plots are PNGs inside the page, the tables sort with a few lines of
JavaScript) and fit a phone's screen. Students are opaque ids (``outputs.student_id``, the
``id`` column of the per-student CSV maps them back) unless ``--names``. Learner text (messages,
inputs, notes) is escaped, and an example report has its student's name replaced by the id.
"""

from __future__ import annotations

import base64
import collections
import csv
import dataclasses
import html
import io
import json
import pathlib
import re
import statistics
from collections.abc import Callable, Iterable, Sequence

from .catalog import LESSONS
from .outputs import student_id, students_csv
from .store import write_atomic

FALL = 20.0  # percentage points: a student whose lesson score falls by more is listed
COMMON = 5   # first failures shown per exercise
UNKNOWN = "unknown lesson"  # where the submissions go whose lesson the grader could not tell
SYMPTOMS = {
    "values": "wrong values", "shape": "wrong shape", "dtype": "wrong dtype", "device": "wrong device",
    "nonfinite": "NaN or inf", "type": "wrong type", "raised": "raised an exception",
    "no_raise": "did not raise for an invalid input", "forbidden": "forbidden", "timeout": "did not finish",
    "slow": "correct but slower", "metric": "below the threshold",
}
PROBLEM_KINDS = (  # (kind, words that say it), first match wins
    ("unreadable", ("could not be read", "cannot be read", "is not a notebook", "not a notebook")),
    ("timeout", ("ran past its", "took longer than", "did not finish")),
    ("crash", ("kernel died", "crashed", "was lost", "kernel failed", "out of memory")),
    ("grader failure", ("the grader failed", "not graded", "could not be judged", "read back")),
)


# -- what batch wrote -------------------------------------------------------------------------------

@dataclasses.dataclass
class Row:
    """One student's result on one exercise, as the CSV has it, with the first failure stored."""

    student: str
    lesson: str
    exercise: str
    score: float
    max_score: float
    status: str
    message: str
    problems: list[str]
    failure: dict | None = None

    @property
    def outcome(self) -> str:
        """'full', 'partial' or 'zero'."""
        if self.max_score > 0 and self.score >= self.max_score - 1e-9:
            return "full"
        return "partial" if self.score > 0 else "zero"


def read_csv(path: pathlib.Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def stored_reports(store: pathlib.Path) -> dict[tuple[str, str], dict]:
    """(student, lesson) -> the report stored for that submission."""
    found = {}
    for path in store.glob("*/*.json"):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and "exercises" in report:
            found[(report.get("student", path.parent.name), report.get("lesson") or "")] = report
    return found


def stored_result(report: dict, row: dict) -> dict | None:
    """The stored result of a CSV row's exercise, if the store holds the grade the CSV has (not one
    from before a regrade that failed in this run)."""
    stored = next((e for e in report.get("exercises", []) if e["id"] == row["exercise"]), None)
    if stored is None or stored["status"] != row["status"] or f"{stored['score']}" != row["score"]:
        return None
    return stored


def load_rows(csv_path: pathlib.Path) -> list[Row]:
    """Every row of the CSV, with the first failure and the list of problems its stored report has
    (the CSV joins a submission's problems into one text). A row of no known lesson goes under
    ``UNKNOWN``, not under the learner's file name, which may name them."""
    reports = stored_reports(csv_path.with_suffix(""))
    rows = []
    for r in read_csv(csv_path):
        report = reports.get((r["student"], r["lesson"]), {})
        stored = stored_result(report, r)
        problems = report["problems"] if stored else [p for p in r["problems"].split("; ") if p]
        rows.append(Row(r["student"], r["lesson"] if r["lesson"] in LESSONS else UNKNOWN, r["exercise"],
                        float(r["score"] or 0), float(r["max_score"] or 0), r["status"], r["message"], problems,
                        stored.get("failure") if stored else None))
    return rows


def student_ids(csv_path: pathlib.Path, students: Iterable[str]) -> dict[str, str]:
    """Each student's opaque id: the per-student CSV's ``id`` column, else computed as batch does."""
    ids = {}
    path = students_csv(csv_path)
    if path.exists():
        ids = {r["student"]: r["id"] for r in read_csv(path) if r.get("id")}
    return {s: ids.get(s) or student_id(s) for s in students}


# -- numbers ---------------------------------------------------------------------------------------

def lesson_order(rows: Iterable[Row]) -> list[str]:
    """The lessons present, in the course's order (unknown ones after, by name)."""
    present = {r.lesson for r in rows}
    return [k for k in LESSONS if k in present] + sorted(present - set(LESSONS))


def exercise_order(rows: Sequence[Row], lesson: str) -> list[str]:
    declared = [e.id for e in LESSONS[lesson].exercises] if lesson in LESSONS else []
    present = {r.exercise for r in rows if r.lesson == lesson and r.exercise}
    return [e for e in declared if e in present] + sorted(present - set(declared))


def shares(rows: Sequence[Row]) -> dict[str, float]:
    """The share of rows with full marks, partial credit and zero."""
    counts = collections.Counter(r.outcome for r in rows)
    return {k: counts[k] / len(rows) if rows else 0.0 for k in ("full", "partial", "zero")}


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile); the spread is the distance between the quartiles."""
    if len(values) < 2:
        v = values[0] if values else 0.0
        return v, v, v
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def symptom_label(failure: dict) -> str:
    """'values: wrong values', 'speed: correct but slower', 'forbidden: torch.cdist'."""
    symptom = failure.get("symptom", "")
    if symptom == "forbidden":
        names = re.search(r"; (.+) is off-limits here", failure.get("message", ""))
        return f"forbidden: {names.group(1)}" if names else "forbidden"
    return f"{failure.get('group', '?')}: {SYMPTOMS.get(symptom, symptom)}"


def first_failure_label(row: Row) -> str | None:
    """The name of the row's first failure; None for full marks, unattempted and grader problems."""
    if row.outcome == "full" or row.status not in ("checked", "forbidden"):
        return None
    if row.failure:
        return symptom_label(row.failure)
    return "hidden cases only (the public cases pass)"


@dataclasses.dataclass
class CommonFailure:
    label: str
    rows: list[Row]

    @property
    def hint(self) -> str:
        hints = collections.Counter(r.failure.get("hint", "") for r in self.rows if r.failure)
        return hints.most_common(1)[0][0] if hints else ""


def common_failures(rows: Sequence[Row]) -> list[CommonFailure]:
    """First failures grouped by check group and symptom, the most common first."""
    groups: dict[str, list[Row]] = collections.defaultdict(list)
    for r in rows:
        label = first_failure_label(r)
        if label:
            groups[label].append(r)
    return sorted((CommonFailure(k, v) for k, v in groups.items()), key=lambda c: (-len(c.rows), c.label))


def unattempted(rows: Sequence[Row]) -> collections.Counter:
    """Per status, the rows left unattempted: ``not_implemented`` (the stub) and ``missing``."""
    return collections.Counter(r.status for r in rows if r.status in ("not_implemented", "missing"))


def problem_kind(text: str) -> str:
    low = text.lower()
    return next((kind for kind, words in PROBLEM_KINDS if any(w in low for w in words)), "other")


@dataclasses.dataclass(frozen=True)
class Problem:
    """A grader problem: a notebook-level one (exercise '') or an exercise the grader could not check."""

    student: str
    lesson: str
    exercise: str
    kind: str
    text: str


def grader_problems(rows: Sequence[Row]) -> list[Problem]:
    """Timeouts, crashes, unreadable notebooks and the grader's own failures, each with its student:
    the notebook's problems, then each exercise the grader could not check (unless the notebook's
    problem already says why, as for a notebook that could not be read)."""
    found = []
    for (student, lesson), group in grouped(rows, lambda r: (r.student, r.lesson)):
        problems = group[0].problems
        found += [Problem(student, lesson, "", problem_kind(p), p) for p in problems]
        for r in group:
            repeated = r.message in problems or (problems and r.message.startswith("the notebook could not be read"))
            if r.status == "error" and not repeated:
                found.append(Problem(student, lesson, r.exercise, problem_kind(r.message), r.message))
    return found


def grouped(rows: Sequence[Row], key: Callable[[Row], object]) -> list[tuple[object, list[Row]]]:
    """Rows grouped by ``key``, in order of first appearance (the rows need not be sorted)."""
    groups: dict[object, list[Row]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    return list(groups.items())


def lesson_percent(rows: Sequence[Row]) -> dict[str, float]:
    """Each student's score on a lesson in percent."""
    totals: dict[str, list[float]] = {}
    for r in rows:
        t = totals.setdefault(r.student, [0.0, 0.0])
        t[0] += r.score
        t[1] += r.max_score
    return {s: 100 * got / most if most else 0.0 for s, (got, most) in totals.items()}


@dataclasses.dataclass(frozen=True)
class Fall:
    student: str
    before: str
    after: str
    before_pct: float
    after_pct: float

    @property
    def drop(self) -> float:
        return self.before_pct - self.after_pct


def falling_students(percent: dict[str, dict[str, float]], lessons: Sequence[str], fall: float = FALL) -> list[Fall]:
    """Students whose score falls by more than ``fall`` points from one lesson they handed in to
    the next one they handed in; the largest falls first."""
    found = []
    students = {s for scores in percent.values() for s in scores}
    for s in students:
        handed = [(k, percent[k][s]) for k in lessons if s in percent.get(k, {})]
        for (a, pa), (b, pb) in zip(handed, handed[1:]):
            if pa - pb > fall:
                found.append(Fall(s, a, b, pa, pb))
    return sorted(found, key=lambda f: (-f.drop, f.student, f.before))


# -- plots -----------------------------------------------------------------------------------------

def png(fig) -> str:
    """A matplotlib figure as a data URI (the page carries its images)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(width, height))
    ax.spines[["top", "right"]].set_visible(False)
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    return fig, ax


def histogram(values: Sequence[float], top: float, xlabel: str) -> str:
    """A histogram of ``values`` in [0, top], ten bins, the median marked."""
    fig, ax = figure(4.0, 1.9)
    ax.hist(values, bins=10, range=(0, top or 1), color="#4c72b0", edgecolor="white")
    if values:
        ax.axvline(statistics.median(values), color="#c44e52", linewidth=2, label="median")
        ax.legend(frameon=False, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel("submissions", fontsize=9)
    ax.tick_params(labelsize=8)
    return png(fig)


def lesson_trend(lessons: Sequence[str], percent: dict[str, dict[str, float]]) -> str:
    """Each lesson's median score with its quartiles, in course order: where the class drops."""
    fig, ax = figure(4.6, 2.2)
    spans = [quartiles(sorted(percent[k].values())) for k in lessons]
    x = range(len(lessons))
    ax.fill_between(x, [s[0] for s in spans], [s[2] for s in spans], color="#4c72b0", alpha=0.25,
                    label="middle half")
    ax.plot(x, [s[1] for s in spans], marker="o", color="#4c72b0", label="median")
    ax.set_xticks(list(x), [k[:2] for k in lessons], fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_yticks([0, 25, 50, 75, 100])
    ax.set_ylabel("score %", fontsize=9)
    ax.set_xlabel("lesson", fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    return png(fig)


def full_share_bars(labels: Sequence[str], full: Sequence[float]) -> str:
    """The share of full marks of every exercise, in course order (lowest bars: where the class drops)."""
    fig, ax = figure(4.6, 0.22 * len(labels) + 0.8)
    y = range(len(labels))
    ax.barh(list(y), [100 * f for f in full], color=["#c44e52" if f < 0.5 else "#4c72b0" for f in full])
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of submissions with full marks", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    return png(fig)


# -- HTML ------------------------------------------------------------------------------------------

STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:0 auto;padding:8px 12px;max-width:60em;line-height:1.4;color:#222}
h1{font-size:1.4em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}h3{font-size:1.05em}
img{max-width:100%;height:auto;display:block}
.wrap{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.88em}
th,td{padding:3px 5px;border-bottom:1px solid #eee;text-align:left;vertical-align:top;overflow-wrap:break-word}
td.n,th.n{text-align:right}td.n{white-space:nowrap}
table.sortable th{cursor:pointer;background:#f4f4f4}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f7f7f7;padding:6px;font-size:.85em;margin:4px 0}
.bar{display:flex;height:12px;min-width:60px;border-radius:2px;overflow:hidden}
.full{background:#55a868}.partial{background:#dd8452}.zero{background:#c44e52}
.key span{display:inline-block;width:10px;height:10px;margin:0 3px 0 8px}
.muted{color:#666;font-size:.9em}
summary{cursor:pointer;color:#555;font-size:.9em}
@media (max-width:600px){.wide{display:none}body{padding:6px}th{font-size:.85em}}
"""

SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(th => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], col = th.cellIndex;
  const up = th.getAttribute('aria-sort') !== 'ascending';
  th.closest('tr').querySelectorAll('th').forEach(h => h.removeAttribute('aria-sort'));
  th.setAttribute('aria-sort', up ? 'ascending' : 'descending');
  const key = row => { const c = row.cells[col], v = c.dataset.v ?? c.textContent.trim();
                       return c.dataset.v !== undefined ? parseFloat(v) : v.toLowerCase(); };
  const rows = [...body.rows].sort((a, b) => { const x = key(a), y = key(b);
                                              return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1); });
  body.append(...rows);
}));
"""


@dataclasses.dataclass(frozen=True)
class Cell:
    """A table cell: its HTML (escaped by whoever made it), and a number to sort by, if numeric."""

    html: str
    sort: float | None = None


def breakable(value: str) -> str:
    """``value`` escaped, with places to break a line after each dot and underscore (long exercise ids)."""
    return re.sub(r"([._])", r"\1<wbr>", html.escape(value))


def text(value: object) -> Cell:
    return Cell(breakable(str(value)))


def number(value: float, shown: str | None = None) -> Cell:
    return Cell(html.escape(shown if shown is not None else f"{value:.3g}"), value)


def percent_cell(share: float) -> Cell:
    return number(round(100 * share, 1), f"{100 * share:.0f}%")


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], wide: Sequence[int] = (), cls: str = "sortable",
          caption: str = "") -> str:
    """A table whose headers sort it; columns numbered in ``wide`` are hidden on a phone."""
    def attrs(i: int, c: Cell | None, tag: str = "td") -> str:
        classes = [x for x in ("n" if c is not None and c.sort is not None else "", "wide" if i in wide else "") if x]
        sort = f" data-v='{c.sort:.6g}'" if c is not None and c.sort is not None and tag == "td" else ""
        return (f" class='{' '.join(classes)}'" if classes else "") + sort

    body = list(rows)
    numeric = [bool(body) and body[0][i].sort is not None for i in range(len(headers))]
    head = "".join(f"<th{attrs(i, body[0][i] if numeric[i] else None, 'th')}>{html.escape(h)}</th>"
                   for i, h in enumerate(headers))
    lines = "".join("<tr>" + "".join(f"<td{attrs(i, c)}>{c.html}</td>" for i, c in enumerate(r)) + "</tr>"
                    for r in body)
    cap = f"<caption class=muted>{html.escape(caption)}</caption>" if caption else ""
    return (f"<div class=wrap><table class='{cls}'>{cap}<thead><tr>{head}</tr></thead>"
            f"<tbody>{lines}</tbody></table></div>")


def share_bar(s: dict[str, float]) -> str:
    title = ", ".join(f"{k} {100 * v:.0f}%" for k, v in s.items())
    return "<div class=bar title='{}'>{}</div>".format(
        title, "".join(f"<div class={k} style='width:{100 * v:.1f}%'></div>" for k, v in s.items() if v))


def image(uri: str, alt: str) -> str:
    return f"<img src='{uri}' alt='{html.escape(alt)}'>"


def page(title: str, body: str) -> str:
    return ("<!DOCTYPE html><html lang=en><head><meta charset='utf-8'>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>{body}"
            f"<script>{SORT_SCRIPT}</script></body></html>")


class Names:
    """How students are shown: opaque ids, or (``--names``) their names; and scrubbing a text of them."""

    def __init__(self, ids: dict[str, str], show_names: bool):
        self.ids, self.show_names = ids, show_names

    def __call__(self, student: str) -> str:
        return student if self.show_names else self.ids[student]

    def scrub(self, value: str, student: str) -> str:
        """``value`` with the student's name, and each word of it (numbers of 4 digits or more), replaced
        by their id."""
        words = [w for w in re.split(r"[\W_]+", student)
                 if (w.isdigit() and len(w) >= 4) or (w.isalpha() and len(w) > 2)]
        for word in sorted({student, *words}, key=len, reverse=True):
            value = re.sub(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", self.ids[student], value,
                           flags=re.IGNORECASE)
        return value


def example_report(row: Row, names: Names) -> str:
    """The first failure one learner saw, as the check showed it, anonymised."""
    if not row.failure:  # every failing case hidden: the learner saw only the message
        return names.scrub(f"{row.exercise}: {row.score:g}/{row.max_score:g} points\n  {row.message}", row.student)
    f = row.failure
    lines = [f"{row.exercise}: {row.score:g}/{row.max_score:g} points",
             f"First failing case ({f.get('group', '?')}, on {f.get('device', 'cpu')}):",
             f"  inputs:  {f.get('inputs', '')}", f"  problem: {f.get('message', row.message)}"]
    if f.get("where"):
        lines.append(f"  where:   {f['where']}")
    if f.get("hint"):
        lines.append(f"  hint:    {f['hint']}")
    return names.scrub("\n".join(lines), row.student)


def exercise_section(exercise: str, rows: Sequence[Row], names: Names) -> str:
    """One exercise: shares, histogram, median and spread, the most common first failures."""
    scores = sorted(r.score for r in rows)
    top = max(r.max_score for r in rows)
    q1, med, q3 = quartiles(scores)
    s = shares(rows)
    parts = [f"<h3 id='{html.escape(exercise)}'>{html.escape(exercise)}</h3>",
             f"<p>{len(rows)} submissions · full marks <b>{100 * s['full']:.0f}%</b>, partial "
             f"<b>{100 * s['partial']:.0f}%</b>, zero <b>{100 * s['zero']:.0f}%</b> · median "
             f"<b>{med:.3g}</b> of {top:g}, middle half {q1:.3g}–{q3:.3g}</p>", share_bar(s),
             image(histogram(scores, top, f"{exercise.split('.')[-1]}: points of {top:g}"),
                   f"histogram of the scores of {exercise}")]
    common = common_failures(rows)
    if common:
        table_rows = []
        for c in common[:COMMON]:
            example = min(c.rows, key=lambda r: names.ids[r.student])
            table_rows.append([
                text(c.label), number(len(c.rows)), percent_cell(len(c.rows) / len(rows)),
                Cell(f"{html.escape(c.hint or '—')}<details><summary>an example report</summary>"
                     f"<pre>{html.escape(example_report(example, names))}</pre></details>")])
        more = f"; {len(common) - COMMON} rarer ones not shown" if len(common) > COMMON else ""
        parts.append(table(["first failure", "count", "share", "the hint they saw"], table_rows, wide=(2,),
                           caption=f"most common first failures{more}", cls="sortable failures"))
    return "\n".join(parts)


def exercise_table(lesson: str, rows: Sequence[Row]) -> str:
    """The lesson's exercises side by side."""
    body = []
    for eid in exercise_order(rows, lesson):
        ex = [r for r in rows if r.exercise == eid]
        s, (q1, med, q3) = shares(ex), quartiles(sorted(r.score for r in ex))
        common = common_failures(ex)
        body.append([Cell(f"<a href='#{html.escape(eid)}'>{breakable(eid)}</a>"), percent_cell(s["full"]),
                     percent_cell(s["partial"]), percent_cell(s["zero"]), number(med), number(q3 - q1),
                     text(common[0].label if common else "—")])
    return table(["exercise", "full", "partial", "zero", "median", "spread", "most common first failure"],
                 body, wide=(6,), caption="spread: the distance between the quartiles (the middle half of the class)")


def unattempted_table(lesson: str, rows: Sequence[Row], names: Names) -> str:
    body = []
    for eid in exercise_order(rows, lesson):
        ex = [r for r in rows if r.exercise == eid]
        counts = unattempted(ex)
        who = sorted(names(r.student) for r in ex if r.status in ("not_implemented", "missing"))
        body.append([text(eid), number(counts["not_implemented"]), number(counts["missing"]),
                     text(", ".join(who) or "—")])
    return table(["exercise", "not implemented", "missing", "students"], body, wide=(3,),
                 caption="not implemented: the stub still raises NotImplementedError; missing: not in the notebook")


def problems_table(problems: Sequence[Problem], names: Names) -> str:
    if not problems:
        return "<p>None: every notebook ran and every exercise was checked.</p>"
    body = [[text(names(p.student)), text(p.kind), text(p.exercise or "the notebook"),
             text(names.scrub(p.text, p.student))] for p in problems]
    kinds = collections.Counter(p.kind for p in problems)
    summary = ", ".join(f"{n} {k}" for k, n in kinds.most_common())
    return (f"<p>{len({p.student for p in problems})} students hit by {len(problems)} problems ({summary}). "
            "Follow up with them: their scores may not say what they know.</p>"
            + table(["student", "kind", "where", "what happened"], body, cls="sortable problems"))


def lesson_page(lesson: str, rows: Sequence[Row], names: Names) -> str:
    """One lesson: the score distribution, the exercises, what was left undone, the grader's problems."""
    title = f"{lesson} · {LESSONS[lesson].title}" if lesson in LESSONS else lesson
    percent = lesson_percent(rows)
    values = sorted(percent.values())
    q1, med, q3 = quartiles(values)
    graded = [r for r in rows if r.exercise]
    parts = [f"<p><a href='index.html'>&larr; all lessons</a></p><h1>{html.escape(title)}</h1>",
             f"<p>{len(percent)} submissions · median <b>{med:.0f}%</b>, middle half {q1:.0f}–{q3:.0f}%</p>",
             image(histogram(values, 100, "lesson score %"), f"histogram of the lesson scores of {lesson}"),
             "<h2>Exercises</h2>", exercise_table(lesson, graded),
             "<p class='key muted'><span class=full></span>full<span class=partial></span>partial"
             "<span class=zero></span>zero</p>"]
    parts += [exercise_section(eid, [r for r in graded if r.exercise == eid], names)
              for eid in exercise_order(graded, lesson)]
    parts += ["<h2>Left unattempted</h2>", unattempted_table(lesson, graded, names),
              "<h2>Grader problems</h2>", problems_table(grader_problems(rows), names)]
    return page(title, "\n".join(parts))


def index_page(lessons: Sequence[str], rows: Sequence[Row], names: Names) -> str:
    """The lessons side by side, where the class drops, and the students whose scores fall."""
    by_lesson = {k: [r for r in rows if r.lesson == k] for k in lessons}
    percent = {k: lesson_percent(v) for k, v in by_lesson.items()}
    body = []
    for k in lessons:
        q1, med, q3 = quartiles(sorted(percent[k].values()))
        graded = [r for r in by_lesson[k] if r.exercise]
        problems = grader_problems(by_lesson[k])
        body.append([Cell(f"<a href='{page_name(k)}'>{breakable(k)}</a>"), number(len(percent[k])),
                     number(round(med, 1), f"{med:.0f}%"), number(round(q3 - q1, 1), f"{q3 - q1:.0f}"),
                     percent_cell(shares(graded)["full"]), number(sum(unattempted(graded).values())),
                     number(len({p.student for p in problems}))])
    exercises = [(k, e) for k in lessons for e in exercise_order(by_lesson[k], k)]
    full = [shares([r for r in by_lesson[k] if r.exercise == e])["full"] for k, e in exercises]
    parts = ["<h1>The class at a glance</h1>",
             f"<p>{len({r.student for r in rows})} students, {len(lessons)} lessons, "
             f"{len({(r.student, r.lesson) for r in rows})} submissions. Students are "
             + ("shown by name." if names.show_names else "opaque ids (the <code>id</code> column of the "
                "per-student CSV maps them back).") + "</p>",
             "<h2>Lessons</h2>",
             table(["lesson", "handed in", "median", "spread", "full marks", "unattempted", "problems"],
                   body, wide=(3, 5), caption="full marks: the share of exercise results with full marks; "
                                              "problems: students hit by grader problems"),
             image(lesson_trend(lessons, percent), "median lesson score per lesson, with the middle half"),
             "<h2>Where the class drops</h2>",
             image(full_share_bars([e for _, e in exercises], full), "share of full marks per exercise"),
             table(["exercise", "lesson", "full marks", "median points"],
                   sorted(([Cell(f"<a href='{page_name(k)}#{html.escape(e)}'>{breakable(e)}</a>"), text(k),
                            percent_cell(f), number(quartiles(sorted(r.score for r in by_lesson[k]
                                                                     if r.exercise == e))[1])]
                           for (k, e), f in zip(exercises, full)), key=lambda row: row[2].sort),
                   wide=(1,), caption="every exercise, the lowest share of full marks first"),
             "<h2>Students whose scores fall</h2>", falls_table(falling_students(percent, lessons), names)]
    return page("The class at a glance", "\n".join(parts))


def falls_table(falls: Sequence[Fall], names: Names) -> str:
    if not falls:
        return f"<p>No student's score falls by more than {FALL:g} points from one lesson to the next.</p>"
    body = [[text(names(f.student)), text(f"{f.before} → {f.after}"), number(round(f.before_pct, 1),
             f"{f.before_pct:.0f}%"), number(round(f.after_pct, 1), f"{f.after_pct:.0f}%"),
             number(round(f.drop, 1), f"−{f.drop:.0f}")] for f in falls]
    return (f"<p>{len({f.student for f in falls})} students fall by more than {FALL:g} points "
            "from one lesson they handed in to the next.</p>"
            + table(["student", "lessons", "before", "after", "fall"], body, cls="sortable falls"))


# -- the command -----------------------------------------------------------------------------------

def page_name(lesson: str) -> str:
    """The file of a lesson's page: its key (the submissions of no known lesson share one page)."""
    return f"{lesson}.html" if lesson in LESSONS else "unknown-lesson.html"


def write(csv_path: pathlib.Path, out: pathlib.Path, show_names: bool = False) -> list[pathlib.Path]:
    """Write ``index.html`` and one page per lesson into ``out``; returns their paths."""
    rows = load_rows(csv_path)
    names = Names(student_ids(csv_path, {r.student for r in rows}), show_names)
    lessons = lesson_order(rows)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "index.html"]
    write_atomic(written[0], index_page(lessons, rows, names))
    for k in lessons:
        path = out / page_name(k)
        write_atomic(path, lesson_page(k, [r for r in rows if r.lesson == k], names))
        written.append(path)
    return written
