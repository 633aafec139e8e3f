"""autograder.plain: outputs become plain data, and comparison names the symptom."""

import torch

from autograder.exercise import DEFAULT_TOLERANCES
from autograder.plain import compare, plain


def tol(dtype):
    return DEFAULT_TOLERANCES[dtype]


class AlwaysEqual:
    def __eq__(self, other):
        return True


class Sneaky(torch.Tensor):
    pass


def test_an_object_equal_to_everything_is_not_a_tensor():
    m = compare(plain(torch.ones(2)), plain(AlwaysEqual()), tol)
    assert m.symptom == "type" and "AlwaysEqual" in m.message


def test_a_tensor_subclass_is_refused():
    got = torch.ones(2).as_subclass(Sneaky)
    assert compare(plain(torch.ones(2)), plain(got), tol).symptom == "type"


def test_symptoms_are_named():
    e = torch.ones(2, 3)
    assert compare(plain(e), plain(torch.ones(3, 2)), tol).symptom == "shape"
    assert compare(plain(e), plain(e.double()), tol).symptom == "dtype"
    assert compare(plain(e), plain(torch.full((2, 3), float("nan"))), tol).symptom == "nonfinite"
    m = compare(plain(e), plain(e + torch.tensor([[0, 0, 0], [0, 0.5, 0]])), tol)
    assert m.symptom == "values" and "[1, 1]" in m.message


def test_values_within_tolerance_pass():
    e = torch.randn(5, dtype=torch.float64)
    assert compare(plain(e), plain(e + 1e-12), tol) is None


def test_containers_must_keep_their_type():
    assert compare(plain((1, 2)), plain([1, 2]), tol).symptom == "type"
    assert compare(plain((1, 2)), plain(torch.Size([1, 2])), tol) is None
    assert compare(plain({"a": 1}), plain({"b": 1}), tol).symptom == "type"


def test_plain_trees_load_with_weights_only(tmp_path):
    tree = plain({"x": [torch.ones(2), (3, "s", None, 1.5)]})
    torch.save(tree, tmp_path / "t.pt")
    loaded = torch.load(tmp_path / "t.pt", weights_only=True)
    assert compare(tree, loaded, tol) is None
