"""minidl.rnn against PyTorch's cells and clip_grad_norm_: values and gradients in float64."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl import rnn

CELLS = {"rnn": (rnn.rnn_cell, torch.nn.RNNCell), "lstm": (rnn.lstm_cell, torch.nn.LSTMCell),
         "gru": (rnn.gru_cell, torch.nn.GRUCell)}


def weighted_sum(outs):
    outs = outs if isinstance(outs, tuple) else (outs,)
    return sum((o * torch.sin(torch.arange(o.numel(), dtype=o.dtype) + k).reshape(o.shape)).sum()
               for k, o in enumerate(outs))


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(CELLS)), st.integers(1, 4), st.integers(1, 5), st.integers(1, 6), st.booleans(),
       st.integers(0, 2**31))
def test_cells_match_torch(kind, B, I, H, bias, seed):
    ours, Module = CELLS[kind]
    torch.manual_seed(seed)
    cell = Module(I, H, bias=bias).double()
    x = torch.randn(B, I, dtype=torch.float64, requires_grad=True)
    h = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    c = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    state = (h, c) if kind == "lstm" else h
    ref = cell(x, state)
    params = [cell.weight_ih, cell.weight_hh] + ([cell.bias_ih, cell.bias_hh] if bias else [])
    inputs = [x, h, c] if kind == "lstm" else [x, h]
    ref_grads = torch.autograd.grad(weighted_sum(ref), inputs + params)
    got = ours(x, state, *params)
    got_grads = torch.autograd.grad(weighted_sum(got), inputs + params)
    torch.testing.assert_close(got, ref)
    for a, e in zip(got_grads, ref_grads):
        torch.testing.assert_close(a, e)


def make_params(sizes, seed, scale):
    g = torch.Generator().manual_seed(seed)
    params = []
    for s in sizes:
        p = torch.zeros(s, dtype=torch.float64, requires_grad=True)
        p.grad = torch.randn(s, generator=g, dtype=torch.float64) * scale
        params.append(p)
    return params


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(1, 4)), min_size=1, max_size=4),
       st.floats(0.01, 10.0), st.sampled_from([2.0, 1.0, 3.0, math.inf]), st.floats(0.01, 5.0), st.integers(0, 999))
def test_clip_grad_norm_matches(sizes, max_norm, norm_type, scale, seed):
    ours, ref = make_params(sizes, seed, scale), make_params(sizes, seed, scale)
    grads = [p.grad for p in ours]
    total = rnn.clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(ref, max_norm, norm_type)
    torch.testing.assert_close(total, expected)
    for p, q, g in zip(ours, ref, grads):
        assert p.grad is g  # scaled in place
        torch.testing.assert_close(p.grad, q.grad)


def test_clip_grad_norm_edges():
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.tensor([3.0, 4.0, 0.0])
    q = torch.zeros(2, requires_grad=True)  # no gradient: skipped
    assert float(rnn.clip_grad_norm_([p, q], 1.0)) == pytest.approx(5.0)
    assert float(p.grad.norm()) == pytest.approx(1.0, rel=1e-5)
    single = torch.zeros(2, requires_grad=True)
    single.grad = torch.tensor([0.3, 0.4])
    assert float(rnn.clip_grad_norm_(single, 1.0)) == pytest.approx(0.5)
    torch.testing.assert_close(single.grad, torch.tensor([0.3, 0.4]))
    assert float(rnn.clip_grad_norm_([q], 1.0)) == 0.0


def test_vanishing_and_exploding():
    small = rnn.gradient_norms_through_time(0.5, steps=30)
    large = rnn.gradient_norms_through_time(3.0, steps=30)
    assert small[0] < 1e-3 * small[-1]   # shrinks going back in time
    assert large[0] > large[-1]          # grows going back in time


def test_char_model_shapes_and_sample():
    model = rnn.CharModel(vocab_size=7, embed=4, hidden=8)
    logits, _ = model(torch.zeros(2, 5, dtype=torch.long))
    assert logits.shape == (2, 5, 7)
    out = model.sample(torch.tensor([0]), 10, generator=torch.Generator().manual_seed(0))
    assert len(out) <= 10 and all(0 <= t < 7 for t in out)
