"""minidl.autograd against torch.autograd: the Value engine, numerical gradients, linear backward, SiLU."""

import math
import random

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.catalog.autograd import build, tree_program
from autograder.exercise import Draw
from minidl.autograd import SiLU, Value, draw_graph, linear_backward, numerical_grad, topological_order

f64 = torch.float64


def torch_leaf(x):
    return torch.tensor(float(x), dtype=f64, requires_grad=True)


def grad_of(t) -> float:
    return 0.0 if t.grad is None else t.grad.item()   # a leaf the output does not depend on


def random_program(seed: int) -> list[tuple]:
    """Random expressions over every operation Value supports, inputs kept where each op is defined."""
    rng = random.Random(seed)
    program = [("leaf", round(rng.uniform(0.3, 1.5), 3)) for _ in range(3)]
    for _ in range(rng.randint(2, 8)):
        n = len(program)
        i, j = rng.randrange(n), rng.randrange(n)
        op = rng.choice(["add", "sub", "mul", "divpos", "addc", "mulc", "pow", "radd", "rsub", "rmul", "rdivpos",
                         "neg", "tanh", "relu", "exppos", "logpos"])
        if op == "divpos":      # a / (b^2 + 1): a denominator away from 0
            program += [("pow", j, 2), ("addc", n, 1.0), ("div", i, n + 1)]
        elif op == "rdivpos":
            program += [("pow", i, 2), ("addc", n, 0.5), ("rdiv", n + 1, 2.0)]
        elif op == "exppos":    # exp(tanh(a)): bounded
            program += [("tanh", i), ("exp", n)]
        elif op == "logpos":    # log(a^2 + 1)
            program += [("pow", i, 2), ("addc", n, 1.0), ("log", n + 1)]
        elif op in ("add", "sub", "mul"):
            program.append((op, i, j))
        elif op in ("addc", "mulc", "radd", "rsub", "rmul"):
            program.append((op, i, round(rng.uniform(-2, 2), 2)))
        elif op == "pow":
            program.append(("pow", i, rng.choice([2, 3, 2.0])))
        else:
            program.append((op, i))
    return program


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6))
def test_value_matches_torch_on_random_expressions(seed):
    program = random_program(seed)
    ours, theirs = build(program, Value), build(program, torch_leaf)
    ours[-1].backward()
    theirs[-1].backward()
    for (op, *_), v, t in zip(program, ours, theirs):
        assert v.data == pytest.approx(t.item(), rel=1e-12, abs=1e-12)
        if op == "leaf":
            assert v.grad == pytest.approx(grad_of(t), rel=1e-10, abs=1e-12)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10**6))
def test_value_matches_torch_on_tree_programs_from_the_catalog(seed):
    program = tree_program(Draw(str(seed)), 6)
    ours, theirs = build(program, Value), build(program, torch_leaf)
    ours[-1].backward()
    theirs[-1].backward()
    for (op, *_), v, t in zip(program, ours, theirs):
        if op == "leaf":
            assert v.grad == pytest.approx(grad_of(t), rel=1e-10, abs=1e-12)


def test_reused_node_accumulates():
    a = Value(3.0)
    b = a + a
    b.backward()
    assert a.grad == 2.0
    a = Value(-1.5)
    (a * a).backward()
    assert a.grad == -3.0


def test_backward_again_after_zeroing_gives_the_same_gradients_and_leaves_accumulate_otherwise():
    a, b = Value(0.8), Value(2.0)
    out = ((a - b) / b) * a
    out.backward()
    first = (a.grad, b.grad)
    a.grad = b.grad = 0.0
    out.backward()
    assert (a.grad, b.grad) == first
    out.backward()                           # not zeroed: leaves accumulate, as in PyTorch
    assert (a.grad, b.grad) == pytest.approx((2 * first[0], 2 * first[1]))
    x = torch.tensor(0.8, dtype=f64, requires_grad=True)
    y = torch.tensor(2.0, dtype=f64, requires_grad=True)
    t = ((x - y) / y) * x
    t.backward(retain_graph=True)
    t.backward()
    assert x.grad.item() == pytest.approx(a.grad) and y.grad.item() == pytest.approx(b.grad)


def test_reflected_and_unary_ops():
    a = Value(2.0)
    assert (2 + a).data == 4 and (3 - a).data == 1 and (1 / a).data == 0.5 and (-a).data == -2 and (4 * a).data == 8
    assert Value(-1.0).relu().data == 0.0 and Value(1.0).exp().data == pytest.approx(math.e)
    with pytest.raises(TypeError):
        a ** Value(2.0)


def test_topological_order_puts_inputs_first_and_draw_graph_runs():
    import matplotlib

    matplotlib.use("Agg")
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    order = topological_order(d)
    assert order.index(a) < order.index(c) < order.index(d) and len(order) == 4
    d.backward()
    ax = draw_graph(d, {id(a): "a", id(b): "b"})
    assert len(ax.texts) == 4 + 4          # four boxes, four arrows


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numerical_grad_matches_autograd(dtype):
    x = torch.randn(3, 4, dtype=torch.float64)
    f = lambda t: (t.sin() * t * t).sum()  # noqa: E731
    leaf = x.clone().requires_grad_()
    expected = torch.autograd.grad(f(leaf), leaf)[0]
    x = x.to(dtype)
    got = numerical_grad(f, x, eps=1e-6 if dtype == torch.float64 else 1e-3)
    assert got.shape == x.shape and got.dtype == dtype
    torch.testing.assert_close(got, expected.to(dtype), rtol=1e-6 if dtype == torch.float64 else 1e-2,
                               atol=1e-7 if dtype == torch.float64 else 1e-2)


def test_numerical_grad_leaves_x_unchanged():
    x = torch.randn(5, dtype=torch.float64)
    before = x.clone()
    numerical_grad(lambda t: (t**3).sum(), x)
    assert torch.equal(x, before)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=0, max_size=3), st.integers(1, 5), st.integers(1, 5),
       st.sampled_from([torch.float32, torch.float64]))
def test_linear_backward_matches_autograd(batch, n_in, n_out, dtype):
    x = torch.randn(*batch, n_in, dtype=dtype, requires_grad=True)
    w = torch.randn(n_out, n_in, dtype=dtype, requires_grad=True)
    b = torch.randn(n_out, dtype=dtype, requires_grad=True)
    g = torch.randn(*batch, n_out, dtype=dtype)
    expected = torch.autograd.grad(F.linear(x, w, b), (x, w, b), g)
    got = linear_backward(x.detach(), w.detach(), b.detach(), g)
    for e, o in zip(expected, got):
        assert o.shape == e.shape and o.dtype == dtype
        torch.testing.assert_close(o, e)


def test_silu_passes_gradcheck_and_matches_torch():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(SiLU.apply, (x,))
    y = SiLU.apply(x)
    torch.testing.assert_close(y, F.silu(x))
    g = torch.randn_like(x)
    torch.testing.assert_close(torch.autograd.grad(y, x, g)[0], torch.autograd.grad(F.silu(x), x, g)[0])


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.sampled_from([torch.float32, torch.float64]))
def test_silu_random_shapes(shape, dtype):
    x = (torch.randn(shape, dtype=dtype) * 5).requires_grad_()
    y = SiLU.apply(x)
    assert y.dtype == dtype and y.shape == x.shape
    torch.testing.assert_close(y, F.silu(x))
    torch.testing.assert_close(torch.autograd.grad(y.sum(), x)[0], torch.autograd.grad(F.silu(x).sum(), x)[0])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_references_on_cuda():
    x, w, b, g = (torch.randn(*s, device="cuda") for s in [(2, 3, 4), (5, 4), (5,), (2, 3, 5)])
    assert all(t.device.type == "cuda" for t in linear_backward(x, w, b, g))
    assert SiLU.apply(x).device.type == "cuda"
    assert numerical_grad(lambda t: (t * t).sum(), x.double()).device.type == "cuda"


def test_numerical_grad_accepts_a_non_contiguous_x():
    x = torch.randn(3, 2, dtype=f64).T                  # a transposed view: strides (1, 2)
    got = numerical_grad(lambda t: (t * t * torch.arange(6.0, dtype=f64).reshape(2, 3)).sum(), x)
    torch.testing.assert_close(got, 2 * x * torch.arange(6.0, dtype=f64).reshape(2, 3))


def test_draw_graph_draws_one_arrow_per_use_of_a_reused_node():
    import matplotlib

    matplotlib.use("Agg")
    a = Value(0.7)
    t = a.tanh()
    out = t * t + t                                     # t is used three times
    out.backward()
    ax = draw_graph(out, {id(a): "a"})
    arrows = [text for text in ax.texts if not text.get_text()]
    assert len(arrows) == 1 + 2 + 2                     # a->tanh, tanh->* twice, tanh->+, *->+
    assert len({text.arrow_patch.get_connectionstyle().rad for text in arrows[1:3]}) == 2   # two distinct arcs
