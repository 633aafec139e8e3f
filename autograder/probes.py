"""Probes: what is observed of a learner's code on one case.

A probe is called as ``probe(fn, *args, **kwargs)``, where ``fn`` is the learner's function or
class, or the reference, and returns what is compared. The same probe runs the reference in the
oracle and the learner's code in the runner, so both are observed in the same way. Every call
into ``fn`` (or into an object it made) happens inside ``learner_code()``, where the runner
switches the exercise's forbidden built-ins off.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from .i18n import _
from .sandbox import learner_code


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The output of the call."""
    with learner_code():
        return fn(*args, **kwargs)


class NotDifferentiable(Exception):
    """The learner's output is not connected to the inputs' autograd graph."""


def with_grad(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict:
    """The output and the gradients of sum(output * w) for a fixed weighting w, per float input.

    w[i] = sin(1.7 i + 0.3) weights every output element differently, so a gradient that is
    wrong anywhere shows. Float tensors inside a tuple argument (an LSTM's state (h, c)) are
    inputs too, and a tuple of output tensors is weighted as a whole, the k-th with w shifted by k.
    Inputs are named arg0, arg1, ... in the report; ``named_gradients`` gives them names.
    """
    return _gradients(fn, args, kwargs, [f"arg{i}" for i in range(len(args))])


def named_gradients(*names: str | tuple[str, ...]) -> Callable[..., dict]:
    """``with_grad`` whose report names the positional inputs: named_gradients("x", "h", ...);
    a tuple argument takes a tuple of names, ("h", "c"), or is numbered: state[0], state[1]."""
    def probe(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict:
        return _gradients(fn, args, kwargs, [*names, *(f"arg{i}" for i in range(len(names), len(args)))])
    return probe


def _gradients(fn: Callable[..., Any], args: tuple, kwargs: dict, names: list[str | tuple[str, ...]]) -> dict:
    def leaf(a: Any) -> Any:
        return a.detach().clone().requires_grad_(True) if _is_float(a) else a

    inputs = [tuple(leaf(a) for a in arg) if type(arg) is tuple else leaf(arg) for arg in args]
    with learner_code():
        out = fn(*inputs, **kwargs)
    outs = list(out) if type(out) is tuple else [out]
    if not outs or any(type(o) is not torch.Tensor or not o.requires_grad for o in outs):
        raise NotDifferentiable(_(
            "your output is not connected to the inputs' autograd graph (did you use .detach(), "
            ".item(), .numpy() or build it with torch.tensor(...)?)"
        ))
    leaves = []
    for name, arg in zip(names, inputs):
        if type(arg) is tuple:
            parts = name if type(name) is tuple else [f"{name}[{i}]" for i in range(len(arg))]
            leaves += [(part, a) for part, a in zip(parts, arg) if _is_float(a)]
        elif _is_float(arg):
            leaves.append((name, arg))
    loss = sum((o * _weighting(o, shift=k)).sum() for k, o in enumerate(outs))
    grads = torch.autograd.grad(loss, [t for _, t in leaves], allow_unused=True)
    result = {"output": tuple(o.detach() for o in outs) if type(out) is tuple else out.detach()}
    for (name, t), g in zip(leaves, grads):
        result[f"gradient w.r.t. {name}"] = torch.zeros_like(t) if g is None else g
    return result


def _weighting(out: torch.Tensor, shift: int = 0) -> torch.Tensor:
    i = torch.arange(out.numel(), dtype=out.dtype, device=out.device)
    return torch.sin(i * 1.7 + 0.3 + shift).reshape(out.shape)


def _is_float(x: Any) -> bool:
    return type(x) is torch.Tensor and x.is_floating_point()


class NotAModel(TypeError):
    """The object graded as a trained model cannot be called on a batch of inputs."""


def model_output(model: Any, inputs: torch.Tensor) -> torch.Tensor:
    """A trained model's output on the grader's held-out ``inputs``: in eval mode, without
    autograd, on the inputs' device. A model that returns a tuple (logits, state) is read by
    its first element. The grader measures the output against answers it keeps to itself.
    A copy is evaluated, so the learner's own model keeps its device and its train/eval mode."""
    with learner_code(), torch.no_grad():
        if not callable(model):
            raise NotAModel(_("this should be your trained model (an nn.Module), not an object of type "
                              "{type}").format(type=type(model).__name__))
        if isinstance(model, torch.nn.Module):
            model = copy.deepcopy(model).to(inputs.device).eval()  # dropout off, batch norm's running statistics
        out = model(inputs)
    return out[0] if type(out) is tuple and len(out) > 0 else out
