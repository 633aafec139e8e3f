"""The result of a check and how it reads: as text in a terminal, as HTML in Jupyter."""

from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass, field

from .i18n import _, pad


@dataclass
class Failure:
    """The failing case shown to the learner: what went in, what was wrong, what to try."""

    group: str
    inputs: str
    message: str
    symptom: str
    hint: str = ""
    device: str = "cpu"
    where: str = ""


class Points(float):
    """A score that is a plain number to nbgrader and a report to a reader.

    nbgrader takes a test cell's partial credit from the text of its last value ("1.5"), and
    so does its Validate button; in Jupyter the same value shows the check's report with a
    line saying which number the grader records."""

    def __new__(cls, value: float, result: "Result"):
        points = super().__new__(cls, value)
        points.result = result
        return points

    def __reduce__(self):  # pickled (to another process, into JSON-like reports) as the plain number
        return float, (float(self),)

    def _repr_html_(self) -> str:
        r = self.result
        cases = (_("hidden cases included: {count}").format(count=r.hidden_cases) if r.hidden_cases
                 else _("public cases"))
        return (r._repr_html_() + "<div style='font-family:sans-serif;font-size:90%;color:#555;padding:2px 14px'>"
                + _("Score recorded for this cell: <b>{score:g}</b> of {max_score:g} ({cases}). "
                    "This number is what Validate and the graders read.").format(
                    score=float(self), max_score=r.max_score, cases=html.escape(cases)) + "</div>")


@dataclass
class Result:
    """Outcome of ``check``: ``score`` points out of ``max_score``; ``passed`` when every case passed."""

    exercise: str
    title: str
    score: float
    max_score: float
    cases: int
    passed_cases: int
    groups: list[tuple[str, int, int]] = field(default_factory=list)  # (group, passed, total)
    failures: list[Failure] = field(default_factory=list)
    status: str = "checked"  # checked | not_implemented | missing | forbidden | error
    note: str = ""
    hidden_cases: int = 0

    @property
    def passed(self) -> bool:
        return self.status == "checked" and self.passed_cases == self.cases and self.cases > 0

    @property
    def points(self) -> Points:
        """The score as a number, the last expression of an nbgrader test cell (see ``Points``)."""
        return Points(round(float(self.score), 4), self)

    @property
    def hint(self) -> str:
        """The hint of the first failing case ('' when there is none)."""
        return self.failures[0].hint if self.failures else ""

    @property
    def message(self) -> str:
        """One line for tables and the JSON report."""
        if self.passed:
            return _("all {cases} cases passed").format(cases=self.cases) + (f"; {self.note}" if self.note else "")
        if self.status in ("not_implemented", "missing", "error") or not self.failures:
            return self.note or self.status
        f = self.failures[0]
        return f"[{_(f.group)}] {f.message}"

    def to_dict(self) -> dict:
        """The result as JSON; ``failure`` is the first failing public case the learner saw (or None)."""
        return {
            "id": self.exercise, "score": float(self.points), "max_score": self.max_score,
            "passed": self.passed, "message": self.message, "status": self.status,
            "cases": self.cases, "passed_cases": self.passed_cases,
            "failure": dataclasses.asdict(self.failures[0]) if self.failures else None,
        }

    # -- rendering -------------------------------------------------------------------------
    def headline(self) -> str:
        mark = _("PASSED") if self.passed else _("NOT YET")
        return _("{mark}  {exercise}: {points:g}/{max_score:g} points, {passed}/{cases} cases").format(
            mark=mark, exercise=self.exercise, points=self.points, max_score=self.max_score,
            passed=self.passed_cases, cases=self.cases)

    def __str__(self) -> str:
        lines = [self.headline()]
        if self.note:
            lines.append(f"  {self.note}")
        lines += [f"  {pad(_(g), 14)} {p}/{t}" for g, p, t in self.groups]
        if self.failures:
            f = self.failures[0]
            lines += ["", _("First failing case ({group}, on {device}):").format(group=_(f.group), device=f.device),
                      _("  inputs:  {inputs}").format(inputs=f.inputs), _("  problem: {message}").format(message=f.message)]
            if f.where:
                lines.append(_("  where:   {where}").format(where=f.where))
            if f.hint:
                lines.append(_("  hint:    {hint}").format(hint=_(f.hint)))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#b35900"
        rows = "".join(
            f"<tr><td>{html.escape(_(g))}</td><td style='text-align:right'>{p}/{t}</td></tr>" for g, p, t in self.groups
        )
        parts = [
            f"<div style='border-left:4px solid {colour};padding:4px 10px;font-family:sans-serif'>",
            f"<b style='color:{colour}'>{html.escape(self.headline())}</b>",
        ]
        if self.note:
            parts.append(f"<div>{html.escape(self.note)}</div>")
        parts.append(f"<table style='font-size:90%'>{rows}</table>")
        if self.failures:
            f = self.failures[0]
            parts.append(
                "<div>" + _("<b>First failing case</b> ({group}, on {device})").format(
                    group=html.escape(_(f.group)), device=html.escape(f.device)) + "<br>"
                f"<code>{html.escape(f.inputs)}</code><br>{html.escape(f.message)}"
                + ("<br><i>" + _("at {where}").format(where=html.escape(f.where)) + "</i>" if f.where else "")
                + ("<br>" + _("<b>Hint:</b> {hint}").format(hint=html.escape(_(f.hint))) if f.hint else "")
                + "</div>"
            )
        parts.append("</div>")
        return "".join(parts)
