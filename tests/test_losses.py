"""minidl.losses against torch.nn.functional: values and gradients, float32 and float64, stability."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.losses import binary_cross_entropy_with_logits, cross_entropy, mse_loss


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(1, 6), st.sampled_from(["mean", "sum", "none"]),
       st.sampled_from([torch.float32, torch.float64]), st.floats(0.1, 20.0))
def test_cross_entropy_matches_torch(n, c, reduction, dtype, scale):
    logits = (torch.randn(n, c, dtype=dtype) * scale).requires_grad_()
    targets = torch.randint(0, c, (n,))
    ours = cross_entropy(logits, targets, reduction)
    theirs = F.cross_entropy(logits, targets, reduction=reduction)
    assert ours.dtype == dtype and ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs)
    w = torch.randn_like(theirs)
    torch.testing.assert_close(torch.autograd.grad((ours * w).sum(), logits)[0],
                               torch.autograd.grad((theirs * w).sum(), logits)[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cross_entropy_is_finite_on_huge_logits(dtype):
    logits = torch.randn(4, 5, dtype=dtype) * 1e4
    targets = torch.tensor([0, 1, 2, 3])
    ours = cross_entropy(logits, targets, "none")
    assert ours.isfinite().all()
    torch.testing.assert_close(ours, F.cross_entropy(logits, targets, reduction="none"))
    assert cross_entropy(torch.tensor([[1000.0, 0.0, -1000.0]]), torch.tensor([2])).item() == pytest.approx(2000.0)


def test_softmax_before_cross_entropy_is_a_different_loss():
    logits = torch.tensor([[4.0, 0.0, -2.0]])
    target = torch.tensor([0])
    assert cross_entropy(logits.softmax(1), target) > cross_entropy(logits, target) + 0.5


def test_cross_entropy_rejects_an_unknown_reduction():
    with pytest.raises(ValueError):
        cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), "avg")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_and_bce_match_torch(reduction):
    pred, target = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    torch.testing.assert_close(mse_loss(pred, target, reduction), F.mse_loss(pred, target, reduction=reduction))
    z = (torch.randn(7, dtype=torch.float64) * 50).requires_grad_()
    y = torch.randint(0, 2, (7,)).double()
    ours = binary_cross_entropy_with_logits(z, y, reduction)
    theirs = F.binary_cross_entropy_with_logits(z, y, reduction=reduction)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(torch.autograd.grad(ours.sum(), z)[0], torch.autograd.grad(theirs.sum(), z)[0])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cross_entropy_on_cuda():
    logits, targets = torch.randn(5, 4, device="cuda"), torch.randint(0, 4, (5,), device="cuda")
    torch.testing.assert_close(cross_entropy(logits, targets), F.cross_entropy(logits, targets))
