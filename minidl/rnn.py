"""Lesson 06: recurrent networks. RNN, LSTM and GRU cells in PyTorch's layout, clipping, a char model.

Notation: x_t is the input at step t, [B, I]; h is the hidden state, [B, H]. The weights are
laid out as in ``nn.RNNCell`` / ``nn.LSTMCell`` / ``nn.GRUCell``: W_ih [G*H, I], W_hh [G*H, H],
b_ih and b_hh [G*H], with the G gates stacked along the first axis in PyTorch's order:
LSTM (i, f, g, o), GRU (r, z, n). sigma is the logistic sigmoid.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def affine(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x W^T + b for x: [B, I] (or [I]), W: [G*H, I], b: [G*H] or None: every gate in one matmul."""
    y = x @ W.T
    return y if b is None else y + b


def rnn_cell(x: torch.Tensor, h: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor,
             b_ih: torch.Tensor | None = None, b_hh: torch.Tensor | None = None) -> torch.Tensor:
    """One step of a tanh RNN, as nn.RNNCell: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh), [B, H]."""
    return torch.tanh(affine(x, W_ih, b_ih) + affine(h, W_hh, b_hh))


def lstm_cell(x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], W_ih: torch.Tensor,
              W_hh: torch.Tensor, b_ih: torch.Tensor | None = None,
              b_hh: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step, as nn.LSTMCell. x: [B, I], state = (h, c) each [B, H] -> (h', c').

    [i, f, g, o] = x W_ih^T + b_ih + h W_hh^T + b_hh   (4H columns, split in that order)
    c' = sigma(f) * c + sigma(i) * tanh(g)
    h' = sigma(o) * tanh(c')
    """
    h, c = state
    i, f, g, o = (affine(x, W_ih, b_ih) + affine(h, W_hh, b_hh)).chunk(4, dim=-1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_next = torch.sigmoid(o) * torch.tanh(c_next)
    return h_next, c_next


def gru_cell(x: torch.Tensor, h: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor,
             b_ih: torch.Tensor | None = None, b_hh: torch.Tensor | None = None) -> torch.Tensor:
    """One GRU step, as nn.GRUCell. x: [B, I], h: [B, H] -> h': [B, H].

    [a_r, a_z, a_n] = x W_ih^T + b_ih,  [u_r, u_z, u_n] = h W_hh^T + b_hh   (order r, z, n)
    r = sigma(a_r + u_r),  z = sigma(a_z + u_z)
    n = tanh(a_n + r * u_n)          (r scales W_hn h + b_hn, after the product)
    h' = (1 - z) * n + z * h         (z keeps the old state)
    """
    a_r, a_z, a_n = affine(x, W_ih, b_ih).chunk(3, dim=-1)
    u_r, u_z, u_n = affine(h, W_hh, b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(a_r + u_r)
    z = torch.sigmoid(a_z + u_z)
    n = torch.tanh(a_n + r * u_n)
    return (1 - z) * n + z * h


def clip_grad_norm_(parameters: torch.Tensor | Iterable[torch.Tensor], max_norm: float,
                    norm_type: float = 2.0) -> torch.Tensor:
    """Scale every .grad in place so that their joint norm is at most ``max_norm``.

    total = || (||g_1||_p, ..., ||g_n||_p) ||_p   (the p-norm of all gradients as one vector;
    for p = inf, the largest |g|), then each g <- g * min(1, max_norm / (total + 1e-6)).
    Parameters without a gradient are skipped. Returns ``total`` as a 0-d tensor.
    """
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    with torch.no_grad():
        norms = torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads])
        total = torch.linalg.vector_norm(norms, norm_type)
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.to(g.dtype))
    return total


def rnn_forward(xs: torch.Tensor, h: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor,
                b_ih: torch.Tensor | None = None, b_hh: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Unroll ``rnn_cell`` over xs: [T, B, I] from h_0 = h; returns [h_1, ..., h_T].

    Backpropagation through time is autograd on this unrolled graph: dL/dh_t sums the paths
    through every later step, each multiplying by W_hh^T diag(1 - h_{t+1}^2).
    """
    states = []
    for x in xs:
        h = rnn_cell(x, h, W_ih, W_hh, b_ih, b_hh)
        states.append(h)
    return states


def gradient_norms_through_time(W_hh_scale: float, steps: int = 50, hidden: int = 32,
                                seed: int = 0) -> list[float]:
    """||dL/dh_t|| for t = 1..steps, where L depends on the last state only.

    W_hh has entries N(0, W_hh_scale^2 / hidden): its spectral radius (largest |eigenvalue|) is
    about ``W_hh_scale``, and its largest singular value, the size the lesson uses, about twice
    that (hidden=32, seed 0: 0.93, 1.86 and 5.6 at scales 0.5, 1 and 3). Going back one step
    multiplies the gradient by W_hh^T and by tanh' of that step. The inputs are small (0.01), so at
    scale 0.5 the states stay small, tanh' stays near 1 (the linear region) and the norms shrink
    geometrically going back in time (vanishing); at larger scales the states grow until tanh
    saturates (|h| near 1 at scale 3), tanh' < 1 damps each step, and still the norms grow going
    back (exploding).
    """
    g = torch.Generator().manual_seed(seed)
    W_hh = (torch.randn(hidden, hidden, generator=g, dtype=torch.float64) / hidden ** 0.5 * W_hh_scale).requires_grad_()
    W_ih = torch.randn(hidden, 1, generator=g, dtype=torch.float64)
    xs = torch.randn(steps, 1, 1, generator=g, dtype=torch.float64) * 0.01
    h = torch.zeros(1, hidden, dtype=torch.float64)
    states = rnn_forward(xs, h, W_ih, W_hh)
    for s in states:
        s.retain_grad()
    states[-1].sum().backward()
    return [float(s.grad.norm()) for s in states]


class CharModel(nn.Module):
    """A character-level language model: embedding -> LSTM -> linear over the vocabulary.

    forward(tokens [B, T]) -> logits [B, T, V]; ``sample`` draws new text one character at a time.
    """

    def __init__(self, vocab_size: int, embed: int = 32, hidden: int = 128, layers: int = 1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, tokens: torch.Tensor, state=None):
        out, state = self.lstm(self.embed(tokens), state)
        return self.head(out), state

    @torch.no_grad()
    def sample(self, start: torch.Tensor, length: int, temperature: float = 1.0,
               stop: int | None = None, generator: torch.Generator | None = None) -> list[int]:
        """Continue ``start`` (int64 [T0]) by up to ``length`` tokens; stop early at token ``stop``."""
        self.eval()
        tokens = start.view(1, -1)
        logits, state = self(tokens)
        out: list[int] = []
        for _ in range(length):
            probs = torch.softmax(logits[0, -1] / temperature, dim=-1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=generator).to(tokens.device)
            if stop is not None and int(nxt) == stop:
                break
            out.append(int(nxt))
            logits, state = self(nxt.view(1, 1), state)
        return out
