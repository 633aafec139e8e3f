"""The lessons' datasets, offline: real data that ships inside an installed package.

``load_digits``: scikit-learn's 1,797 handwritten digits (8x8 pixels, 16 grey levels), which
are inside the scikit-learn wheel, so nothing is downloaded and nothing is cached.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.utils.data import DataLoader, TensorDataset


class Split(NamedTuple):
    """A fixed train/test split: inputs x (float32) and integer labels y (int64)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits(flatten: bool = True, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """scikit-learn's digits as tensors, pixels scaled to [0, 1], split once and for all.

    x: [N, 64] when ``flatten``, else [N, 1, 8, 8] (an image channel, for convolutions).
    y: [N] in 0..9. The split is a permutation drawn with ``seed``: 1,438 train, 359 test by default.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    if not flatten:
        x = x.reshape(-1, 1, 8, 8)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = round(test_fraction * len(y))
    test, train = order[:n_test], order[n_test:]
    return Split(x[train], y[train], x[test], y[test])


def loaders(split: Split, batch_size: int = 64, seed: int = 0, num_workers: int = 0,
            pin_memory: bool = False) -> tuple[DataLoader, DataLoader]:
    """Train loader (shuffled, seeded) and test loader (in order) for a ``Split``.

    ``pin_memory=True`` (on CUDA) lets ``.to(device, non_blocking=True)`` overlap the copy with compute.
    """
    train = DataLoader(TensorDataset(split.x_train, split.y_train), batch_size=batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(seed), num_workers=num_workers, pin_memory=pin_memory)
    test = DataLoader(TensorDataset(split.x_test, split.y_test), batch_size=max(batch_size, 256),
                      num_workers=num_workers, pin_memory=pin_memory)
    return train, test
