"""Lessons 01 and 02: each reference with a built-in twin, as the ratio reference / built-in."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minidl import broadcasting, tensors

from .timing import ratio


def rows() -> list[tuple[str, float]]:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (4096,), generator=g)
    images = torch.randn(64, 3, 32, 32, generator=g)
    big = torch.randn(64, 128, 256, generator=g)
    x, y = torch.randn(1000, 64, generator=g), torch.randn(1000, 64, generator=g)
    logits = torch.randn(512, 1000, generator=g)
    return [
        ("tensors.contiguous_strides vs torch.empty(shape).stride()",
         ratio(lambda: tensors.contiguous_strides((8, 16, 32, 64)), lambda: torch.empty((8, 16, 32, 64)).stride())),
        ("tensors.one_hot vs F.one_hot (4096 labels, 10 classes)",
         ratio(lambda: tensors.one_hot(labels, 10), lambda: F.one_hot(labels, 10).float())),
        ("tensors.patchify vs F.unfold (64x3x32x32, p=4)",
         ratio(lambda: tensors.patchify(images, 4), lambda: F.unfold(images, 4, stride=4).transpose(1, 2))),
        ("broadcasting.broadcast_shapes vs torch.broadcast_shapes",
         ratio(lambda: broadcasting.broadcast_shapes((8, 1, 6, 1), (7, 1, 5)), lambda: torch.broadcast_shapes((8, 1, 6, 1), (7, 1, 5)))),
        ("broadcasting.sum_to_shape vs Tensor.sum_to_size (64x128x256 -> 128x1)",
         ratio(lambda: broadcasting.sum_to_shape(big, (128, 1)), lambda: big.sum_to_size(128, 1))),
        ("broadcasting.pairwise_sq_dists vs torch.cdist**2 (1000x1000, D=64)",
         ratio(lambda: broadcasting.pairwise_sq_dists(x, y), lambda: torch.cdist(x, y) ** 2)),
        ("broadcasting.softmax vs torch.softmax (512x1000)",
         ratio(lambda: broadcasting.softmax(logits), lambda: torch.softmax(logits, -1))),
    ]
