"""autograder.sandbox: forbidden built-ins are refused by every route, and restored afterwards."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import minidl.broadcasting
from autograder.sandbox import ForbiddenCall, Sandbox

NAMES = ["torch.cdist", "torch.Tensor.softmax", "torch.nn.functional.softmax", "aten::_softmax",
         "torch.broadcast_shapes", "numpy.broadcast_shapes", "minidl.broadcasting.softmax",
         "torch.Tensor.stride", "torch.nn.Conv2d", "torch.rnn_tanh*"]
alias_cdist, alias_shapes, alias_reference = torch.cdist, torch.broadcast_shapes, minidl.broadcasting.softmax
x = torch.randn(3, 4)

ROUTES = {
    "alias bound before": lambda: alias_cdist(x, x),
    "tensor method": lambda: x.softmax(-1),
    "functional": lambda: F.softmax(x, -1),
    "aten operator": lambda: torch.ops.aten._softmax(x, -1, False),
    "python function alias": lambda: alias_shapes((1, 2), (3, 1)),
    "numpy": lambda: np.broadcast_shapes((1, 2), (3, 1)),
    "the reference under another name": lambda: alias_reference(x),
    "reading strides": lambda: torch.empty(2, 3).stride(),
    "a module class": lambda: torch.nn.Conv2d(1, 1, 3)(torch.randn(1, 1, 5, 5)),
    "a wildcard": lambda: torch.rnn_tanh_cell(x, x, torch.randn(4, 4), torch.randn(4, 4)),
}


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_is_refused(route):
    with Sandbox(NAMES) as sandbox:
        with pytest.raises(ForbiddenCall):
            ROUTES[route]()
    assert sandbox.hits


def test_a_swallowed_refusal_is_still_recorded():
    with Sandbox(NAMES) as sandbox:
        try:
            torch.cdist(x, x)
        except Exception:
            pass
    assert sandbox.hits == ["torch.cdist"]


def test_allowed_operations_run_and_everything_is_restored():
    with Sandbox(NAMES) as sandbox:
        assert (x.exp() / x.exp().sum(-1, keepdim=True)).shape == (3, 4)
    assert not sandbox.hits
    assert alias_shapes((1, 2), (3, 1)) == (3, 2)
    assert x.stride() == (4, 1)
    assert np.broadcast_shapes((1,), (2,)) == (2,)
    torch.testing.assert_close(alias_reference(x), torch.softmax(x, -1))
