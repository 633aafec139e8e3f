"""The declaration of an exercise: what the learner builds and how it is checked.

An ``Exercise`` holds everything about one exercise in one place: the reference, the groups of
generated cases with their weights, the tolerances, the built-ins that are off-limits, the
hints for common mistakes and the points. The notebook check, the CLI, nbgrader's test cells,
the README's catalogue and the tests are all driven from these declarations.

A trained-model exercise ("a trained model in the notebook") has no reference to compare
with. Its ``threshold`` says how it is scored instead: the grader draws held-out inputs, keeps
their answers (labels, next characters) to itself, measures a metric of the model's outputs
against them and turns it into a share of the points.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from .i18n import N_, _

# Tolerances (rtol, atol) per dtype for values compared with the reference.
DEFAULT_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (2e-2, 1e-2),
    torch.float32: (1e-4, 1e-5),
    torch.float64: (1e-7, 1e-9),
}


class Draw:
    """Seeded randomness for case generators: ``rng`` for shapes and choices, tensors from ``gen``."""

    def __init__(self, seed: str):
        self.rng = random.Random(seed)
        self.gen = torch.Generator().manual_seed(self.rng.getrandbits(62))

    def randn(self, *shape: int, dtype: torch.dtype = torch.float64, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(shape, generator=self.gen, dtype=dtype) * scale

    def randint(self, low: int, high: int, *shape: int) -> torch.Tensor:
        return torch.randint(low, high, shape, generator=self.gen)

    def shape(self, ndim: int, low: int = 1, high: int = 5) -> tuple[int, ...]:
        return tuple(self.rng.randint(low, high) for _ in range(ndim))

    def dtype(self) -> torch.dtype:
        return self.rng.choice([torch.float32, torch.float64])


@dataclass
class Case:
    """One generated input. ``args``/``kwargs`` are what the probe feeds the learner's code.

    ``size`` orders cases so that the smallest failing one is reported; ``note`` says in
    words what the case is about ("labels at the edges of the range"). ``answer`` is what a
    trained model's output is measured against (the true labels): the oracle takes it out of
    the case, so it never reaches the process where learner code runs.
    """

    group: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    size: int = 0
    note: str = ""
    device: str = "cpu"
    answer: Any = None


@dataclass(frozen=True)
class Group:
    """A weighted group of cases, made by ``make(draw)`` from a seeded ``Draw``.

    ``devices`` False means the group's cases run on the CPU only (pure-Python results).
    ``speed`` > 0 makes it a timing group: the learner's code must run within ``speed`` times
    the reference's time, measured in the same run.
    """

    name: str
    weight: float
    make: Callable[[Draw], Iterable[Case]]
    hint: str = ""
    devices: bool = True
    speed: float = 0.0
    probe: Callable[..., Any] | None = None


@dataclass(frozen=True)
class Threshold:
    """How a trained model scores: ``metric(output, answer) -> float`` measured by the grader,
    full points at ``full`` or better, none at ``zero`` or worse, linear in between.

    ``full > zero`` for a score such as accuracy, ``full < zero`` for a loss. ``metric`` raises
    ValueError, with a message for the learner, when the output has the wrong shape.
    """

    name: str                                   # "accuracy", "validation loss"
    metric: Callable[[torch.Tensor, torch.Tensor], float]
    full: float
    zero: float
    unit: str = ""                              # "nats per character"

    def fraction(self, value: float) -> float:
        """The share of the points that ``value`` earns, in [0, 1] (0 for NaN)."""
        if value != value:
            return 0.0
        return min(1.0, max(0.0, (value - self.zero) / (self.full - self.zero)))

    def goal(self) -> str:
        """'full points from 0.97, none at 0.8 or below' in words."""
        if self.full > self.zero:
            return _("full points from {full:g}, none at {zero:g} or below").format(full=self.full, zero=self.zero)
        return _("full points at {full:g} or below, none from {zero:g}").format(full=self.full, zero=self.zero)


@dataclass(frozen=True)
class Exercise:
    """One graded exercise. ``id`` is ``module.name``: the reference is minidl.<module>.<name>, or
    ``reference_at`` for an exercise an instructor declared in their own course (see course.py)."""

    id: str
    title: str
    signature: str
    groups: tuple[Group, ...]
    points: float
    forbidden: tuple[str, ...] = ()
    hints: dict[str, str] = field(default_factory=dict)
    probe: Callable[..., Any] | None = None
    tolerances: dict[torch.dtype, tuple[float, float]] = field(default_factory=dict)
    builds: str = ""  # what the learner builds, in a few words, for the README's catalogue
    cpu_only: bool = False
    threshold: Threshold | None = None  # set for a trained model: scored by a metric, not a reference
    reference_at: str = ""  # "module.name" of a reference outside minidl (an instructor's own exercise)

    @property
    def module(self) -> str:
        return self.id.split(".")[0]

    @property
    def name(self) -> str:
        return self.id.split(".", 1)[1]

    @property
    def reference_path(self) -> str:
        return self.reference_at or f"minidl.{self.id}"

    def reference(self) -> Callable[..., Any]:
        import importlib

        module, _dot, name = self.reference_path.rpartition(".")
        return getattr(importlib.import_module(module), name)

    def tolerance(self, dtype: torch.dtype) -> tuple[float, float]:
        return self.tolerances.get(dtype) or DEFAULT_TOLERANCES.get(dtype, (0.0, 0.0))

    def group(self, name: str) -> Group:
        return next(g for g in self.groups if g.name == name)

    def probe_for(self, group: str) -> Callable[..., Any]:
        from .probes import call

        return self.group(group).probe or self.probe or call

    def hint_for(self, group: str, symptom: str) -> str:
        """The most specific hint for a failing case: for this group and symptom, for this symptom,
        then the group's own hint where the symptom is about the values, else a generic one."""
        about_values = symptom in ("values", "nonfinite", "shape", "no_raise", "raised", "slow", "metric")
        return (
            self.hints.get(f"{group}:{symptom}")
            or self.hints.get(symptom)
            or (self.group(group).hint if about_values else "")
            or GENERIC_HINTS.get(symptom, "")
            or self.group(group).hint
        )

    def forbidden_names(self) -> tuple[str, ...]:
        """The declared built-ins plus minidl's own reference, which is always off-limits."""
        return self.forbidden + (self.reference_path,)


@dataclass(frozen=True)
class Lesson:
    """A lesson: ``key`` names its notebook ("01_tensors"); ``exercises`` are its graded ones."""

    key: str
    title: str
    builds: str
    exercises: tuple[Exercise, ...]


GENERIC_HINTS: dict[str, str] = {
    "shape": N_("Check which dimensions your result keeps; print the shapes of your intermediates."),
    "dtype": N_("Create new tensors with the input's dtype (e.g. torch.zeros(..., dtype=x.dtype))."),
    "device": N_("Create new tensors on the input's device (e.g. torch.zeros(..., device=x.device))."),
    "nonfinite": N_("Your result has NaN or inf where the expected one is finite: look for an "
    "overflow (exp of a large number) or a division by zero."),
    "type": N_("Return exactly the type the exercise asks for."),
    "raised": N_("Your code raised an exception on this input; run it on the input shown."),
    "no_raise": N_("This input is invalid: the exercise asks you to raise an exception for it."),
    "forbidden": N_("Build it from simpler operations, as the lesson shows."),
    "timeout": N_("Your code took too long on this input: look for an endless loop."),
    "slow": N_("Replace Python loops over elements with whole-tensor operations."),
}
