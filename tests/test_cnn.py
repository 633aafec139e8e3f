"""minidl.cnn against PyTorch's built-ins: values and gradients in float64 on random shapes."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl import cnn

pairs = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))
pads = st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2)))


@st.composite
def conv_problem(draw):
    stride, padding, dilation = draw(pairs), draw(pads), draw(pairs)
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    (dh, dw), (ph, pw) = cnn.pair(dilation), cnn.pair(padding)
    H = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 12))
    W = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 12))
    B, C, O = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**31))
    return (B, C, O, H, W, kh, kw), dict(stride=stride, padding=padding, dilation=dilation), bias, seed


def grads_of(fn, tensors, kwargs):
    leaves = [t.detach().clone().requires_grad_(True) if t is not None else None for t in tensors]
    out = fn(*leaves, **kwargs)
    w = torch.sin(torch.arange(out.numel(), dtype=out.dtype) * 1.3).reshape(out.shape)
    got = torch.autograd.grad((out * w).sum(), [t for t in leaves if t is not None])
    return out.detach(), got


@settings(max_examples=60, deadline=None)
@given(conv_problem())
def test_conv2d_matches_f_conv2d(problem):
    (B, C, O, H, W, kh, kw), kwargs, bias, seed = problem
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(O, C, kh, kw, generator=g, dtype=torch.float64)
    b = torch.randn(O, generator=g, dtype=torch.float64) if bias else None
    out, grads = grads_of(cnn.conv2d, (x, w, b), kwargs)
    ref, ref_grads = grads_of(F.conv2d, (x, w, b), kwargs)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref)
    for a, e in zip(grads, ref_grads):
        torch.testing.assert_close(a, e)


def test_conv2d_loops_matches():
    g = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*s, generator=g, dtype=torch.float64) for s in [(2, 3, 7, 8), (4, 3, 3, 2), (4,)])
    for kwargs in [{}, {"stride": 2, "padding": (1, 2)}, {"dilation": (2, 1), "stride": (1, 3)}]:
        torch.testing.assert_close(cnn.conv2d_loops(x, w, b, **kwargs), F.conv2d(x, w, b, **kwargs))


@given(st.integers(1, 40), st.integers(1, 5), st.integers(1, 4), st.integers(0, 3), st.integers(1, 3))
def test_conv_output_size(size, k, s, p, d):
    if size + 2 * p < d * (k - 1) + 1:
        return
    out = F.conv1d(torch.zeros(1, 1, size), torch.zeros(1, 1, k), stride=s, padding=p, dilation=d)
    assert cnn.conv_output_size(size, k, s, p, d) == out.shape[-1]


@st.composite
def pool_problem(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kernel = draw(st.sampled_from([(kh, kw), kh]))
    k = cnn.pair(kernel)
    stride = draw(st.one_of(st.none(), st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = draw(st.one_of(st.integers(0, min(k) // 2), st.tuples(st.integers(0, k[0] // 2), st.integers(0, k[1] // 2))))
    H, W = draw(st.integers(k[0], 9)), draw(st.integers(k[1], 9))
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W), dict(kernel_size=kernel, stride=stride, padding=padding), draw(st.integers(0, 2**31))


@settings(max_examples=60, deadline=None)
@given(pool_problem())
def test_max_pool2d_matches(problem):
    shape, kwargs, seed = problem
    n = torch.Size(shape).numel()
    g = torch.Generator().manual_seed(seed)
    x = (torch.randperm(n, generator=g).to(torch.float64) - n / 2).reshape(shape)   # distinct: no ties
    out, (grad,) = grads_of(cnn.max_pool2d, (x,), kwargs)
    ref, (ref_grad,) = grads_of(F.max_pool2d, (x,), kwargs)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(grad, ref_grad)


def test_receptive_field_and_params():
    assert cnn.receptive_field([(3, 1), (3, 1)]) == 5
    assert cnn.receptive_field([(3, 1), (2, 2), (3, 1), (2, 2)]) == 10
    conv = torch.nn.Conv2d(3, 8, (3, 5))
    assert cnn.conv_params(3, 8, (3, 5)) == sum(p.numel() for p in conv.parameters())
    assert cnn.conv_params(3, 8, 3, bias=False) == 8 * 3 * 9


@pytest.mark.parametrize("size", [8, 28])
def test_lenet_shapes(size):
    model = cnn.LeNet(image_size=size)
    assert model(torch.zeros(2, 1, size, size)).shape == (2, 10)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_conv2d_cuda():
    x, w = torch.randn(2, 3, 8, 8, device="cuda"), torch.randn(4, 3, 3, 3, device="cuda")
    torch.testing.assert_close(cnn.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1), rtol=1e-3, atol=1e-3)


def test_conv2d_second_order():
    """Im2col's hand-written backward is itself built from differentiable operations."""
    g = torch.Generator().manual_seed(1)
    x, w, b = (torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)
               for s in [(2, 2, 5, 4), (3, 2, 2, 3), (3,)])
    kwargs = {"stride": (2, 1), "padding": 1, "dilation": (1, 2)}
    assert torch.autograd.gradgradcheck(lambda *t: cnn.conv2d(*t, **kwargs), (x, w, b))
