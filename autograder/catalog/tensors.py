"""Lesson 01, tensors: the exercises and how they are checked."""

from __future__ import annotations

from collections import OrderedDict, defaultdict, namedtuple

import torch

from ..exercise import Case, Exercise, Group, Lesson
from ..i18n import N_
from ..probes import call

Batch = namedtuple("Batch", ["inputs", "targets", "meta"])


def strides_shapes(draw):
    for ndim in (1, 2, 3, 4, 5, 3):
        shape = draw.shape(ndim, 1, 6)
        yield Case("", (shape,), size=ndim)


def strides_edges(draw):
    for shape, note in [((), "a 0-d tensor"), ((7,), "one dimension"), ((1, 1, 1), "all ones"),
                        ((3, 0, 2), "a size-0 dimension"), ((0,), "empty")]:
        yield Case("", (shape,), size=len(shape), note=note)


def one_hot_values(draw):
    for shape in [(5,), (2, 3), (4,), (2, 2, 3)]:
        classes = draw.rng.randint(2, 9)
        yield Case("", (draw.randint(0, classes, *shape), classes), size=len(shape))


def one_hot_edges(draw):
    yield Case("", (torch.tensor([0, 4, 4, 0]), 5), size=1, note="labels at both ends of the range")
    yield Case("", (torch.zeros(3, dtype=torch.long), 1), size=1, note="a single class")
    yield Case("", (torch.zeros(0, dtype=torch.long), 3), size=0, note="no labels")
    yield Case("", (torch.tensor(2), 4), size=0, note="a 0-d label")


def one_hot_invalid(draw):
    yield Case("", (torch.tensor([0, 1, 3]), 3), size=1, note="label 3 with 3 classes")
    yield Case("", (torch.tensor([-1, 0]), 2), size=1, note="a negative label")


def to_device_cases(draw):
    t = lambda *s: draw.randn(*s)  # noqa: E731
    yield Case("", (t(2, 3), "meta"), size=1, note="a single tensor")
    yield Case("", ([t(2), t(3)], "meta"), size=2, note="a list")
    yield Case("", ((t(2), 5, "text"), "meta"), size=2, note="a tuple with non-tensors")
    yield Case("", ({"x": t(2), "y": [t(1), None]}, "meta"), size=3, note="a dict holding a list")
    yield Case("", (Batch(t(4, 2), draw.randint(0, 3, 4), {"ids": [1, 2]}), "meta"), size=4, note="a namedtuple")
    yield Case("", (OrderedDict(a=t(1), b=(t(2), [t(3), {"c": t(1)}])), "meta"), size=5, note="deeply nested")
    yield Case("", ([], "meta"), size=0, note="an empty list")
    yield Case("", (3.5, "meta"), size=0, note="no tensor at all")


def defaultdict_cases(draw):
    yield Case("", ({"x": draw.randn(2), "ys": [draw.randn(1)]}, "meta"), size=3,
               note="a defaultdict(list) holding a tensor and a list")


def in_defaultdict(fn, items, device):
    """Call ``fn`` on ``defaultdict(list, items)`` (the grader itself moves plain containers only);
    return what it returned and that result's default factory, which must still be ``list``."""
    moved = call(fn, defaultdict(list, items), device)
    return {"moved": moved, N_("default factory"): getattr(moved, "default_factory", None)}


def patchify_values(draw):
    for p, (h, w) in [(2, (4, 4)), (2, (4, 6)), (3, (6, 9)), (4, (8, 8))]:
        b, c = draw.rng.randint(1, 3), draw.rng.randint(1, 3)
        yield Case("", (draw.randn(b, c, h, w, dtype=draw.dtype()), p), size=b * c * h * w)


def patchify_edges(draw):
    yield Case("", (draw.randn(1, 2, 3, 3), 1), size=18, note="patch size 1")
    yield Case("", (draw.randn(2, 1, 4, 4), 4), size=32, note="one patch covers the image")


def patchify_invalid(draw):
    yield Case("", (draw.randn(1, 1, 5, 4), 2), size=20, note="2 does not divide the height 5")
    yield Case("", (draw.randn(1, 1, 4, 6), 4), size=24, note="4 does not divide the width 6")


LESSON = Lesson(
    key="01_tensors",
    title="Tensors",
    builds="strides, one-hot codes, moving nested data between devices, image patches",
    exercises=(
        Exercise(
            id="tensors.contiguous_strides",
            title="Strides of a contiguous tensor",
            signature="(shape) -> tuple[int, ...]",
            builds="the stride of every dimension of a row-major tensor",
            points=2,
            cpu_only=True,
            forbidden=("torch.Tensor.stride", "torch.empty_strided"),
            groups=(
                Group("shapes", 3, strides_shapes,
                      hint="The last dimension has stride 1; each earlier stride is the product of all later sizes."),
                Group("edge cases", 1, strides_edges,
                      hint="A 0-d tensor has strides (); PyTorch counts a size-0 dimension as size 1 in the strides."),
            ),
            hints={"type": "Return a tuple of Python ints, e.g. tuple(strides)."},
        ),
        Exercise(
            id="tensors.one_hot",
            title="One-hot encoding",
            signature="(labels, num_classes) -> Tensor",
            builds="float32 one-hot codes on the labels' device, ValueError for bad labels",
            points=3,
            forbidden=("torch.nn.functional.one_hot",),
            groups=(
                Group("values", 3, one_hot_values,
                      hint="out[..., k] is 1.0 where labels == k: compare labels.unsqueeze(-1) with torch.arange(num_classes)."),
                Group("edge cases", 1, one_hot_edges),
                Group("invalid labels", 1, one_hot_invalid,
                      hint="Raise ValueError when a label is < 0 or >= num_classes (check labels.min() and labels.max())."),
            ),
            hints={"dtype": "one_hot returns float32 whatever the labels' dtype: convert with .to(torch.float32) or .float().",
                   "shape": "The output's shape is labels.shape + (num_classes,)."},
        ),
        Exercise(
            id="tensors.to_device",
            title="Move nested data to a device",
            signature="(obj, device) -> same structure",
            builds="a recursive move of dicts, lists, tuples and namedtuples of tensors",
            points=2,
            cpu_only=True,
            groups=(
                Group("structures", 3, to_device_cases),
                Group("defaultdict", 1, defaultdict_cases, probe=in_defaultdict,
                      hint="A defaultdict's first argument is its default factory, so type(obj)(pairs) fails: "
                           "copy the dict with copy.copy(obj) (same type, same factory) and replace its values."),
            ),
            hints={"type": "Keep each container's own type: rebuild a namedtuple with type(obj)(*items), copy a dict "
                           "with copy.copy(obj) and replace its values (type(obj)(pairs) fails for a defaultdict, "
                           "whose first argument is its default factory), and return non-tensors unchanged.",
                   "device": "Every tensor, however deep, must end up on the device: recurse into every container."},
        ),
        Exercise(
            id="tensors.patchify",
            title="Cut images into patches",
            signature="(images, patch) -> Tensor",
            builds="[B,C,H,W] -> [B, patches, C*p*p] with reshape and permute",
            points=3,
            forbidden=("torch.nn.functional.unfold", "torch.nn.Unfold", "aten::im2col"),
            groups=(
                Group("values", 3, patchify_values,
                      hint="Reshape to [B, C, H/p, p, W/p, p], permute to [B, H/p, W/p, C, p, p], then reshape."),
                Group("edge cases", 1, patchify_edges),
                Group("invalid patch", 1, patchify_invalid,
                      hint="Raise ValueError when the patch size does not divide both H and W."),
            ),
        ),
    ),
)
