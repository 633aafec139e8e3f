"""Judging: plain outputs against expected ones, case by case, into a scored ``Result``.

A trained model's outputs are not compared with a reference: ``measure`` scores them by the
exercise's ``Threshold``, a metric against the answers the grader kept to itself.
"""

from __future__ import annotations

import inspect
import math

from . import i18n
from .exercise import Case, Exercise
from .i18n import _
from .plain import compare, describe, plain
from .report import Failure, Result


def describe_inputs(exercise: Exercise, case: Case) -> str:
    """'x: float32[3, 4] on cpu, dim=-1', with the values of tiny inputs shown."""
    try:
        if exercise.threshold is not None:  # a trained model is called on one batch of inputs
            named = [("inputs", a) for a in case.args]
        else:
            bound = inspect.signature(exercise.reference()).bind(*case.args, **case.kwargs)
            named = list(bound.arguments.items())
    except (TypeError, ValueError):
        named = [(f"arg{i}", a) for i, a in enumerate(case.args)] + list(case.kwargs.items())
    parts = []
    for name, value in named:
        node = plain(value)
        if node["kind"] == "tensor":
            text = f"{name}: {describe(node)}"
            if node["data"] is not None and 0 < node["data"].numel() <= 12:
                text += f" = {_rounded(node['data'].tolist())}"
            parts.append(text)
        elif node["kind"] in ("seq", "dict", "object") and len(repr(value)) > 80:
            parts.append(f"{name}: {describe(node)}")
        else:
            parts.append(f"{name}={value!r}")
    return ", ".join(parts) + (f"   ({i18n.note(case.note)})" if case.note else "")


def verdict(exercise: Exercise, case: Case, expected: dict, got: dict, ratio: float | None) -> Failure | None:
    """None if the case passed, else the Failure that explains it."""
    kind = got["kind"]
    if kind == "forbidden":
        names = ", ".join(got["names"])
        message = _("this exercise asks you to build {name} yourself; {names} is off-limits here").format(
            name=exercise.name, names=names)
        return Failure(case.group, "", message, "forbidden", exercise.hint_for(case.group, "forbidden"))
    limit = exercise.group(case.group).speed
    if kind == "timeout" and limit:  # a timing case's time limit is itself far beyond the allowed ratio
        message = _("slower than the reference by more than {limit:g}x on this input: your code did not finish "
                    "within {seconds:g} s").format(limit=limit, seconds=got["seconds"])
        return Failure(case.group, "", message, "slow", exercise.hint_for(case.group, "slow"))
    if kind == "timeout":
        message = _("your code did not finish within {seconds:g} s").format(seconds=got["seconds"])
        return Failure(case.group, "", message, "timeout", exercise.hint_for(case.group, "timeout"))
    mismatch = compare(expected, got, exercise.tolerance)
    if mismatch:
        return Failure(case.group, "", mismatch.message, mismatch.symptom,
                       exercise.hint_for(case.group, mismatch.symptom), where=mismatch.details.get("where", "")
                       if isinstance(mismatch.details.get("where"), str) else "")
    if limit and ratio is not None and ratio > limit:  # NaN (not measured) is never > limit
        message = (_("correct, but {ratio:.1f}x slower than the reference on this input (allowed: {limit:g}x)")
                   if ratio != math.inf else
                   _("correct, but the timing runs did not finish within the time {limit:g}x the reference's allows")
                   ).format(ratio=ratio, limit=limit)
        return Failure(case.group, "", message, "slow", exercise.hint_for(case.group, "slow"))
    return None


def measure(exercise: Exercise, case: Case, expected: dict, got: dict) -> tuple[float, Failure | None, str]:
    """A trained model's case: the share of the points it earns, the Failure that explains a
    share below 1, and the measurement in words ("accuracy 0.983 on 150 of the grader's digits")."""
    rule = exercise.threshold
    kind = got["kind"]
    if kind in ("forbidden", "timeout"):
        return 0.0, verdict(exercise, case, expected, got, None), ""
    if kind == "raised" and got["type"] == "NotAModel":
        message = f"{exercise.name}: {got['message']}"
        return 0.0, Failure(case.group, "", message, "type", exercise.hint_for(case.group, "type")), ""
    if kind == "raised":
        return 0.0, Failure(case.group, "", _("your model raised {error}").format(error=describe(got)), "raised",
                            exercise.hint_for(case.group, "raised"), where=got.get("where", "")), ""
    if kind != "tensor" or got["data"] is None:
        message = _("your model should return a tensor, but it returned {what}").format(what=describe(got))
        return 0.0, Failure(case.group, "", message, "type", exercise.hint_for(case.group, "type")), ""
    try:
        value = rule.metric(got["data"], expected["data"])
    except ValueError as e:  # the output's shape or type does not fit: the metric says why
        return 0.0, Failure(case.group, "", str(e), "shape", exercise.hint_for(case.group, "shape")), ""
    measured = _("{metric} {value:.3f}{unit} on {cases}").format(
        metric=_(rule.name), value=value, unit=" " + _(rule.unit) if rule.unit else "", cases=i18n.note(case.note))
    fraction = rule.fraction(value)
    if fraction >= 1.0:
        return 1.0, None, measured
    message = _("{measured}: {goal}, so {share:.0%} of the points").format(measured=measured, goal=rule.goal(),
                                                                            share=fraction)
    return fraction, Failure(case.group, "", message, "metric", exercise.hint_for(case.group, "metric")), measured


def judge(exercise: Exercise, cases: list[Case], expected: list[dict], got: list[dict],
          ratios: dict[int, float] | None = None, hidden_from: int | None = None) -> Result:
    """Score ``got`` against ``expected``. Cases from index ``hidden_from`` on are hidden:
    they count in the score but are never shown as the failing case."""
    ratios = ratios or {}
    failures: list[tuple[int, Failure, Case]] = []
    tally: dict[str, list[int]] = {g.name: [0, 0] for g in exercise.groups}
    credit: dict[str, float] = {g.name: 0.0 for g in exercise.groups}  # a case earns 0 or 1, a trained model's a share
    measured: list[str] = []
    for i, (case, e, g) in enumerate(zip(cases, expected, got)):
        public = hidden_from is None or i < hidden_from
        if exercise.threshold is not None:
            earned, failure, words = measure(exercise, case, e, g)
            if words and public:
                measured.append(words)
        else:
            failure = verdict(exercise, case, e, g, ratios.get(i))
            earned = float(failure is None)
        tally[case.group][1] += 1
        tally[case.group][0] += failure is None
        credit[case.group] += earned
        if failure is not None and public:
            failure.device = case.device
            failures.append((i, failure, case))
    total_weight = sum(g.weight for g in exercise.groups if tally[g.name][1]) or 1.0
    fraction = sum(g.weight * credit[g.name] / tally[g.name][1] for g in exercise.groups if tally[g.name][1])
    score = exercise.points * fraction / total_weight
    # The smallest failing case of the first group (in declaration order) that has failures.
    order = {g.name: k for k, g in enumerate(exercise.groups)}
    failures.sort(key=lambda item: (order[item[2].group], item[2].size, item[0]))
    shown = []
    for i, failure, case in failures[:1]:
        failure.inputs = describe_inputs(exercise, case)
        failure.where = got[i].get("where") or failure.where
        shown.append(failure)
    status, note = "checked", "" if shown else "; ".join(measured)  # a trained model's measurement
    unmeasured = sum(1 for r in ratios.values() if isinstance(r, float) and math.isnan(r))
    if unmeasured:
        note = "; ".join(filter(None, [note, _("speed not measured on {count} case(s): the reference could not "
                                               "be timed on this machine's clock (no points lost)").format(count=unmeasured)]))
    if any(g.get("not_implemented") for g in got):
        status, note = "not_implemented", _("{name} is not implemented yet (it raises NotImplementedError)").format(
            name=exercise.name)
        score, shown = 0.0, []
    elif any(g["kind"] == "forbidden" for g in got):
        status, score = "forbidden", 0.0
        forbidden = next(i for i, g in enumerate(got) if g["kind"] == "forbidden")
        shown = [f for f in (verdict(exercise, cases[forbidden], expected[forbidden], got[forbidden], None),) if f]
        shown[0].inputs = describe_inputs(exercise, cases[forbidden])
        note = _("a forbidden built-in was called, so this exercise scores 0")
    return Result(
        exercise=exercise.id, title=exercise.title, score=score, max_score=exercise.points,
        cases=len(cases), passed_cases=sum(p for p, _total in tally.values()),
        groups=[(name, p, t) for name, (p, t) in tally.items() if t], failures=shown,
        status=status, note=note, hidden_cases=0 if hidden_from is None else len(cases) - hidden_from,
    )


def _rounded(values):
    if isinstance(values, list):
        return [_rounded(v) for v in values]
    return float(f"{values:.4g}") if isinstance(values, float) else values
