"""Lesson 04: ``minidl.train.fit`` against a bare loop, and minidl's optimizers against torch.optim.

``rows()`` returns (name, ratio) pairs, ratio = minidl's time / the other's time, both measured
in this run, interleaved, best of several repeats. Targets: fit within 5% of a bare loop doing
the same work (1.05x); the optimizers' ``step()`` in the same range as torch.optim's on the CPU,
where torch.optim also updates one tensor at a time (its foreach and fused kernels are for GPUs).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from minidl import optim, train

from .timing import interleaved_ratio


def digits_like(n: int = 2048, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Loaders shaped like lesson 04's digits (64 features, 10 classes), without reading a file."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(n, 64, generator=g), torch.randint(0, 10, (n,), generator=g)
    train_loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=g)
    return train_loader, DataLoader(TensorDataset(x[:512], y[:512]), batch_size=256)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def bare_loop(model: nn.Module, train_loader, val_loader, optimizer, epochs: int) -> None:
    """The same work as fit, written as short as it goes: train, then count correct predictions."""
    for _ in range(epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            sum(int((model(x).argmax(1) == y).sum()) for x, y in val_loader)


def fit_rows(epochs: int = 3) -> list[tuple[str, float]]:
    train_loader, val_loader = digits_like()
    torch.manual_seed(0)
    a, b = mlp(), mlp()
    opt_a, opt_b = torch.optim.SGD(a.parameters(), lr=0.01), torch.optim.SGD(b.parameters(), lr=0.01)

    def fit(progress: bool) -> Callable[[], object]:
        def run():
            with contextlib.redirect_stderr(io.StringIO()):          # the tqdm bar, off the terminal
                train.fit(a, train_loader, opt_a, F.cross_entropy, epochs, "cpu", val_loader=val_loader,
                          progress=progress)
        return run

    def bare():
        bare_loop(b, train_loader, val_loader, opt_b, epochs)

    return [(f"train.fit, {epochs} epochs of an MLP 64-256-256-10 / bare loop", interleaved_ratio(fit(False), bare)),
            ("train.fit, the same with its tqdm bar / bare loop", interleaved_ratio(fit(True), bare))]


def with_grads(shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=g).requires_grad_() for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)
    return params


def optimizer_rows() -> list[tuple[str, float]]:
    sizes = {"6 tensors, 0.4M values": [(512, 256), (512,), (512, 512), (512,), (10, 512), (10,)],   # an MLP
             "200 tensors of 1,000": [(1000,)] * 200}
    out = []
    for what, shapes in sizes.items():
        for name, ours, theirs, hp in [
            ("mu 0.9 wd 1e-4", optim.SGD, torch.optim.SGD, dict(lr=1e-3, momentum=0.9, weight_decay=1e-4)),
            ("wd 1e-4", optim.Adam, torch.optim.Adam, dict(lr=1e-3, weight_decay=1e-4)),
        ]:
            mine, builtin = ours(with_grads(shapes), **hp), theirs(with_grads(shapes), **hp)
            out.append((f"optim.{ours.__name__}.step {name}, {what} / torch.optim",
                        interleaved_ratio(mine.step, builtin.step, repeats=30)))
    return out


def rows() -> list[tuple[str, float]]:
    return fit_rows() + optimizer_rows()


if __name__ == "__main__":
    for name, ratio in rows():
        print(f"{ratio:6.2f}x  {name}")
