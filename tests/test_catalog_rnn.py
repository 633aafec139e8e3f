"""Lesson 06's catalogue: correct answers written gate by gate pass, each classic mistake fails with its symptom named."""

import math

import torch

from autograder import check


def lin(x, W, b):
    y = x @ W.T
    return y if b is None else y + b


def rnn_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None):
    return torch.tanh(lin(x, W_ih, b_ih) + lin(h, W_hh, b_hh))


def rows(W, k, n):
    """The k-th of n row blocks of W (or of a bias), or None."""
    if W is None:
        return None
    size = W.shape[0] // n
    return W[k * size:(k + 1) * size]


def lstm_cell(x, state, W_ih, W_hh, b_ih=None, b_hh=None, order="ifgo"):
    """Four separate products, one per gate (the loop-over-gates way); ``order`` injects a mistake."""
    h, c = state
    gates = {name: lin(x, rows(W_ih, k, 4), rows(b_ih, k, 4)) + lin(h, rows(W_hh, k, 4), rows(b_hh, k, 4))
             for k, name in enumerate(order)}
    c2 = torch.sigmoid(gates["f"]) * c + torch.sigmoid(gates["i"]) * torch.tanh(gates["g"])
    return torch.sigmoid(gates["o"]) * torch.tanh(c2), c2


def gru_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None, swap_z=False, paper=False):
    r = torch.sigmoid(lin(x, rows(W_ih, 0, 3), rows(b_ih, 0, 3)) + lin(h, rows(W_hh, 0, 3), rows(b_hh, 0, 3)))
    z = torch.sigmoid(lin(x, rows(W_ih, 1, 3), rows(b_ih, 1, 3)) + lin(h, rows(W_hh, 1, 3), rows(b_hh, 1, 3)))
    if paper:
        n = torch.tanh(lin(x, rows(W_ih, 2, 3), rows(b_ih, 2, 3)) + lin(r * h, rows(W_hh, 2, 3), rows(b_hh, 2, 3)))
    else:
        n = torch.tanh(lin(x, rows(W_ih, 2, 3), rows(b_ih, 2, 3)) + r * lin(h, rows(W_hh, 2, 3), rows(b_hh, 2, 3)))
    return z * n + (1 - z) * h if swap_z else (1 - z) * n + z * h


def clip_loops(parameters, max_norm, norm_type=2.0, separately=False, inplace=True):
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if norm_type == math.inf:
        norms = [g.abs().max() for g in grads]
        total = torch.stack(norms).max()
    else:
        norms = [(g.abs() ** norm_type).sum() ** (1 / norm_type) for g in grads]
        total = (torch.stack(norms) ** norm_type).sum() ** (1 / norm_type)
    for p, n in zip([p for p in params if p.grad is not None], norms):
        scale = min(1.0, max_norm / (float(n if separately else total) + 1e-6))
        if inplace:
            p.grad.mul_(scale)
        else:
            p.grad = p.grad * scale
    return total


def named(result, *words):
    text = (result.message + " " + (result.failures[0].hint if result.failures else "")).lower()
    return all(w.lower() in text for w in words)


def test_rnn_cell():
    assert check("rnn.rnn_cell", rnn_cell).passed
    wrong = check("rnn.rnn_cell", lambda x, h, W_ih, W_hh, b_ih=None, b_hh=None: torch.tanh(lin(x, W_ih, b_ih)))
    assert not wrong.passed
    assert check("rnn.rnn_cell", lambda *a: torch.rnn_tanh_cell(*a)).status == "forbidden"


def test_lstm_cell_per_gate_passes():
    result = check("rnn.lstm_cell", lstm_cell)
    assert result.passed and result.score == result.max_score, result


def test_lstm_cell_gate_order():
    for order in ("ifog", "igfo", "figo"):
        result = check("rnn.lstm_cell", lambda *a, **k: lstm_cell(*a, order=order, **k))
        assert not result.passed and result.failures[0].group == "gate order"
        assert named(result, "order i, f, g, o")


def test_lstm_cell_forbidden():
    def builtin(x, state, W_ih, W_hh, b_ih=None, b_hh=None):
        return torch.lstm_cell(x, state, W_ih, W_hh, b_ih, b_hh)

    assert check("rnn.lstm_cell", builtin).status == "forbidden"


def test_gru_cell_passes():
    result = check("rnn.gru_cell", gru_cell)
    assert result.passed and result.score == result.max_score, result


def test_gru_cell_swapped_update_gate():
    result = check("rnn.gru_cell", lambda *a, **k: gru_cell(*a, swap_z=True, **k))
    assert not result.passed and result.failures[0].group == "update gate"
    assert named(result, "(1 - z) * n + z * h", "wrong way round")


def test_gru_cell_reset_before_product():
    result = check("rnn.gru_cell", lambda *a, **k: gru_cell(*a, paper=True, **k))
    assert not result.passed and result.failures[0].group == "reset gate"
    assert named(result, "after the matrix product", "paper")


def test_gru_cell_forbidden():
    def builtin(x, h, W_ih, W_hh, b_ih=None, b_hh=None):
        cell = torch.nn.GRUCell(x.shape[1], h.shape[1], dtype=x.dtype)
        return cell(x, h)

    assert check("rnn.gru_cell", builtin).status == "forbidden"


def test_clip_grad_norm_passes():
    result = check("rnn.clip_grad_norm_", clip_loops)
    assert result.passed and result.score == result.max_score, result


def test_clip_grad_norm_separately():
    result = check("rnn.clip_grad_norm_", lambda *a, **k: clip_loops(*a, separately=True, **k))
    assert not result.passed and result.failures[0].group == "many tensors"
    assert named(result, "all gradients together", "separately")


def test_clip_grad_norm_not_in_place():
    result = check("rnn.clip_grad_norm_", lambda *a, **k: clip_loops(*a, inplace=False, **k))
    assert not result.passed and named(result, "in place")


def test_clip_grad_norm_returns_float():
    result = check("rnn.clip_grad_norm_", lambda *a, **k: float(clip_loops(*a, **k)))
    assert not result.passed and named(result, "0-d tensor")


def test_clip_grad_norm_forbidden():
    result = check("rnn.clip_grad_norm_", lambda p, m, t=2.0: torch.nn.utils.clip_grad_norm_(p, m, t))
    assert result.status == "forbidden" and "clip_grad_norm_" in result.failures[0].message
