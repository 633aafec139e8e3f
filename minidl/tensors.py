"""Lesson 01: tensors. Shapes, strides, one-hot codes, moving data between devices, patches."""

from __future__ import annotations

import copy
from typing import Any

import torch


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Element strides of a C-contiguous (row-major) tensor of ``shape``.

    stride[d] = prod(shape[d+1:]), where a size-0 dimension counts as 1, as in PyTorch.
    Example: (2, 3, 4) -> (12, 4, 1).
    """
    strides: list[int] = []
    step = 1
    for size in reversed(tuple(shape)):
        strides.append(step)
        step *= max(int(size), 1)
    return tuple(reversed(strides))


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """labels: int64[...] with values in [0, num_classes) -> float32[..., num_classes].

    out[..., k] = 1 if labels[...] == k else 0, on the labels' device.
    """
    if labels.numel() > 0 and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}); got values from "
            f"{int(labels.min())} to {int(labels.max())}"
        )
    classes = torch.arange(num_classes, device=labels.device)
    return (labels.unsqueeze(-1) == classes).to(torch.float32)


def to_device(obj: Any, device: torch.device | str) -> Any:
    """Move every tensor inside nested dicts, lists, tuples and namedtuples to ``device``.

    Containers keep their exact type (a namedtuple stays that namedtuple, an OrderedDict
    stays ordered); anything that is not a tensor or a container is returned unchanged.
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        moved = copy.copy(obj)  # the same type, with its extras (a defaultdict's factory)
        for key, value in obj.items():
            moved[key] = to_device(value, device)
        return moved
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple
        return type(obj)(*(to_device(v, device) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """images: [B, C, H, W] -> patches: [B, (H/p)*(W/p), C*p*p].

    Patches are taken in row-major order over the (H/p, W/p) grid; each patch is flattened
    channel-major (c, i, j), exactly as ``F.unfold(images, p, stride=p).transpose(1, 2)``.
    """
    B, C, H, W = images.shape
    p = patch
    if p <= 0 or H % p or W % p:
        raise ValueError(f"patch size {p} must divide the image height {H} and width {W}")
    grid = images.reshape(B, C, H // p, p, W // p, p)        # [B, C, h, p, w, p]
    grid = grid.permute(0, 2, 4, 1, 3, 5)                    # [B, h, w, C, p, p]
    return grid.reshape(B, (H // p) * (W // p), C * p * p)

