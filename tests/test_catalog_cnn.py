"""Lesson 05's catalogue: correct loop-based answers pass, each classic mistake fails with its symptom named."""

import re

import pytest
import torch
import torch.nn.functional as F

from autograder import check


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv_loops(x, weight, bias=None, stride=1, padding=0, dilation=1, flip=False, pad_order="ok", out_size="ok"):
    """A correct loop over kernel taps; the keyword flags inject the classic mistakes."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    B, C, H, W = x.shape
    O, _, kh, kw = weight.shape
    if flip:
        weight = weight.flip(-1, -2)               # true convolution
    if pad_order == "swapped":
        x = F.pad(x, (ph, ph, pw, pw))             # F.pad's list read as (H, H, W, W)
    else:
        x = F.pad(x, (pw, pw, ph, ph))
    H2, W2 = x.shape[-2:]
    Ho = (H2 - dh * (kh - 1) - 1) // sh + 1
    Wo = (W2 - dw * (kw - 1) - 1) // sw + 1
    if out_size == "no_stride":                   # forgets to divide by the stride
        Ho, Wo = H2 - dh * (kh - 1), W2 - dw * (kw - 1)
    out = x.new_zeros(B, O, Ho, Wo)
    for u in range(kh):
        for v in range(kw):
            rows = slice(u * dh, u * dh + (Ho - 1) * sh + 1, sh)
            cols = slice(v * dw, v * dw + (Wo - 1) * sw + 1, sw)
            patch = x[:, :, rows, cols]                                  # [B, C, Ho', Wo']
            if patch.shape[-2:] != (Ho, Wo):
                patch = F.pad(patch, (0, Wo - patch.shape[-1], 0, Ho - patch.shape[-2]))
            out = out + torch.einsum("bchw,oc->bohw", patch, weight[:, :, u, v])
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def pool_loops(x, kernel_size, stride=None, padding=0, spread=False):
    (kh, kw) = _pair(kernel_size)
    (sh, sw) = (kh, kw) if stride is None else _pair(stride)
    ph, pw = _pair(padding)
    x = F.pad(x, (pw, pw, ph, ph), value=float("-inf"))
    Ho, Wo = (x.shape[-2] - kh) // sh + 1, (x.shape[-1] - kw) // sw + 1
    rows = []
    for i in range(Ho):
        row = []
        for j in range(Wo):
            window = x[:, :, i * sh: i * sh + kh, j * sw: j * sw + kw].flatten(-2)
            row.append(SpreadMax.apply(window) if spread else window.max(-1).values)
        rows.append(torch.stack(row, -1))
    return torch.stack(rows, -2)


class SpreadMax(torch.autograd.Function):
    """The right maximum, with a backward that sends the gradient to every element of the window."""

    @staticmethod
    def forward(ctx, window):
        ctx.shape = window.shape
        return window.max(-1).values

    @staticmethod
    def backward(ctx, g):
        return g.unsqueeze(-1).expand(ctx.shape).clone()


def named(result, *words):
    text = (result.message + " " + (result.failures[0].hint if result.failures else "")).lower()
    return all(w.lower() in text for w in words)


def test_conv_output_size():
    def right(size, kernel_size, stride=1, padding=0, dilation=1):
        return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1

    def no_dilation(size, kernel_size, stride=1, padding=0, dilation=1):
        return (size + 2 * padding - kernel_size) // stride + 1

    assert check("cnn.conv_output_size", right).passed
    wrong = check("cnn.conv_output_size", no_dilation)
    assert not wrong.passed and named(wrong, "d(k - 1)")


def test_conv2d_loops_pass():
    result = check("cnn.conv2d", conv_loops)
    assert result.passed and result.score == result.max_score, result


def test_conv2d_flipped_kernel():
    result = check("cnn.conv2d", lambda *a, **k: conv_loops(*a, flip=True, **k))
    assert not result.passed and result.failures[0].group == "kernel orientation"
    assert named(result, "cross-correlation", "flip")


def test_conv2d_padding_axes():
    result = check("cnn.conv2d", lambda *a, **k: conv_loops(*a, pad_order="swapped", **k))
    assert not result.passed and result.failures[0].group == "padding"
    assert named(result, "F.pad(x, (pw, pw, ph, ph))")


def test_conv2d_stride_output_size():
    result = check("cnn.conv2d", lambda *a, **k: conv_loops(*a, out_size="no_stride", **k))
    assert not result.passed and result.failures[0].group == "stride"
    assert result.failures[0].symptom == "shape" and named(result, "stride", "floor(", "/ sh) + 1")


def test_conv2d_forbidden_unfold():
    def via_unfold(x, weight, bias=None, stride=1, padding=0, dilation=1):
        cols = F.unfold(x, weight.shape[-2:], dilation=dilation, padding=padding, stride=stride)
        return cols

    result = check("cnn.conv2d", via_unfold)
    assert result.status == "forbidden" and "unfold" in result.failures[0].message


def test_conv2d_forbidden_reference_im2col():
    """minidl's own im2col is an autograd.Function: it is refused inside Function.apply, by name."""
    from minidl import cnn

    def via_reference_im2col(x, weight, bias=None, stride=1, padding=0, dilation=1):
        taps = [(slice(u, u + x.shape[2] - 2), slice(v, v + x.shape[3] - 2)) for u in range(3) for v in range(3)]
        return cnn.Im2col.apply(x.transpose(0, 1), taps)

    result = check("cnn.conv2d", via_reference_im2col)
    assert result.status == "forbidden" and "minidl.cnn.Im2col" in result.failures[0].message


def test_conv2d_forbidden_builtin():
    assert check("cnn.conv2d", lambda x, w, b=None, **k: F.conv2d(x, w, b, **k)).status == "forbidden"


def test_max_pool2d_loops_pass():
    result = check("cnn.max_pool2d", pool_loops)
    assert result.passed and result.score == result.max_score, result


def test_max_pool2d_spread_gradient():
    result = check("cnn.max_pool2d", lambda *a, **k: pool_loops(*a, spread=True, **k))
    assert not result.passed and result.failures[0].group == "gradient routing"
    assert named(result, "gradient", "maximum", "argmax")


def test_max_pool2d_amax_fails_on_tied_maxima():
    """A vectorised pool with amax: right values, but amax splits the gradient between tied maxima
    (a window of zeros after a ReLU), where F.max_pool2d sends it all to the first one."""
    def amax_pool(x, kernel_size, stride=None, padding=0):
        (kh, kw) = _pair(kernel_size)
        (sh, sw) = (kh, kw) if stride is None else _pair(stride)
        ph, pw = _pair(padding)
        x = F.pad(x, (pw, pw, ph, ph), value=float("-inf"))
        return x.unfold(2, kh, sh).unfold(3, kw, sw).amax(dim=(-2, -1))

    result = check("cnn.max_pool2d", amax_pool)
    assert result.score < result.max_score and result.failures[0].group == "gradient routing", str(result)
    assert named(result, "tie", "first"), str(result)


def test_max_pool2d_zero_padding():
    def zero_padded(x, kernel_size, stride=None, padding=0):
        p = _pair(padding)
        return pool_loops(F.pad(x, (p[1], p[1], p[0], p[0])), kernel_size, stride)

    result = check("cnn.max_pool2d", zero_padded)
    assert not result.passed and result.failures[0].group == "padding" and named(result, "-inf")


def test_max_pool2d_forbidden():
    assert check("cnn.max_pool2d", lambda x, kernel_size, stride=None, padding=0: F.max_pool2d(x, kernel_size, stride, padding)).status == "forbidden"


# -- cnn.digits_classifier: a trained model, scored by its accuracy on digits the grader draws ----------

class NearestNeighbour(torch.nn.Module):
    """A good model without training: the label of the closest training image (about 98-99% held out)."""

    def __init__(self, images, labels):
        super().__init__()
        self.register_buffer("images", images.flatten(1))
        self.register_buffer("labels", labels)

    def forward(self, x):
        nearest = torch.cdist(x.flatten(1), self.images).argmin(dim=1)
        return F.one_hot(self.labels[nearest], 10).float()


class NearestCentroid(torch.nn.Module):
    """A poorer model: minus the distance to each class's mean image (about 90% held out)."""

    def __init__(self, images, labels):
        super().__init__()
        self.register_buffer("centroids", torch.stack([images[labels == k].flatten(1).mean(0) for k in range(10)]))

    def forward(self, x):
        return -torch.cdist(x.flatten(1), self.centroids)


@pytest.fixture(scope="module")
def digits():
    from minidl.data import load_digits

    return load_digits(flatten=False)


def test_digits_classifier_good_model_gets_full_points(digits):
    result = check("cnn.digits_classifier", NearestNeighbour(digits.x_train, digits.y_train), hidden=True)
    assert result.passed and result.score == result.max_score, result
    assert "accuracy 0.9" in result.message and "held-out digits" in result.message


def test_digits_classifier_poor_model_gets_partial_points_naming_the_accuracy(digits):
    result = check("cnn.digits_classifier", NearestCentroid(digits.x_train, digits.y_train))
    assert not result.passed and 0 < result.score < result.max_score, result
    failure = result.failures[0]
    assert failure.symptom == "metric" and re.search(r"accuracy 0\.(8[1-9]|9[0-6])", failure.message)
    assert "full points from 0.96" in failure.message and "of the points" in failure.message


def test_digits_classifier_untrained_network_scores_zero():
    from minidl.cnn import LeNet

    torch.manual_seed(0)
    result = check("cnn.digits_classifier", LeNet(image_size=8))
    assert result.score == 0 and result.failures[0].symptom == "metric" and "accuracy 0." in result.message


def test_digits_classifier_that_is_not_a_model():
    missing = check("cnn.digits_classifier", "my model")
    assert missing.status == "missing" and "not a trained model" in missing.message
    # as the CLI's worker runs it: the object gets to the probe, which says what is wrong
    from autograder import oracle
    from autograder.catalog import EXERCISES
    from autograder import attempt

    exercise = EXERCISES["cnn.digits_classifier"]
    plan = attempt.prepare(exercise, oracle.cases_and_expected([exercise.id])[exercise.id])
    result = attempt.score(plan, *attempt.run(exercise, {"weights": 1}, plan.cases, plan.seconds))
    assert result.score == 0 and "should be your trained model" in result.message and "dict" in result.message


def test_digits_classifier_that_raises_or_returns_the_wrong_shape():
    flat = check("cnn.digits_classifier", torch.nn.Linear(64, 10))          # expects [N, 64], gets [N, 1, 8, 8]
    assert flat.score == 0 and "your model raised RuntimeError" in flat.message
    assert "[N, 1, 8, 8]" in flat.failures[0].hint
    probs = check("cnn.digits_classifier", torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5)))
    assert probs.score == 0 and "logits [150, 10]" in probs.message and "[150, 5]" in probs.message


def test_digits_classifier_not_implemented_forward():
    class Stub(torch.nn.Module):
        def forward(self, x):
            raise NotImplementedError()

    assert check("cnn.digits_classifier", Stub()).status == "not_implemented"


def test_digits_classifier_cases_never_carry_the_labels():
    from autograder import oracle

    public = oracle.cases_and_expected(["cnn.digits_classifier"])["cnn.digits_classifier"]
    hidden = oracle.cases_and_expected(["cnn.digits_classifier"], hidden=True)["cnn.digits_classifier"]
    for data in (public, hidden):
        assert all(case.answer is None for case in data["cases"])
        assert data["expected"][0]["kind"] == "tensor" and data["expected"][0]["shape"] == [150]
    assert not torch.equal(public["cases"][0].args[0], hidden["cases"][0].args[0])  # another draw


def test_digits_classifier_is_measured_in_eval_mode(digits):
    class TrainModeSaboteur(NearestNeighbour):
        def forward(self, x):
            out = super().forward(x)
            return out.flip(1) if self.training else out        # wrong in train mode only

    assert check("cnn.digits_classifier", TrainModeSaboteur(digits.x_train, digits.y_train)).passed


def test_threshold_shares_points_linearly_both_ways():
    from autograder.exercise import Threshold

    accuracy = Threshold("accuracy", lambda o, a: 0.0, full=0.97, zero=0.80)
    assert [accuracy.fraction(v) for v in (1.0, 0.97, 0.885, 0.80, 0.1)] == pytest.approx([1, 1, 0.5, 0, 0])
    loss = Threshold("validation loss", lambda o, a: 0.0, full=2.0, zero=2.4)
    assert [loss.fraction(v) for v in (1.5, 2.0, 2.2, 2.4, 9.0, float("nan"))] == pytest.approx([1, 1, 0.5, 0, 0, 0])
    assert "from 0.97" in accuracy.goal() and "at 2 or below" in loss.goal()


def test_digits_classifier_check_leaves_the_model_as_it_was(digits):
    model = NearestNeighbour(digits.x_train, digits.y_train).train()
    check("cnn.digits_classifier", model)
    assert model.training


def test_digits_classifier_threshold_is_the_one_the_notebook_states():
    from autograder.catalog import EXERCISES
    from tests.conftest import ROOT

    rule = EXERCISES["cnn.digits_classifier"].threshold
    notebook = (ROOT / "course" / "source" / "05_cnn" / "05_cnn.ipynb").read_text()
    assert f"full points from {rule.full:.2f}" in notebook and f"none at {rule.zero:.2f} or below" in notebook


class LookupTable(torch.nn.Module):
    """A learner who memorised digits with their labels: a digit it has seen gets its label back,
    any other the answer of ``fallback``."""

    def __init__(self, images, labels, fallback):
        super().__init__()
        self.register_buffer("images", images.flatten(1))
        self.register_buffer("labels", labels)
        self.fallback = fallback

    def forward(self, x):
        distance, nearest = torch.cdist(x.flatten(1), self.images).min(dim=1)
        seen = distance < 1e-6
        return torch.where(seen[:, None], 100 * F.one_hot(self.labels[nearest], 10).float(), self.fallback(x))


def graded_accuracy(model, monkeypatch):
    """The accuracy of ``model`` on the hidden pool that the grader draws with an instructor's secret."""
    from autograder import oracle

    monkeypatch.setenv("AUTOGRADER_SECRET", "an instructor's secret")
    data = oracle.cases_and_expected(["cnn.digits_classifier"], hidden=True)["cnn.digits_classifier"]
    images, labels = data["cases"][0].args[0], data["expected"][0]["data"]
    with torch.no_grad():
        return (model(images).argmax(dim=1) == labels).double().mean().item()


def test_memorising_the_held_out_split_gains_nothing_on_the_graded_pool(digits, monkeypatch):
    """The held-out split is the learner's to tune on: a model that memorised it scores far above
    an honest one there (where the grader used to draw), and no more than a few points above it on
    the pool the grader draws now."""
    on_held_out = lambda model: (model(digits.x_test).argmax(dim=1) == digits.y_test).double().mean().item()
    honest = NearestCentroid(digits.x_train, digits.y_train)
    memoriser = LookupTable(digits.x_test, digits.y_test, honest)
    assert on_held_out(memoriser) == 1.0 and on_held_out(honest) < 0.93
    assert graded_accuracy(memoriser, monkeypatch) <= graded_accuracy(honest, monkeypatch) + 0.02
    neighbours = NearestNeighbour(digits.x_train, digits.y_train)           # the same method, with and without
    everything = NearestNeighbour(torch.cat([digits.x_train, digits.x_test]), torch.cat([digits.y_train, digits.y_test]))
    assert graded_accuracy(everything, monkeypatch) <= graded_accuracy(neighbours, monkeypatch) + 0.03
    graded = check("cnn.digits_classifier", memoriser, hidden=True)          # a lookup table earns partial points
    assert 0 < graded.score < graded.max_score and graded.hidden_cases > 0
