"""Lessons 05 and 06: minidl's references against PyTorch's built-ins on the CPU, measured in the same run.

``rows()`` returns (name, ratio) pairs, ratio = minidl's time / the built-in's time (best of
several interleaved repeats, forward and backward). Targets: conv2d within 3x of F.conv2d,
lstm_cell within 2x of nn.LSTMCell.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from minidl import cnn, rnn

from .timing import interleaved_ratio


def fwd_bwd(fn: Callable[..., object], *tensors: torch.Tensor, **kwargs) -> Callable[[], None]:
    """A closure that runs fn forward and backward on fresh leaves of ``tensors``."""
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]

    def run() -> None:
        for t in leaves:
            t.grad = None
        out = fn(*leaves, **kwargs)
        out = out if isinstance(out, tuple) else (out,)
        sum(o.sum() for o in out).backward()

    return run


def cell_call(module: torch.nn.Module, state_is_pair: bool):
    def call(x, h, c=None):
        return module(x, (h, c) if state_is_pair else h)
    return call


def rows() -> list[tuple[str, float]]:
    torch.manual_seed(0)
    out: list[tuple[str, float]] = []
    x, w, b = torch.randn(32, 16, 28, 28), torch.randn(32, 16, 3, 3), torch.randn(32)
    out.append(("cnn.conv2d fwd [32,16,28,28]*[32,16,3,3] pad 1 / F.conv2d",
                interleaved_ratio(lambda: cnn.conv2d(x, w, b, padding=1), lambda: F.conv2d(x, w, b, padding=1), repeats=15)))
    out.append(("cnn.conv2d fwd+bwd / F.conv2d",
                interleaved_ratio(fwd_bwd(cnn.conv2d, x, w, b, padding=1), fwd_bwd(F.conv2d, x, w, b, padding=1), repeats=15)))
    out.append(("cnn.max_pool2d fwd+bwd 2x2 / F.max_pool2d",
                interleaved_ratio(fwd_bwd(cnn.max_pool2d, x, kernel_size=2), fwd_bwd(F.max_pool2d, x, kernel_size=2), repeats=15)))
    B, I, H = 64, 128, 256
    xs, h, c = torch.randn(B, I), torch.randn(B, H), torch.randn(B, H)
    for name, ours, Module, gates in [("rnn_cell", rnn.rnn_cell, torch.nn.RNNCell, 1),
                                      ("lstm_cell", rnn.lstm_cell, torch.nn.LSTMCell, 4),
                                      ("gru_cell", rnn.gru_cell, torch.nn.GRUCell, 3)]:
        module = Module(I, H)
        params = [p.detach() for p in (module.weight_ih, module.weight_hh, module.bias_ih, module.bias_hh)]
        pair = name == "lstm_cell"
        if pair:
            def mine(x, h, c, *p, _f=ours):
                return _f(x, (h, c), *p)
            args = (xs, h, c)
        else:
            def mine(x, h, *p, _f=ours):
                return _f(x, h, *p)
            args = (xs, h)
        with torch.no_grad():
            fwd = interleaved_ratio(lambda: mine(*args, *params), lambda: cell_call(module, pair)(*args), repeats=30)
        out.append((f"rnn.{name} fwd [B={B}, I={I}, H={H}] / nn.{Module.__name__}", fwd))
        out.append((f"rnn.{name} fwd+bwd / nn.{Module.__name__}",
                    interleaved_ratio(fwd_bwd(mine, *args, *params), fwd_bwd(cell_call(module, pair), *args), repeats=30)))
    return out


if __name__ == "__main__":
    for name, ratio in rows():
        print(f"{ratio:6.2f}x  {name}")
