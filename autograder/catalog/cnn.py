"""Lesson 05, CNN: the exercises and how they are checked."""

from __future__ import annotations

import torch

from ..exercise import Case, Exercise, Group, Lesson, Threshold
from ..i18n import _
from ..probes import model_output, with_grad


def out_size_cases(draw):
    for size, k, s, p, d in [(8, 3, 1, 0, 1), (28, 5, 1, 2, 1), (7, 3, 2, 0, 1), (10, 4, 3, 1, 1),
                             (9, 3, 1, 2, 2), (32, 3, 2, 1, 1), (224, 7, 2, 3, 1), (5, 5, 1, 0, 1)]:
        yield Case("", (size, k), {"stride": s, "padding": p, "dilation": d}, size=size)


def out_size_drawn(draw):
    for _ in range(6):
        k, s, p, d = draw.rng.randint(1, 5), draw.rng.randint(1, 4), draw.rng.randint(0, 3), draw.rng.randint(1, 3)
        size = draw.rng.randint(d * (k - 1) + 1, 40)
        yield Case("", (size, k, s, p, d), size=size)


def conv_inputs(draw, b, c, o, hw, k, bias=False, dtype=None):
    dtype = dtype or draw.dtype()
    args = (draw.randn(b, c, *hw, dtype=dtype), draw.randn(o, c, *k, dtype=dtype))
    return args + (draw.randn(o, dtype=dtype),) if bias else args


def conv_orientation(draw):
    edge = torch.tensor([[[[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]]]], dtype=torch.float64)   # no symmetry
    ramp = torch.arange(30, dtype=torch.float64).reshape(1, 1, 5, 6) ** 1.5
    yield Case("", (ramp, edge), size=30, note="an asymmetric 2x3 kernel on a ramp image")
    yield Case("", (draw.randn(1, 1, 5, 5), draw.randn(1, 1, 3, 3)), size=25, note="one channel, a random 3x3 kernel")


def conv_values(draw):
    for hw, k in [((5, 5), (3, 3)), ((6, 7), (2, 3)), ((8, 6), (3, 1)), ((7, 7), (4, 4))]:
        b, c, o = draw.rng.randint(1, 3), draw.rng.randint(1, 3), draw.rng.randint(1, 4)
        yield Case("", conv_inputs(draw, b, c, o, hw, k), size=b * c * o * hw[0] * hw[1])


def conv_padding(draw):
    for pad, hw, k in [(1, (5, 5), (3, 3)), ((1, 2), (5, 6), (3, 3)), ((2, 0), (4, 7), (3, 2)), ((0, 1), (6, 4), (2, 3))]:
        yield Case("", conv_inputs(draw, 2, 2, 3, hw, k), {"padding": pad}, size=12 * hw[0] * hw[1],
                   note=f"padding={pad}: (rows on top and bottom, columns on the left and right)")


def conv_stride(draw):
    for stride, pad, hw, k in [(2, 0, (7, 7), (3, 3)), (3, 0, (8, 10), (2, 2)), ((2, 1), 0, (9, 6), (3, 3)),
                               ((1, 3), 1, (5, 11), (3, 2)), (2, 1, (6, 6), (3, 3))]:
        yield Case("", conv_inputs(draw, 2, 2, 2, hw, k), {"stride": stride, "padding": pad}, size=8 * hw[0] * hw[1],
                   note=f"stride={stride}, padding={pad}")


def conv_dilation(draw):
    for dil, pad, hw, k in [(2, 0, (7, 7), (3, 3)), ((2, 1), 1, (8, 6), (3, 2)), (3, 2, (9, 9), (2, 2))]:
        yield Case("", conv_inputs(draw, 1, 2, 2, hw, k), {"dilation": dil, "padding": pad}, size=4 * hw[0] * hw[1],
                   note=f"dilation={dil}, padding={pad}")


def conv_bias(draw):
    for hw, k in [((4, 4), (3, 3)), ((5, 6), (2, 2))]:
        yield Case("", conv_inputs(draw, 2, 2, 3, hw, k, bias=True), size=12 * hw[0] * hw[1])


def conv_edges(draw):
    yield Case("", conv_inputs(draw, 2, 3, 4, (4, 5), (1, 1)), size=20, note="a 1x1 kernel (mixes channels only)")
    yield Case("", conv_inputs(draw, 1, 2, 3, (3, 4), (3, 4), bias=True), size=12, note="the kernel covers the whole image")
    yield Case("", conv_inputs(draw, 1, 1, 1, (3, 3), (3, 3)), {"padding": 2}, size=9, note="padding 2 around a 3x3 image")


def conv_grads(draw):
    for kwargs, hw, k in [({}, (5, 5), (3, 3)), ({"stride": 2, "padding": 1}, (6, 7), (3, 3)),
                          ({"padding": (1, 0), "dilation": (1, 2)}, (5, 7), (2, 3))]:
        yield Case("", conv_inputs(draw, 2, 2, 3, hw, k, bias=True, dtype=torch.float64), kwargs, size=hw[0] * hw[1])


def distinct(draw, *shape, dtype=torch.float64, signed=True):
    """Values without ties (so the maximum of every window is unique), shuffled."""
    n = 1
    for s in shape:
        n *= s
    values = torch.randperm(n, generator=draw.gen).to(dtype) + 0.25
    if signed:
        values = values - n                      # all negative: padding with 0 instead of -inf shows
    return values.reshape(shape) / 4


def pool_values(draw):
    for hw, kwargs in [((4, 4), {"kernel_size": 2}), ((6, 5), {"kernel_size": 3, "stride": 1}),
                       ((6, 8), {"kernel_size": (2, 3), "stride": (1, 2)}), ((7, 7), {"kernel_size": 2})]:
        b, c = draw.rng.randint(1, 3), draw.rng.randint(1, 3)
        yield Case("", (distinct(draw, b, c, *hw, dtype=draw.dtype(), signed=False),), kwargs, size=b * c * hw[0] * hw[1],
                   note=", ".join(f"{k}={v}" for k, v in kwargs.items()))


def pool_padding(draw):
    for hw, kwargs in [((5, 5), {"kernel_size": 3, "stride": 2, "padding": 1}),
                       ((4, 6), {"kernel_size": (2, 4), "padding": (1, 2)}),
                       ((6, 6), {"kernel_size": 2, "stride": 1, "padding": 1})]:
        yield Case("", (distinct(draw, 1, 2, *hw, dtype=draw.dtype()),), kwargs, size=2 * hw[0] * hw[1],
                   note="all inputs negative, " + ", ".join(f"{k}={v}" for k, v in kwargs.items()))


def pool_routing(draw):
    for hw, kwargs in [((4, 4), {"kernel_size": 2}), ((5, 5), {"kernel_size": 3, "stride": 1}),
                       ((6, 6), {"kernel_size": 3, "stride": 2, "padding": 1})]:
        yield Case("", (distinct(draw, 2, 2, *hw, signed=False),), kwargs, size=4 * hw[0] * hw[1],
                   note=", ".join(f"{k}={v}" for k, v in kwargs.items()))
    x = (distinct(draw, 1, 2, 4, 6, signed=False) - 2.0).clamp_min(0.0)   # a ReLU's output: zeros tie
    x[..., :2, :2] = 0.0
    yield Case("", (x,), {"kernel_size": 2, "stride": 1}, size=48,
               note="tied maxima (windows of zeros, as after a ReLU): the gradient goes to the first one only")


def pool_edges(draw):
    yield Case("", (distinct(draw, 1, 3, 4, 4, signed=False),), {"kernel_size": 4}, size=48,
               note="one window covers the image")
    yield Case("", (distinct(draw, 2, 1, 5, 7, signed=False),), {"kernel_size": 2}, size=70,
               note="sizes not divisible by the kernel: the last row and column are dropped")


HELD_OUT_DRAW = 150  # digits per draw, out of the grader's reserve of 180


def held_out_digits(draw):
    """A draw of ``minidl.data.grader_digits``, the reserve that ``load_digits`` never returns (so the
    notebook neither trains nor tunes on it); the hidden draw is made with the instructor's secret.
    The labels stay with the grader as the case's answer."""
    from minidl.data import grader_digits

    x, y = grader_digits(flatten=False)
    pick = torch.randperm(len(y), generator=draw.gen)[:HELD_OUT_DRAW]
    yield Case("", (x[pick],), size=HELD_OUT_DRAW, answer=y[pick], note=f"{HELD_OUT_DRAW} held-out digits")


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of images whose largest logit is the true class. logits: [N, 10], labels: [N]."""
    if logits.shape != (len(labels), 10) or not logits.is_floating_point():
        raise ValueError(_("your model should return float logits [{n}, 10] for {n} images [N, 1, 8, 8], but it "
                           "returned {dtype}{shape}").format(n=len(labels), dtype=str(logits.dtype).replace("torch.", ""),
                                                             shape=list(logits.shape)))
    return (logits.argmax(dim=1) == labels).double().mean().item()


CONV_FORBIDDEN = (
    "torch.nn.functional.conv*", "torch.conv*", "torch.nn.Conv*", "torch.nn.LazyConv*", "torch.nn.functional.unfold",
    "torch.nn.Unfold", "torch.nn.functional.fold", "torch.nn.Fold", "torch._convolution", "torch.cudnn_convolution",
    "torch.mkldnn_convolution", "aten::convolution", "aten::_convolution", "aten::conv2d", "aten::im2col",
    "minidl.cnn.Im2col",
)
POOL_FORBIDDEN = (
    "torch.nn.functional.max_pool*", "torch.nn.functional.adaptive_max_pool*", "torch.max_pool*", "torch.nn.MaxPool*",
    "torch.nn.AdaptiveMaxPool*", "torch.nn.functional.unfold", "torch.nn.Unfold", "aten::max_pool2d",
    "aten::max_pool2d_with_indices", "aten::im2col",
)

LESSON = Lesson(
    key="05_cnn",
    title="Convolutional networks",
    builds="the output-size formula, convolution as im2col + matmul, max pooling and its gradient, a trained CNN",
    exercises=(
        Exercise(
            id="cnn.conv_output_size",
            title="The output size of a convolution",
            signature="(size, kernel_size, stride=1, padding=0, dilation=1) -> int",
            builds="floor((n + 2p - d(k - 1) - 1) / s) + 1",
            points=2,
            cpu_only=True,
            groups=(
                Group("sizes", 2, out_size_cases,
                      hint="out = floor((n + 2p - d(k - 1) - 1) / s) + 1: a dilated kernel spans d(k - 1) + 1 inputs; "
                           "use integer division //."),
                Group("drawn", 1, out_size_drawn),
            ),
            hints={"type": "Return a Python int (use // for the floor division, not /)."},
        ),
        Exercise(
            id="cnn.conv2d",
            title="2-D convolution (cross-correlation)",
            signature="(x, weight, bias=None, stride=1, padding=0, dilation=1) -> Tensor",
            builds="F.conv2d with stride, padding and dilation, by im2col and one matmul",
            points=6,
            forbidden=CONV_FORBIDDEN,
            tolerances={torch.float32: (1e-4, 1e-4)},
            groups=(
                Group("kernel orientation", 2, conv_orientation,
                      hint="PyTorch's conv2d is cross-correlation: out[i, j] = sum_{u,v} x[i+u, j+v] * w[u, v]. "
                           "Do not flip the kernel (that would be the textbook convolution)."),
                Group("values", 3, conv_values,
                      hint="out[b, o, i, j] = sum over c, u, v of x[b, c, i+u, j+v] * w[o, c, u, v]: "
                           "sum over the input channels too."),
                Group("padding", 2, conv_padding,
                      hint="padding=(ph, pw) adds ph zero rows above and below and pw zero columns left and right. "
                           "F.pad's list starts from the LAST axis: F.pad(x, (pw, pw, ph, ph)); pad only H and W."),
                Group("stride", 2, conv_stride,
                      hint="With stride s the window moves s positions: out[i, j] reads x_pad[i*sh + u, j*sw + v]."),
                Group("dilation", 1, conv_dilation,
                      hint="With dilation d the kernel taps are d apart: x_pad[i*sh + u*dh, j*sw + v*dw]."),
                Group("bias", 1, conv_bias, hint="Add bias[o] to every position of output channel o: bias.view(1, O, 1, 1)."),
                Group("edge cases", 1, conv_edges),
                Group("gradients", 2, conv_grads, probe=with_grad,
                      hint="Build the result from differentiable torch operations only (no .item(), numpy, "
                           "or writing into a tensor made with torch.zeros without tracking gradients)."),
            ),
            hints={
                "shape": "The output is [B, O, Ho, Wo] with Ho = floor((H + 2ph - dh(kh - 1) - 1) / sh) + 1, "
                         "and the same for Wo.",
                "padding:shape": "The output size is wrong with padding: padding=(ph, pw) pads the height by ph and "
                                 "the width by pw, and F.pad's list starts from the last axis: "
                                 "F.pad(x, (pw, pw, ph, ph)), never (ph, ph, pw, pw).",
                "stride:shape": "The output size is wrong with stride > 1: Ho = floor((H + 2ph - dh(kh - 1) - 1) / sh) + 1 "
                                "(floor division, then + 1), and the same for Wo.",
            },
        ),
        Exercise(
            id="cnn.max_pool2d",
            title="Max pooling",
            signature="(x, kernel_size, stride=None, padding=0) -> Tensor",
            builds="F.max_pool2d and its gradient, which flows to each window's maximum",
            points=4,
            forbidden=POOL_FORBIDDEN,
            groups=(
                Group("values", 3, pool_values,
                      hint="out[b, c, i, j] = max over the window x[b, c, i*sh : i*sh + kh, j*sw : j*sw + kw]; "
                           "stride=None means stride = kernel_size."),
                Group("padding", 2, pool_padding,
                      hint="Pad with -inf, not 0: a padded position must never win the maximum "
                           "(F.pad(x, (pw, pw, ph, ph), value=float('-inf')))."),
                Group("gradient routing", 2, pool_routing, probe=with_grad,
                      hint="The gradient of a max flows only to the element that was the maximum of its window "
                           "(the argmax); every other element of the window gets 0. Do not spread it over the "
                           "whole window (that is average pooling's rule, without the division). Where several "
                           "elements tie for the maximum, F.max_pool2d sends the whole gradient to the first of them "
                           "(row-major in the window), as max(dim) and argmax pick it: amax (which splits it "
                           "between the ties) or a mask x == max (which copies it) do not."),
                Group("edge cases", 1, pool_edges),
            ),
            hints={"shape": "Ho = floor((H + 2ph - kh) / sh) + 1 with sh = kh when stride is None; the same for Wo."},
        ),
        Exercise(
            id="cnn.digits_classifier",
            title="A CNN trained on handwritten digits",
            signature="a trained model: images [N, 1, 8, 8] in [0, 1] -> logits [N, 10]",
            builds="a LeNet-style CNN trained with minidl.train.fit: full points from 96% accuracy on digits the grader keeps",
            points=4,
            cpu_only=True,
            probe=model_output,
            threshold=Threshold("accuracy", accuracy, full=0.96, zero=0.80),
            groups=(
                Group("held-out digits", 1, held_out_digits,
                      hint="Train longer or with a better learning rate, check the training loss goes down and watch the "
                           "accuracy on the held-out split (split.x_test); the grader calls your model in eval mode "
                           "on other digits, scaled to [0, 1] as data.load_digits(flatten=False) gives them."),
            ),
            hints={"raised": "The grader calls digits_classifier(images) with images [N, 1, 8, 8] (float32, in [0, 1], "
                             "on the CPU) and expects logits [N, 10]: run your model on split.x_test to see the error.",
                   "type": "digits_classifier must be the trained network itself (an nn.Module), returning logits."},
        ),
    ),
)
