"""GPU check: every minidl reference on CUDA against the same reference on the CPU, and against
PyTorch's built-in where there is one. Part of ``make gpu-check``: imports torch, pytest and the
repository only (no Jupyter, nbgrader or hypothesis), and is skipped without a GPU."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.catalog import EXERCISES
from autograder.oracle import compute
from autograder.plain import compare
from minidl import autograd, broadcasting, cnn, losses, optim, rnn, scale, tensors, transformer

pytestmark = pytest.mark.cuda

ON_DEVICES = sorted(eid for eid, e in EXERCISES.items() if not e.cpu_only and e.threshold is None)


def devices_of(tree: dict) -> list[str]:
    """The devices of the tensors in a plain tree (autograder.plain), in order."""
    if tree["kind"] == "tensor":
        return [tree["device"]]
    return [d for item in tree.get("items", []) for d in devices_of(item)]


def anywhere(tree: dict) -> dict:
    """The plain tree with its tensors' devices left out, to compare values across devices."""
    tree = copy.copy(tree)
    if tree["kind"] == "tensor":
        tree["device"] = "any"
    if "items" in tree:
        tree["items"] = [anywhere(item) for item in tree["items"]]
    return tree


@pytest.mark.parametrize("exercise_id", ON_DEVICES)
def test_reference_on_cuda_equals_itself_on_the_cpu(exercise_id):
    """The exercise's public cases, made on the CPU and on cuda: the reference's outputs agree within
    the tolerance the grader allows, and a CUDA case's output holds its tensors on the GPU."""
    exercise = EXERCISES[exercise_id]
    result = compute([exercise_id], hidden=False, devices=["cpu", "cuda"])[exercise_id]
    by_device: dict[str, list[tuple[str, dict]]] = {"cpu": [], "cuda": []}
    for case, out in zip(result["cases"], result["expected"]):
        if exercise.group(case.group).devices:
            by_device[case.device].append((case.group, out))
    assert len(by_device["cuda"]) == len(by_device["cpu"]) > 0
    for (group, on_cpu), (same_group, on_gpu) in zip(by_device["cpu"], by_device["cuda"]):
        assert group == same_group
        assert on_gpu["kind"] != "raised" or on_cpu["kind"] == "raised", (group, on_gpu)
        mismatch = compare(anywhere(on_cpu), anywhere(on_gpu), exercise.tolerance)
        assert mismatch is None, f"{exercise_id} [{group}]: {mismatch.message}"
        assert not devices_of(on_cpu) or "cuda:0" in devices_of(on_gpu), (exercise_id, group, devices_of(on_gpu))


# -- against PyTorch's built-ins, on cuda ------------------------------------------------------------

def r(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32, grad: bool = False) -> torch.Tensor:
    """A seeded standard-normal tensor of ``shape`` on cuda (drawn on the CPU, so the same on every GPU)."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype).cuda()
    return x.requires_grad_(grad)


def grads(out: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(out.sum(), inputs)


def conv2d() -> tuple:
    x, w, b = r(2, 3, 9, 8, grad=True), r(4, 3, 3, 2, seed=1, grad=True), r(4, seed=2, grad=True)
    kw = dict(stride=(2, 1), padding=1, dilation=(1, 2))
    with torch.backends.cudnn.flags(enabled=True, deterministic=True, allow_tf32=False):  # full float32 in cuDNN
        ours, theirs = cnn.conv2d(x, w, b, **kw), F.conv2d(x, w, b, **kw)
        return (ours, *grads(ours, x, w, b)), (theirs, *grads(theirs, x, w, b))


def max_pool2d() -> tuple:
    x = r(2, 3, 9, 8, grad=True)
    ours, theirs = cnn.max_pool2d(x, 3, 2, 1), F.max_pool2d(x, 3, 2, 1)
    return (ours, *grads(ours, x)), (theirs, *grads(theirs, x))


def cell(kind: str) -> tuple:
    """minidl's rnn_cell / lstm_cell / gru_cell against nn.RNNCell / LSTMCell / GRUCell, weights shared."""
    torch.manual_seed(0)
    module = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[kind](5, 7).cuda()
    x, h, c = r(3, 5), r(3, 7, seed=1), r(3, 7, seed=2)
    weights = (module.weight_ih, module.weight_hh, module.bias_ih, module.bias_hh)
    if kind == "lstm":
        return rnn.lstm_cell(x, (h, c), *weights), module(x, (h, c))
    return getattr(rnn, f"{kind}_cell")(x, h, *weights), module(x, h)


def linear_backward() -> tuple:
    x, w, b, g = r(2, 3, 4, grad=True), r(5, 4, seed=1, grad=True), r(5, seed=2, grad=True), r(2, 3, 5, seed=3)
    return autograd.linear_backward(x.detach(), w.detach(), b.detach(), g), \
        torch.autograd.grad(F.linear(x, w, b), (x, w, b), g)


def silu() -> tuple:
    x = r(4, 6, grad=True)
    ours, theirs = autograd.SiLU.apply(x), F.silu(x)
    return (ours, *grads(ours, x)), (theirs, *grads(theirs, x))


def optimizer(ours: Callable, theirs: Callable) -> tuple:
    """Five steps of each optimizer on the same quadratic: the parameter trajectories."""
    def trajectory(make: Callable) -> list[torch.Tensor]:
        p = nn.Parameter(r(6, dtype=torch.float64))
        opt, path = make([p]), []
        for t in range(5):
            opt.zero_grad()
            ((p - t) ** 2 * torch.arange(6, device="cuda")).sum().backward()
            opt.step()
            path.append(p.detach().clone())
        return path
    return trajectory(ours), trajectory(theirs)


def clip_grad_norm() -> tuple:
    def clipped(clip: Callable) -> tuple:
        params = [nn.Parameter(r(3, 4, seed=s)) for s in range(2)]
        for p in params:
            p.grad = 10 * p.detach().clone()
        return clip(params, 1.0), *[p.grad for p in params]
    return clipped(rnn.clip_grad_norm_), clipped(nn.utils.clip_grad_norm_)


def attention() -> tuple:
    q, k, v = (r(2, 3, 8, 16, seed=s) for s in range(3))
    mask = torch.rand(8, 8, generator=torch.Generator().manual_seed(4)).cuda() > 0.3
    mask.fill_diagonal_(True)
    return ((transformer.scaled_dot_product_attention(q, k, v, is_causal=True),
             transformer.scaled_dot_product_attention(q, k, v, attn_mask=mask)),
            (F.scaled_dot_product_attention(q, k, v, is_causal=True),
             F.scaled_dot_product_attention(q, k, v, attn_mask=mask)))


def multi_head() -> tuple:
    torch.manual_seed(0)
    ours = transformer.MultiHeadSelfAttention(12, 3).cuda()
    theirs = nn.MultiheadAttention(12, 3, batch_first=True).cuda()
    with torch.no_grad():
        theirs.in_proj_weight.copy_(ours.qkv.weight)
        theirs.in_proj_bias.copy_(ours.qkv.bias)
        theirs.out_proj.weight.copy_(ours.proj.weight)
        theirs.out_proj.bias.copy_(ours.proj.bias)
    x = r(2, 5, 12)
    mask = transformer.causal_mask(5, device="cuda")
    return ours(x, is_causal=True), theirs(x, x, x, attn_mask=~mask, need_weights=False)[0]


def quantized() -> tuple:
    """minidl's int8 codes computed on cuda against torch.quantize_per_tensor and MinMaxObserver (CPU)."""
    x = r(64) * 3
    observer = torch.ao.quantization.MinMaxObserver(dtype=torch.qint8)
    observer(x.cpu())
    s, z = observer.calculate_qparams()
    ours_s, ours_z = scale.choose_qparams(x)
    q = scale.quantize_per_tensor(x, float(s), int(z))
    expected = torch.quantize_per_tensor(x.cpu(), float(s), int(z), torch.qint8)
    return ((ours_s, ours_z, q, scale.dequantize(q, float(s), int(z))),
            (float(s), int(z), expected.int_repr().cuda(), expected.dequantize().cuda()))


def accumulated() -> tuple:
    """accumulated_step over micro-batches of 3, 5 and 4 against one step on their union of 12."""
    def step(micro: list) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).cuda().double()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        scale.accumulated_step(model, F.cross_entropy, opt, micro)
        return [p.detach() for p in model.parameters()]
    x, y = r(12, 6, dtype=torch.float64), torch.arange(12, device="cuda") % 3
    return step([(x[:3], y[:3]), (x[3:8], y[3:8]), (x[8:], y[8:])]), step([(x, y)])


labels = lambda: torch.tensor([0, 3, 1, 4, 2], device="cuda")  # noqa: E731

BUILT_INS: dict[str, Callable[[], tuple]] = {
    "tensors.one_hot": lambda: (tensors.one_hot(labels(), 5), F.one_hot(labels(), 5).float()),
    "tensors.patchify": lambda: (tensors.patchify(r(2, 3, 8, 8), 4),
                                 F.unfold(r(2, 3, 8, 8), 4, stride=4).transpose(1, 2)),
    "tensors.to_device": lambda: (tensors.to_device({"a": [torch.ones(2)], "b": 3}, "cuda")["a"],
                                  [torch.ones(2, device="cuda")]),
    "broadcasting.sum_to_shape": lambda: (broadcasting.sum_to_shape(r(4, 3, 5), (3, 1)), r(4, 3, 5).sum_to_size(3, 1)),
    "broadcasting.pairwise_sq_dists": lambda: (broadcasting.pairwise_sq_dists(r(7, 4), r(5, 4, seed=1)),
                                               torch.cdist(r(7, 4).double(), r(5, 4, seed=1).double()).float() ** 2),
    "broadcasting.softmax": lambda: (broadcasting.softmax(r(3, 7) * 1e4, dim=0), torch.softmax(r(3, 7) * 1e4, dim=0)),
    "autograd.numerical_grad": lambda: (autograd.numerical_grad(lambda t: (t ** 3).sum(), r(5, dtype=torch.float64)),
                                        3 * r(5, dtype=torch.float64) ** 2),
    "autograd.linear_backward": linear_backward,
    "autograd.SiLU": silu,
    "losses.cross_entropy": lambda: (losses.cross_entropy(r(6, 4), labels().repeat(2)[:6] % 4, reduction="none"),
                                     F.cross_entropy(r(6, 4), labels().repeat(2)[:6] % 4, reduction="none")),
    "optim.SGD": lambda: optimizer(lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
                                   lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True,
                                                              weight_decay=0.01)),
    "optim.Adam": lambda: optimizer(lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.01),
                                    lambda ps: torch.optim.Adam(ps, lr=0.1, weight_decay=0.01)),
    "cnn.conv2d": conv2d,
    "cnn.max_pool2d": max_pool2d,
    "rnn.rnn_cell": lambda: cell("rnn"),
    "rnn.lstm_cell": lambda: cell("lstm"),
    "rnn.gru_cell": lambda: cell("gru"),
    "rnn.clip_grad_norm_": clip_grad_norm,
    "transformer.scaled_dot_product_attention": attention,
    "transformer.layer_norm": lambda: (transformer.layer_norm(r(2, 5, 8), 8, r(8, seed=1), r(8, seed=2)),
                                       F.layer_norm(r(2, 5, 8), (8,), r(8, seed=1), r(8, seed=2))),
    "transformer.MultiHeadSelfAttention": multi_head,
    "scale.quantize_per_tensor": quantized,
    "scale.accumulated_step": accumulated,
}


def tensors_in(tree) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, (list, tuple)):
        return [t for item in tree for t in tensors_in(item)]
    return []


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_reference_on_cuda_equals_the_built_in(name):
    ours, theirs = BUILT_INS[name]()
    assert all(t.device.type == "cuda" for t in tensors_in(ours)), f"{name} left the GPU"
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5, check_device=True)
