"""minidl.tensors against PyTorch's built-ins, on random shapes."""

from collections import OrderedDict, namedtuple

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.tensors import contiguous_strides, one_hot, patchify, to_device

shapes = st.lists(st.integers(0, 6), min_size=0, max_size=5).map(tuple)


@given(shapes)
def test_contiguous_strides_match_torch(shape):
    assert contiguous_strides(shape) == torch.empty(shape).stride()


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_one_hot_matches_torch(shape, classes, seed):
    labels = torch.randint(0, classes, tuple(shape), generator=torch.Generator().manual_seed(seed))
    out = one_hot(labels, classes)
    assert out.dtype == torch.float32 and out.device == labels.device
    assert torch.equal(out, F.one_hot(labels, classes).float())


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0]])
def test_one_hot_rejects_labels_outside_the_range(labels):
    with pytest.raises(ValueError, match="labels must lie in"):
        one_hot(torch.tensor(labels), 3)


def test_one_hot_of_no_labels():
    assert one_hot(torch.zeros(0, dtype=torch.long), 4).shape == (0, 4)


Pair = namedtuple("Pair", "a b")


def test_to_device_keeps_every_container_type():
    obj = {"x": torch.ones(2), "rest": [Pair(torch.zeros(1), "s"), (torch.ones(3), 4)],
           "od": OrderedDict(k=torch.ones(1)), "none": None}
    moved = to_device(obj, "meta")
    assert moved["x"].device.type == "meta"
    assert type(moved["rest"][0]) is Pair and moved["rest"][0].a.device.type == "meta" and moved["rest"][0].b == "s"
    assert type(moved["rest"][1]) is tuple and moved["rest"][1][1] == 4
    assert type(moved["od"]) is OrderedDict and moved["none"] is None
    assert obj["x"].device.type == "cpu"  # the input is left alone


@settings(deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3))
def test_patchify_matches_unfold(b, c, p, h, w):
    images = torch.randn(b, c, h * p, w * p, dtype=torch.float64)
    expected = F.unfold(images, p, stride=p).transpose(1, 2)
    assert torch.equal(patchify(images, p), expected)


def test_patchify_gradient_matches_unfold():
    images = torch.randn(2, 3, 4, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 6, 12, dtype=torch.float64)
    (g,) = torch.autograd.grad((patchify(images, 2) * w).sum(), images)
    (e,) = torch.autograd.grad((F.unfold(images, 2, stride=2).transpose(1, 2) * w).sum(), images)
    assert torch.equal(g, e)


def test_patchify_rejects_a_patch_that_does_not_divide():
    with pytest.raises(ValueError, match="must divide"):
        patchify(torch.zeros(1, 1, 5, 4), 2)
