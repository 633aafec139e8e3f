"""Lesson 06, RNN: the exercises and how they are checked."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..exercise import Case, Exercise, Group, Lesson, Threshold
from ..i18n import N_, _
from ..probes import model_output, named_gradients
from ..sandbox import learner_code


def clip_probe(fn, grads, max_norm, norm_type=2.0):
    """Give parameters these ``grads`` (None: no gradient), clip them with ``fn``; return what it
    returned and the original .grad tensors afterwards (clipping must scale them in place).

    ``grads`` a single tensor stands for a single parameter passed on its own, not in a list.
    """
    single = type(grads) is torch.Tensor
    params, originals = [], []
    for g in [grads] if single else grads:
        if g is None:
            params.append(torch.zeros(3, requires_grad=True))
            originals.append(None)
            continue
        p = torch.zeros_like(g, requires_grad=True)
        p.grad = g.clone()
        params.append(p)
        originals.append(p.grad)
    with learner_code():
        total = fn(params[0] if single else params, max_norm, norm_type)
    return {N_("total norm"): total, N_("gradients after clipping"): originals}


def weights(draw, gates, i, h, bias=True, dtype=None):
    dtype = dtype or draw.dtype()
    s = 1 / math.sqrt(h)
    W_ih, W_hh = draw.randn(gates * h, i, dtype=dtype, scale=2 * s), draw.randn(gates * h, h, dtype=dtype, scale=2 * s)
    b = (draw.randn(gates * h, dtype=dtype, scale=s), draw.randn(gates * h, dtype=dtype, scale=s)) if bias else ()
    return (W_ih, W_hh) + b


def cell_cases(draw, gates, lstm=False, bias=True, dtype=None, n=4):
    for _ in range(n):
        b, i, h = draw.rng.randint(1, 4), draw.rng.randint(1, 5), draw.rng.randint(2, 5)
        dtype_ = dtype or draw.dtype()
        x, h0 = draw.randn(b, i, dtype=dtype_), draw.randn(b, h, dtype=dtype_, scale=0.8)
        state = (h0, draw.randn(b, h, dtype=dtype_)) if lstm else h0
        yield Case("", (x, state) + weights(draw, gates, i, h, bias, dtype_), size=b * i * h,
                   note=f"batch {b}, input size {i}, hidden size {h}" + ("" if bias else ", no biases"))


def rnn_values(draw):
    yield from cell_cases(draw, 1)


def rnn_nobias(draw):
    yield from cell_cases(draw, 1, bias=False, n=2)


def rnn_grads(draw):
    for case in cell_cases(draw, 1, dtype=torch.float64, n=3):
        yield case


def lstm_values(draw):
    yield from cell_cases(draw, 4, lstm=True)


def lstm_nobias(draw):
    yield from cell_cases(draw, 4, lstm=True, bias=False, n=2)


def lstm_grads(draw):
    yield from cell_cases(draw, 4, lstm=True, dtype=torch.float64, n=3)


def gru_update_gate(draw):
    """W_hn = 0 and b_hn = 0: where the reset gate is applied makes no difference, z's role shows alone."""
    for case in cell_cases(draw, 3, n=3):
        x, h, W_ih, W_hh, b_ih, b_hh = case.args
        H = h.shape[1]
        W_hh, b_hh = W_hh.clone(), b_hh.clone()
        W_hh[2 * H:], b_hh[2 * H:] = 0, 0
        yield Case("", (x, h, W_ih, W_hh, b_ih, b_hh), size=case.size, note=case.note + "; W_hn = 0, b_hn = 0")


def gru_reset_gate(draw):
    """The z rows are 0, so z = 0.5 and (1 - z) vs z makes no difference: r's placement shows alone."""
    for case in cell_cases(draw, 3, n=3):
        x, h, W_ih, W_hh, b_ih, b_hh = (a.clone() for a in case.args)
        H = h.shape[1]
        for t in (W_ih, W_hh, b_ih, b_hh):
            t[H:2 * H] = 0
        yield Case("", (x, h, W_ih, W_hh, b_ih, b_hh), size=case.size, note=case.note + "; z = 0.5 everywhere")


def gru_values(draw):
    yield from cell_cases(draw, 3)


def gru_nobias(draw):
    yield from cell_cases(draw, 3, bias=False, n=2)


def gru_grads(draw):
    yield from cell_cases(draw, 3, dtype=torch.float64, n=3)


def grads_list(draw, sizes, dtype, scale=3.0):
    return [draw.randn(*s, dtype=dtype, scale=scale) for s in sizes]


def clip_one(draw):
    for sizes, max_norm in [([(4, 3)], 1.0), ([(5,)], 0.5)]:
        yield Case("", (grads_list(draw, sizes, draw.dtype()), max_norm), size=1, note=f"one tensor, max_norm={max_norm}")
    yield Case("", (draw.randn(3, 3, scale=3.0), 1.0), size=1, note="a single parameter passed on its own, not in a list")


def clip_many(draw):
    for sizes, max_norm in [([(3, 2), (4,)], 1.0), ([(2, 2), (3,), (1, 5)], 2.0), ([(6,), (2, 3)], 0.1)]:
        yield Case("", (grads_list(draw, sizes, draw.dtype()), max_norm), size=len(sizes),
                   note=f"{len(sizes)} tensors, max_norm={max_norm}")


def clip_below(draw):
    yield Case("", (grads_list(draw, [(3,), (2, 2)], torch.float64, scale=0.1), 10.0), size=2,
               note="total norm below max_norm: nothing changes")


def clip_inf(draw):
    for sizes, max_norm in [([(3, 2), (4,)], 1.0), ([(5,)], 0.5), ([(2, 2), (3,)], 100.0)]:
        yield Case("", (grads_list(draw, sizes, draw.dtype()), max_norm, math.inf), size=len(sizes),
                   note=f"norm_type=inf, max_norm={max_norm}")


def clip_other_p(draw):
    yield Case("", (grads_list(draw, [(3,), (2, 2)], torch.float64), 1.0, 1.0), size=2, note="norm_type=1")
    yield Case("", (grads_list(draw, [(4,), (3,)], torch.float64), 1.0, 3.0), size=2, note="norm_type=3")


def clip_zero(draw):
    yield Case("", ([torch.zeros(3, 2, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)], 1.0), size=2,
               note="every gradient 0 (a frozen layer): the total norm is 0, nothing to scale, no division by 0")


def clip_missing(draw):
    g = grads_list(draw, [(3,), (2, 2)], torch.float64)
    yield Case("", ([g[0], None, g[1]], 1.0), size=3, note="the second parameter has no gradient (.grad is None)")


NAMES_DRAW = 200  # names per draw, out of the grader's reserve of 258
CHAR_LOSS_FULL = 2.0  # nats per character: the threshold the notebook states (a bigram model scores about 2.33)


def held_out_names(draw):
    """A draw of ``minidl.text.grader_names``, the reserve that ``split_names`` never returns (so the
    notebook neither trains nor tunes on it), one padded row each; the hidden draw is made with the
    instructor's secret. The next characters stay with the grader as the case's answer."""
    from minidl import text

    reserve = text.grader_names(text.first_names())
    pick = torch.randperm(len(reserve), generator=draw.gen)[:NAMES_DRAW].tolist()
    inputs, targets = text.encode_names([reserve[i] for i in pick], text.names_vocab())
    yield Case("", (inputs,), size=NAMES_DRAW, answer=targets, note=f"{NAMES_DRAW} held-out names")


def causal_logits(model, tokens):
    """The model's logits at each position t computed from tokens[:, :t+1] alone: every later token
    is replaced by the boundary id 0, so a model that looks ahead (a bidirectional LSTM, attention
    without a causal mask) learns nothing from the character it is asked to predict."""
    steps = []
    for t in range(tokens.shape[1]):
        seen = tokens.clone()
        seen[:, t + 1:] = 0
        out = model_output(model, seen)
        if type(out) is not torch.Tensor or out.dim() != 3 or out.shape[:2] != tokens.shape:
            return out  # the metric says what is wrong with it
        steps.append(out[:, t])
    return torch.stack(steps, dim=1)


def char_loss(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean cross-entropy, in nats per character, of the next characters (padding ignored).
    logits: [N, T, 27], targets: [N, T] with -1 at the padding."""
    N, T = targets.shape
    if logits.shape != (N, T, 27) or not logits.is_floating_point():
        raise ValueError(_("your model should return float logits [{n}, {t}, 27] for tokens [{n}, {t}] (or a tuple "
                           "(logits, state)), but it returned {dtype}{shape}").format(
                               n=N, t=T, dtype=str(logits.dtype).replace("torch.", ""), shape=list(logits.shape)))
    return F.cross_entropy(logits.double().flatten(0, 1), targets.flatten(), ignore_index=-1).item()


RNN_FORBIDDEN = ("torch.nn.RNN*", "torch.rnn_tanh*", "torch.rnn_relu*", "aten::rnn_tanh_cell", "aten::rnn_tanh")
LSTM_FORBIDDEN = ("torch.nn.LSTM*", "torch.lstm*", "torch._thnn_fused_lstm_cell", "aten::lstm_cell", "aten::lstm",
                  "aten::_thnn_fused_lstm_cell")
GRU_FORBIDDEN = ("torch.nn.GRU*", "torch.gru*", "torch._thnn_fused_gru_cell", "aten::gru_cell", "aten::gru",
                 "aten::_thnn_fused_gru_cell")
CLIP_FORBIDDEN = tuple(
    f"torch.nn.utils.{name}" for name in ("clip_grad_norm_", "clip_grad_norm", "clip_grads_with_norm_", "get_total_norm")
)

CELL_GRADIENTS = named_gradients("x", "h", "W_ih", "W_hh", "b_ih", "b_hh")
LSTM_GRADIENTS = named_gradients("x", ("h", "c"), "W_ih", "W_hh", "b_ih", "b_hh")
CELL_GRAD_HINT = ("Build the result from differentiable torch operations only (no .item(), numpy, "
                  "or in-place writes into the state).")

LESSON = Lesson(
    key="06_rnn",
    title="Recurrent networks",
    builds="RNN, LSTM and GRU cells in PyTorch's layout, gradient clipping, a trained character model",
    exercises=(
        Exercise(
            id="rnn.rnn_cell",
            title="A vanilla RNN cell",
            signature="(x, h, W_ih, W_hh, b_ih=None, b_hh=None) -> h'",
            builds="h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh), as nn.RNNCell",
            points=2,
            forbidden=RNN_FORBIDDEN,
            groups=(
                Group("values", 3, rnn_values,
                      hint="h' = tanh(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh): W_ih is [H, I], so multiply by its transpose."),
                Group("no bias", 1, rnn_nobias, hint="b_ih and b_hh may be None: then leave them out."),
                Group("gradients", 1, rnn_grads, probe=CELL_GRADIENTS, hint=CELL_GRAD_HINT),
            ),
            hints={"shape": "x is [B, I] and h is [B, H]; W_ih is [H, I] and W_hh is [H, H]: x @ W_ih.T is [B, H]."},
        ),
        Exercise(
            id="rnn.lstm_cell",
            title="An LSTM cell",
            signature="(x, (h, c), W_ih, W_hh, b_ih=None, b_hh=None) -> (h', c')",
            builds="nn.LSTMCell from its equations, gates in PyTorch's order (i, f, g, o)",
            points=4,
            forbidden=LSTM_FORBIDDEN,
            groups=(
                Group("gate order", 3, lstm_values,
                      hint="PyTorch stacks the LSTM gates in the order i, f, g, o (input, forget, cell candidate, "
                           "output): i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=-1); "
                           "c' = sigmoid(f) * c + sigmoid(i) * tanh(g); h' = sigmoid(o) * tanh(c')."),
                Group("no bias", 1, lstm_nobias, hint="b_ih and b_hh may be None: then leave them out."),
                Group("gradients", 1, lstm_grads, probe=LSTM_GRADIENTS, hint=CELL_GRAD_HINT),
            ),
            hints={"type": "Return a tuple (h_next, c_next) of two tensors.",
                   "shape": "h' and c' are both [B, H]; the gates together are [B, 4H]: split them with chunk(4, dim=-1)."},
        ),
        Exercise(
            id="rnn.gru_cell",
            title="A GRU cell",
            signature="(x, h, W_ih, W_hh, b_ih=None, b_hh=None) -> h'",
            builds="nn.GRUCell from its equations, gates in PyTorch's order (r, z, n)",
            points=4,
            forbidden=GRU_FORBIDDEN,
            groups=(
                Group("update gate", 2, gru_update_gate,
                      hint="The update gate z keeps the OLD state: h' = (1 - z) * n + z * h. "
                           "You have (1 - z) and z the wrong way round (or z's rows in the wrong place: "
                           "the gates are stacked r, z, n)."),
                Group("reset gate", 2, gru_reset_gate,
                      hint="PyTorch applies the reset gate after the matrix product: "
                           "n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn)). Multiplying h by r before the product "
                           "(the original paper's variant) gives different values."),
                Group("values", 2, gru_values,
                      hint="The gates are stacked r, z, n in W_ih, W_hh, b_ih and b_hh: chunk(3, dim=-1) each "
                           "product separately, because n needs h W_hn^T + b_hn on its own."),
                Group("no bias", 1, gru_nobias, hint="b_ih and b_hh may be None: then leave them out."),
                Group("gradients", 1, gru_grads, probe=CELL_GRADIENTS, hint=CELL_GRAD_HINT),
            ),
            hints={"shape": "h' is [B, H]; the gates together are [B, 3H]: split them with chunk(3, dim=-1)."},
        ),
        Exercise(
            id="rnn.clip_grad_norm_",
            title="Gradient clipping by the total norm",
            signature="(parameters, max_norm, norm_type=2.0) -> Tensor",
            builds="torch.nn.utils.clip_grad_norm_: one norm over all gradients, scaled in place",
            points=3,
            forbidden=CLIP_FORBIDDEN,
            probe=clip_probe,
            tolerances={torch.float32: (1e-4, 1e-6), torch.float64: (1e-5, 1e-9)},
            groups=(
                Group("one tensor", 2, clip_one,
                      hint="total = the norm of the gradient; multiply the gradient in place (p.grad.mul_(...)) by "
                           "min(1, max_norm / (total + 1e-6)), and return total as a tensor."),
                Group("many tensors", 3, clip_many,
                      hint="Clip by the norm of ALL gradients together (the norm of the per-tensor norms), and scale "
                           "every gradient by the same factor min(1, max_norm / (total + 1e-6)). Clipping each tensor "
                           "separately by its own norm changes the gradient's direction."),
                Group("below max_norm", 1, clip_below,
                      hint="When the total norm is already at most max_norm the gradients stay as they are "
                           "(the factor is clamped at 1)."),
                Group("inf norm", 1, clip_inf,
                      hint="For norm_type=inf the total norm is the largest |g| over all gradients."),
                Group("other p", 1, clip_other_p,
                      hint="For a p-norm: total = (sum over all gradients of |g|^p)^(1/p) "
                           "(torch.linalg.vector_norm(g, p) per tensor, then of the stacked norms)."),
                Group("zero gradients", 1, clip_zero,
                      hint="All-zero gradients give a total norm of 0: never divide by it alone. The factor is "
                           "min(1, max_norm / (total + 1e-6)); in Python floats max_norm / 0.0 raises "
                           "ZeroDivisionError, and in tensors 0 * inf is NaN."),
                Group("missing grads", 1, clip_missing,
                      hint="Skip parameters whose .grad is None."),
            ),
            hints={"type": "Return the total norm as a 0-d tensor (as torch.nn.utils.clip_grad_norm_ does), "
                           "not a Python float."},
        ),
        Exercise(
            id="rnn.char_model",
            title="A character-level model of first names",
            signature="a trained model: tokens [N, T] -> logits [N, T, 27] (or (logits, state))",
            builds=f"an LSTM language model trained on first names: full points below {CHAR_LOSS_FULL:g} nats per "
                   "character on held-out names",
            points=4,
            cpu_only=True,
            probe=causal_logits,
            threshold=Threshold("validation loss", char_loss, full=CHAR_LOSS_FULL, zero=2.4, unit="nats per character"),
            groups=(
                Group("held-out names", 1, held_out_names,
                      hint="Train longer or with a better learning rate (with gradient clipping), and watch the "
                           "loss on the validation names; the grader feeds other names: '.name' padded with '.', tokens as "
                           "text.encode_names(names, text.names_vocab()) makes them, and reads the next-character "
                           "logits at every position."),
            ),
            hints={"raised": "The grader calls char_model(tokens) with int64 tokens [N, T] (ids of "
                             "text.names_vocab(), on the CPU) and expects logits [N, T, 27] or (logits, state).",
                   "type": "char_model must be the trained network itself (an nn.Module), returning logits."},
        ),
    ),
)
