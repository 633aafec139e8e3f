"""Lesson 06's catalogue: correct answers written gate by gate pass, each classic mistake fails with its symptom named."""

import math
import re

import pytest
import torch
import torch.nn.functional as F

from autograder import check
from minidl import text


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


def test_cell_gradients_are_reported_by_the_argument_names():
    """A cell whose values are right but whose gradient into the cell state c is cut."""
    def cut_c(x, state, *weights):
        return lstm_cell(x, (state[0], state[1].detach()), *weights)

    result = check("rnn.lstm_cell", cut_c)
    assert [f.group for f in result.failures] == ["gradients"], result
    assert "gradient w.r.t. c" in result.message, result.message
    rnn = check("rnn.rnn_cell", lambda x, h, W_ih, W_hh, b_ih=None, b_hh=None:
                rnn_cell(x, h.detach(), W_ih, W_hh, b_ih, b_hh))
    assert "gradient w.r.t. h" in rnn.message, rnn.message


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


def test_clip_grad_norm_dividing_by_a_zero_norm_fails():
    """max_norm / total in Python floats: all-zero gradients (total 0) raise ZeroDivisionError."""
    def no_guard(parameters, max_norm, norm_type=2.0):
        params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
        grads = [p.grad for p in params if p.grad is not None]
        norms = [torch.linalg.vector_norm(g, norm_type) for g in grads]
        total = torch.linalg.vector_norm(torch.stack(norms), norm_type)
        for g in grads:
            g.mul_(min(1.0, max_norm / float(total)))
        return total

    result = check("rnn.clip_grad_norm_", no_guard)
    assert result.score < result.max_score and result.failures[0].group == "zero gradients", str(result)
    assert named(result, "ZeroDivisionError", "1e-6"), str(result)


def test_clip_grad_norm_forbidden():
    result = check("rnn.clip_grad_norm_", lambda p, m, t=2.0: torch.nn.utils.clip_grad_norm_(p, m, t))
    assert result.status == "forbidden" and "clip_grad_norm_" in result.failures[0].message


# -- rnn.char_model: a trained model, scored by its loss on names the grader draws ------------------------


class PrefixCounts(torch.nn.Module):
    """A causal model without training that has seen every name (the held-out ones too): the
    next character's log-frequency among the names that start with the prefix so far. It
    returns (logits, None), as an LSTM model returning its state would.

    The prefixes are the nodes of a trie, ``child[node, token]`` (node 0: a prefix never seen),
    so that forward is a few tensor operations per position, fast under the grader's sandbox."""

    def __init__(self, names, vocab):
        super().__init__()
        V = len(vocab)
        nodes, counts = {"": 1}, [torch.zeros(V), torch.full((V,), 0.01)]
        edges = []
        for name in names:
            marked = text.BOUNDARY + name + text.BOUNDARY
            for t in range(1, len(marked)):
                prefix = marked[1:t]
                if prefix not in nodes:
                    nodes[prefix] = len(counts)
                    counts.append(torch.full((V,), 0.01))
                    edges.append((nodes[marked[1:t - 1]], vocab.index[marked[t - 1]], nodes[prefix]))
                counts[nodes[prefix]][vocab.index[marked[t]]] += 1
        child = torch.zeros(len(counts), V, dtype=torch.long)
        for parent, token, node in edges:
            child[parent, token] = node
        log_p = torch.stack(counts).log()
        log_p[0] = 0.0                                      # an unseen prefix: uniform
        self.register_buffer("child", child)
        self.register_buffer("log_p", log_p)

    def forward(self, tokens):
        node = torch.ones(tokens.shape[0], dtype=torch.long)  # the empty prefix, after the start mark
        logits = []
        for t in range(tokens.shape[1]):
            if t > 0:
                node = self.child[node, tokens[:, t]]
            logits.append(self.log_p[node])
        return torch.stack(logits, dim=1), None


class Bigram(torch.nn.Module):
    """The next character's log-frequency after the current one, counted on the training names."""

    def __init__(self, names, vocab):
        super().__init__()
        x, y = text.encode_names(names, vocab)
        keep = y != text.PAD
        counts = torch.ones(len(vocab), len(vocab)).index_put_((x[keep], y[keep]), torch.ones(int(keep.sum())),
                                                              accumulate=True)
        self.register_buffer("log_p", (counts / counts.sum(1, keepdim=True)).log())

    def forward(self, tokens):
        return self.log_p[tokens]


@pytest.fixture(scope="module")
def names():
    pytest.importorskip("names")
    train, _ = text.split_names(text.first_names())
    return text.first_names(), train, text.names_vocab()


def test_char_model_good_model_gets_full_points(names):
    everyone, _, vocab = names
    result = check("rnn.char_model", PrefixCounts(everyone, vocab), hidden=True)
    assert result.passed and result.score == result.max_score, result
    assert "validation loss" in result.message and "nats per character on 200 held-out names" in result.message


def test_char_model_bigram_gets_partial_points_naming_the_loss(names):
    _, train, vocab = names
    result = check("rnn.char_model", Bigram(train, vocab))
    assert not result.passed and 0 < result.score < result.max_score / 2, result
    failure = result.failures[0]
    assert failure.symptom == "metric" and "validation loss 2.3" in failure.message
    assert "full points at 2 or below" in failure.message


def test_char_model_that_peeks_at_the_next_character_gains_nothing(names):
    _, _, vocab = names

    class Peeker(torch.nn.Module):
        def forward(self, tokens):                       # "predicts" the next input token: not a language model
            return F.one_hot(tokens.roll(-1, dims=1), len(vocab)).float() * 20

    result = check("rnn.char_model", Peeker())
    assert result.score == 0 and "validation loss" in result.message


def test_char_model_wrong_output_and_not_a_model():
    result = check("rnn.char_model", torch.nn.Embedding(27, 26))
    assert result.score == 0 and re.search(r"\[200, \d+, 27\]", result.message) and "26]" in result.message
    assert check("rnn.char_model", 3.0).status == "missing"

    class Stub(torch.nn.Module):
        def forward(self, tokens):
            raise NotImplementedError()

    assert check("rnn.char_model", Stub()).status == "not_implemented"


def test_char_model_threshold_is_the_one_the_notebook_states():
    from autograder.catalog import EXERCISES
    from tests.conftest import ROOT

    rule = EXERCISES["rnn.char_model"].threshold
    notebook = (ROOT / "course" / "source" / "06_rnn" / "06_rnn.ipynb").read_text()
    assert f"below {rule.full:.1f} nats per character" in notebook and f"none from {rule.zero:.1f}" in notebook


class PrefixOrBigram(Bigram):
    """PrefixCounts for the prefixes of the names it was given, the bigram table elsewhere: with
    the validation names among them, a model that memorised the learner's validation split."""

    def __init__(self, names, vocab):
        super().__init__(names, vocab)
        self.prefixes = PrefixCounts(names, vocab)

    def forward(self, tokens):
        seen, _ = self.prefixes(tokens)
        known = seen.ne(0).any(dim=-1, keepdim=True)
        return torch.where(known, seen.log_softmax(-1), super().forward(tokens))


def test_memorising_the_validation_names_gains_nothing_on_the_graded_pool(names, monkeypatch):
    """Far below an honest model's loss on the validation names (where the grader used to draw),
    about the same on the pool the grader draws now with an instructor's secret."""
    from autograder import oracle

    _, train, vocab = names
    _, val = text.split_names(text.first_names())
    honest, memoriser = PrefixOrBigram(train, vocab), PrefixOrBigram(train + val, vocab)
    loss = lambda model, x, y: F.cross_entropy(model(x).flatten(0, 1), y.flatten(), ignore_index=text.PAD).item()
    x_val, y_val = text.encode_names(val, vocab)
    assert loss(memoriser, x_val, y_val) < loss(honest, x_val, y_val) - 0.5
    monkeypatch.setenv("AUTOGRADER_SECRET", "an instructor's secret")
    data = oracle.cases_and_expected(["rnn.char_model"], hidden=True)["rnn.char_model"]
    x, y = data["cases"][0].args[0], data["expected"][0]["data"]
    assert loss(memoriser, x, y) > loss(honest, x, y) - 0.03
