"""minidl.broadcasting against PyTorch's built-ins, with hypothesis for shapes."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.broadcasting import broadcast_shapes, pairwise_sq_dists, softmax, sum_to_shape

dims = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)


@given(st.lists(dims, min_size=1, max_size=4))
def test_broadcast_shapes_agrees_with_torch(shapes):
    try:
        expected = tuple(torch.broadcast_shapes(*shapes))
    except RuntimeError:
        with pytest.raises(ValueError, match="cannot be broadcast: dimension -"):
            broadcast_shapes(*shapes)
    else:
        assert broadcast_shapes(*shapes) == expected


def test_broadcast_shapes_names_the_clashing_dimension():
    with pytest.raises(ValueError, match=r"dimension -2 has sizes 2 and 4"):
        broadcast_shapes((2, 3), (4, 3))


@settings(deadline=None)
@given(dims, st.integers(0, 2), st.data())
def test_sum_to_shape_is_the_gradient_of_broadcasting(shape, extra, data):
    big = tuple(data.draw(st.integers(1, 3)) for _ in range(extra)) + tuple(
        data.draw(st.integers(1, 3)) if n == 1 else n for n in shape)
    a = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    g = torch.randn(big, dtype=torch.float64)
    (expected,) = torch.autograd.grad((a.expand(big) * g).sum(), a)
    out = sum_to_shape(g, shape)
    assert out.shape == shape
    torch.testing.assert_close(out, expected)


@settings(deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 6))
def test_pairwise_sq_dists_match_cdist(n, m, d):
    x, y = torch.randn(n, d, dtype=torch.float64), torch.randn(m, d, dtype=torch.float64)
    torch.testing.assert_close(pairwise_sq_dists(x, y), torch.cdist(x, y) ** 2)


def test_pairwise_sq_dists_never_negative():
    x = torch.randn(50, 16) * 100
    assert (pairwise_sq_dists(x, x) >= 0).all()


@settings(deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.data())
def test_softmax_matches_torch_in_values_and_gradients(shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(shape, dtype=torch.float64)
    ours, theirs = softmax(x, dim), torch.softmax(x, dim)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(torch.autograd.grad((ours * w).sum(), x)[0], torch.autograd.grad((theirs * w).sum(), x)[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softmax_is_finite_for_large_inputs(dtype):
    x = torch.randn(4, 7, dtype=dtype) * 1e4
    out = softmax(x)
    assert out.isfinite().all()
    torch.testing.assert_close(out, torch.softmax(x, -1))
