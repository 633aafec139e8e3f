"""Lesson 02, broadcasting: the exercises and how they are checked."""

from __future__ import annotations

import torch

from ..exercise import Case, Exercise, Group, Lesson
from ..i18n import N_
from ..probes import with_grad
from ..sandbox import learner_code


def broadcastable_pair(draw, ndim):
    """Two shapes that broadcast: some sizes set to 1 on one side, some dimensions dropped."""
    full = draw.shape(ndim, 2, 5)
    a = tuple(1 if draw.rng.random() < 0.3 else n for n in full)
    b = tuple(1 if draw.rng.random() < 0.3 else n for n in full)
    return a[draw.rng.randint(0, ndim - 1):], b


def shapes_two(draw):
    for ndim in (1, 2, 3, 4, 3):
        yield Case("", broadcastable_pair(draw, ndim), size=ndim)


def shapes_many(draw):
    for ndim in (2, 3, 4):
        a, b = broadcastable_pair(draw, ndim)
        c, _ = broadcastable_pair(draw, ndim)
        yield Case("", (a, b, c), size=ndim)


def shapes_edges(draw):
    yield Case("", ((), (3,)), size=0, note="a scalar shape")
    yield Case("", ((0,), (1,)), size=1, note="a size-0 dimension")
    yield Case("", ((2, 1), (2, 1)), size=2, note="equal shapes")
    yield Case("", ((5,),), size=1, note="a single shape")
    yield Case("", ((4, 1, 3), (1,)), size=3, note="a one-element shape")


def shapes_invalid(draw):
    yield Case("", ((2, 3), (4, 3)), size=2, note="2 against 4 in dimension -2")
    yield Case("", ((3,), (4,)), size=1, note="3 against 4")
    yield Case("", ((2, 1, 5), (3, 1), (6,)), size=3, note="three shapes, 5 against 6")


def sum_to_cases(draw, extra_dims, stretch):
    for ndim in (1, 2, 3):
        shape = draw.shape(ndim, 2, 4)
        if stretch:
            shape = tuple(1 if draw.rng.random() < 0.5 else n for n in shape)
        big = draw.shape(extra_dims, 2, 3) + tuple(draw.rng.randint(2, 4) if n == 1 and stretch else n for n in shape)
        yield Case("", (draw.randn(*big, dtype=draw.dtype()), shape), size=len(big))


def sum_added(draw):
    yield from sum_to_cases(draw, extra_dims=draw.rng.randint(1, 2), stretch=False)


def sum_stretched(draw):
    yield from sum_to_cases(draw, extra_dims=0, stretch=True)


def sum_both(draw):
    yield from sum_to_cases(draw, extra_dims=1, stretch=True)


def sum_edges(draw):
    yield Case("", (draw.randn(3, 4), (3, 4)), size=2, note="nothing to sum")
    yield Case("", (draw.randn(2, 3), ()), size=2, note="down to a scalar")
    yield Case("", (draw.randn(2, 3), (1, 1)), size=2, note="down to (1, 1)")


def dists_values(draw):
    for n, m, d in [(3, 4, 2), (5, 2, 3), (1, 6, 4), (8, 7, 5)]:
        dtype = draw.dtype()
        yield Case("", (draw.randn(n, d, dtype=dtype), draw.randn(m, d, dtype=dtype)), size=n * m * d)


def dists_edges(draw):
    x = draw.randn(64, 8)   # 64 identical pairs: ||x||^2 + ||y||^2 - 2 x.y leaves some of them at -1e-16
    yield Case("", (x, x.clone()), size=36, note="identical points: zero distances, never negative")
    yield Case("", (draw.randn(1, 1), draw.randn(1, 1)), size=1, note="one point each, D = 1")


def dists_sign_probe(fn, x, y) -> dict:
    """The distances, and how many are below 0: the tolerance would take -1e-16 for 0, the count does not."""
    with learner_code():
        out = fn(x, y)
    negative = int((out.detach() < 0).sum()) if type(out) is torch.Tensor else "no tensor"
    return {"distances": out, N_("negative distances"): negative}


def dists_speed(draw):
    yield Case("", (draw.randn(300, 32, dtype=torch.float32), draw.randn(400, 32, dtype=torch.float32)),
               size=300 * 400 * 32, note="N=300, M=400, D=32")


def softmax_values(draw):
    for ndim in (1, 2, 3, 2):
        shape = draw.shape(ndim, 1, 6)
        dim = draw.rng.randrange(-ndim, ndim)
        yield Case("", (draw.randn(*shape, dtype=draw.dtype(), scale=3.0),), {"dim": dim}, size=len(shape))


def softmax_large(draw):
    for dtype in (torch.float32, torch.float64):
        yield Case("", (draw.randn(3, 5, dtype=dtype, scale=1e4),), {"dim": -1}, size=15,
                   note="inputs of magnitude 1e4")
    yield Case("", (torch.tensor([[1000.0, 1001.0, 1002.0]]),), {"dim": 1}, size=3, note="large, close inputs")


def softmax_edges(draw):
    yield Case("", (draw.randn(4, 1),), {"dim": 1}, size=4, note="a dimension of size 1")
    yield Case("", (torch.tensor([[0.0, float("-inf"), 1.0]]),), {"dim": -1}, size=3, note="a -inf entry (a masked position)")
    yield Case("", (draw.randn(0, 3),), {"dim": -1}, size=0, note="no rows")


def softmax_grads(draw):
    for ndim in (1, 2, 3):
        shape = draw.shape(ndim, 2, 5)
        yield Case("", (draw.randn(*shape),), {"dim": draw.rng.randrange(-ndim, ndim)}, size=len(shape))


SOFTMAX_FORBIDDEN = tuple(
    f"{where}.{name}"
    for name in ("softmax", "log_softmax")
    for where in ("torch", "torch.Tensor", "torch.nn.functional", "torch.special")
) + ("torch.logsumexp", "torch.Tensor.logsumexp", "torch.special.logsumexp", "torch.nn.Softmax", "torch.nn.LogSoftmax",
     "aten::softmax", "aten::_softmax", "aten::log_softmax", "aten::_log_softmax", "aten::logsumexp")

LESSON = Lesson(
    key="02_broadcasting",
    title="Broadcasting",
    builds="the broadcasting rule, its gradient, vectorised distances, a stable softmax",
    exercises=(
        Exercise(
            id="broadcasting.broadcast_shapes",
            title="The broadcasting rule",
            signature="(*shapes) -> tuple[int, ...]",
            builds="the broadcast shape, ValueError naming the clashing dimension",
            points=3,
            cpu_only=True,
            forbidden=("torch.broadcast_shapes", "torch.broadcast_tensors", "torch.broadcast_to", "torch.Tensor.expand",
                       "numpy.broadcast_shapes", "numpy.broadcast_arrays", "numpy.broadcast_to", "numpy.broadcast"),
            groups=(
                Group("two shapes", 2, shapes_two,
                      hint="Align the shapes on the right; in each dimension the sizes must be equal or 1."),
                Group("many shapes", 1, shapes_many, hint="Apply the rule to all shapes at once, dimension by dimension."),
                Group("edge cases", 1, shapes_edges,
                      hint="A missing leading dimension counts as 1, and a size-0 dimension broadcasts like any other size."),
                Group("incompatible", 1, shapes_invalid,
                      hint="When two sizes in a dimension differ and neither is 1, raise ValueError naming that dimension."),
            ),
            hints={"type": "Return a tuple of ints (not a list, not a torch.Size built from a tensor)."},
        ),
        Exercise(
            id="broadcasting.sum_to_shape",
            title="Sum a broadcast tensor back to its shape",
            signature="(x, shape) -> Tensor",
            builds="the gradient rule of broadcasting",
            points=3,
            forbidden=("torch.Tensor.sum_to_size",),
            groups=(
                Group("added dims", 1, sum_added, hint="Sum over the leading dimensions that broadcasting added."),
                Group("stretched dims", 1, sum_stretched,
                      hint="Sum with keepdim=True over every dimension where shape has size 1 and x does not."),
                Group("both", 2, sum_both),
                Group("edge cases", 1, sum_edges),
            ),
        ),
        Exercise(
            id="broadcasting.pairwise_sq_dists",
            title="Pairwise squared distances, vectorised",
            signature="(x[N,D], y[M,D]) -> [N,M]",
            builds="all N*M squared distances with broadcasting and one matmul",
            points=3,
            forbidden=("torch.cdist", "torch.nn.functional.pairwise_distance", "torch.nn.PairwiseDistance",
                       "torch.nn.functional.pdist", "aten::_cdist_forward", "aten::cdist",
                       "aten::_euclidean_dist"),
            tolerances={torch.float32: (1e-4, 1e-4), torch.float64: (1e-7, 1e-9)},
            groups=(
                Group("values", 3, dists_values,
                      hint="d[i, j] = sum_k (x[i, k] - y[j, k])^2: give x a new axis 1 and y a new axis 0."),
                Group("edge cases", 1, dists_edges, probe=dists_sign_probe,
                      hint="Rounding in ||x||^2 + ||y||^2 - 2 x.y can go slightly below 0 (a distance of -1e-16 "
                           "between identical points, and sqrt gives NaN): clamp at 0 (.clamp_min(0))."),
                Group("speed", 1, dists_speed, speed=200.0,
                      hint="Avoid Python loops over points: one broadcast expression or a matmul does all pairs."),
            ),
        ),
        Exercise(
            id="broadcasting.softmax",
            title="A numerically stable softmax",
            signature="(x, dim=-1) -> Tensor",
            builds="softmax along any dimension, finite for inputs of magnitude 1e4",
            points=4,
            forbidden=SOFTMAX_FORBIDDEN,
            groups=(
                Group("values", 3, softmax_values,
                      hint="exp(x) / exp(x).sum(dim, keepdim=True): keepdim makes the sum broadcast back."),
                Group("large inputs", 2, softmax_large,
                      hint="exp overflows to inf for inputs above ~88 (float32) or ~709 (float64), and inf/inf is NaN. "
                           "Subtract the maximum along dim first: softmax(x) = softmax(x - max(x)), and exp never overflows."),
                Group("edge cases", 1, softmax_edges),
                Group("gradients", 1, softmax_grads, probe=with_grad,
                      hint="Build the result from differentiable torch operations only (no .item(), numpy or in-place writes)."),
            ),
            hints={"shape": "Reduce with keepdim=True so the sum broadcasts against x, and keep x's shape."},
        ),
    ),
)
