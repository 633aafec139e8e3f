"""A learner's progress across the course: ``python -m autograder progress lessons/``.

Each lesson notebook in the folder is graded as ``grade`` grades it (hidden cases too when the
instructor's secret is set), and the result is kept in the user's cache, keyed by the
notebook's content, so that only notebooks changed since the last run are graded again.
"""

from __future__ import annotations

import json
import pathlib

from .catalog import LESSONS
from .i18n import _, pad


def cached_report(path: pathlib.Path, limits, refresh: bool) -> dict:
    """The JSON report of ``path``: from the cache when the notebook has not changed."""
    from .store import digest, write_atomic
    from .grading import grade_notebook
    from .oracle import cache_dir
    from .policy import secret

    hidden = bool(secret())
    key = digest(path.read_bytes(), hidden)  # the notebook, the secret's hash, policy.grader_digest()
    cached = cache_dir().parent / "progress" / f"{key}.json"
    if cached.exists() and not refresh:
        try:
            return json.loads(cached.read_text())
        except ValueError:
            pass
    report = grade_notebook(path, limits, hidden=hidden).to_dict()
    write_atomic(cached, json.dumps(report))
    return report


def progress(folder: pathlib.Path, limits=None, refresh: bool = False) -> str:
    """A table: per lesson, score / max and exercises passed; then the course total."""
    notebooks = {key: folder / f"{key}.ipynb" for key in LESSONS}
    heads = _("lesson"), _("score"), _("exercises passed")
    lines = [f"{pad(heads[0], 18)} {pad(heads[1], 13, right=True)} {pad(heads[2], 18, right=True)}"]
    total = maximum = passed = count = 0
    for key, path in notebooks.items():
        exercises = LESSONS[key].exercises
        points = sum(e.points for e in exercises)
        if not path.exists():
            lines.append(f"{key:<18} {'-':>6} / {points:<4g} {'-':>11} / {len(exercises)}   "
                         + _("(no {file} here)").format(file=path.name))
            maximum, count = maximum + points, count + len(exercises)
            continue
        report = cached_report(path, limits, refresh)
        ok = sum(1 for e in report["exercises"] if e["passed"])
        lines.append(f"{key:<18} {report['score']:>6g} / {report['max_score']:<4g} {ok:>11} / {len(report['exercises'])}"
                     + ("   !" if report["problems"] else ""))
        total, maximum = total + report["score"], maximum + report["max_score"]
        passed, count = passed + ok, count + len(report["exercises"])
    pct = 100 * total / maximum if maximum else 0
    course = _("course")
    lines.append(f"{pad(course, 18)} {total:>6g} / {maximum:<4g} {passed:>11} / {count}   ({pct:.0f}%)")
    return "\n".join(lines)
