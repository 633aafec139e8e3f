"""Lesson 02: broadcasting. The rules, their gradient, and two vectorised workhorses."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def broadcast_shapes(*shapes: Sequence[int] | int) -> tuple[int, ...]:
    """The shape that ``shapes`` broadcast to, as ``torch.broadcast_shapes``.

    Align the shapes on the right; in every dimension the sizes must be equal or 1, and the
    result takes the size that is not 1. A missing leading dimension counts as 1.
    Raises ValueError naming the first dimension (counted from the right, -1 is the last)
    whose sizes clash.
    """
    shapes = tuple((s,) if isinstance(s, int) else tuple(s) for s in shapes)
    ndim = max((len(s) for s in shapes), default=0)
    result: list[int] = []
    for d in range(-ndim, 0):
        sizes = [s[d] for s in shapes if len(s) >= -d]
        bigger = {n for n in sizes if n != 1}
        if len(bigger) > 1:
            raise ValueError(
                f"shapes {', '.join(map(str, shapes))} cannot be broadcast: dimension {d} "
                f"has sizes {' and '.join(map(str, sorted(bigger)))} (each must be equal or 1)"
            )
        result.append(bigger.pop() if bigger else 1)
    return tuple(result)


def sum_to_shape(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Sum ``x`` (broadcast from ``shape``) back down to ``shape``.

    This is the gradient rule of broadcasting: if y = broadcast(a), then dL/da is dL/dy summed
    over every dimension that broadcasting added or stretched from 1.
    """
    shape = tuple(shape)
    extra = x.dim() - len(shape)
    if extra:
        x = x.sum(dim=tuple(range(extra)))                 # dimensions broadcasting added
    stretched = tuple(d for d, n in enumerate(shape) if n == 1 and x.shape[d] != 1)
    if stretched:
        x = x.sum(dim=stretched, keepdim=True)              # dimensions stretched from 1
    return x


def pairwise_sq_dists(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x: [N, D], y: [M, D] -> d: [N, M] with d[i, j] = ||x_i - y_j||^2.

    Expands ||x - y||^2 = ||x||^2 + ||y||^2 - 2 x.y: two broadcast sums and one matmul, no
    [N, M, D] intermediate. Rounding can make the result slightly negative: clamp at 0.
    """
    x_sq = (x * x).sum(dim=1, keepdim=True)                 # [N, 1]
    y_sq = (y * y).sum(dim=1, keepdim=True).T               # [1, M]
    return (x_sq + y_sq - 2.0 * (x @ y.T)).clamp_min(0.0)


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m), m = max_j x_j, along ``dim``.

    Subtracting the maximum changes nothing mathematically but keeps exp() from overflowing:
    every exponent is <= 0, so the result is finite even for inputs of magnitude 1e4.
    """
    shifted = x - x.amax(dim=dim, keepdim=True)
    e = shifted.exp()
    return e / e.sum(dim=dim, keepdim=True)
