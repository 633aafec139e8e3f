"""Lesson 05's catalogue: correct loop-based answers pass, each classic mistake fails with its symptom named."""

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


def test_conv2d_forbidden_builtin():
    assert check("cnn.conv2d", lambda x, w, b=None, **k: F.conv2d(x, w, b, **k)).status == "forbidden"


def test_max_pool2d_loops_pass():
    result = check("cnn.max_pool2d", pool_loops)
    assert result.passed and result.score == result.max_score, result


def test_max_pool2d_spread_gradient():
    result = check("cnn.max_pool2d", lambda *a, **k: pool_loops(*a, spread=True, **k))
    assert not result.passed and result.failures[0].group == "gradient routing"
    assert named(result, "gradient", "maximum", "argmax")


def test_max_pool2d_zero_padding():
    def zero_padded(x, kernel_size, stride=None, padding=0):
        p = _pair(padding)
        return pool_loops(F.pad(x, (p[1], p[1], p[0], p[0])), kernel_size, stride)

    result = check("cnn.max_pool2d", zero_padded)
    assert not result.passed and result.failures[0].group == "padding" and named(result, "-inf")


def test_max_pool2d_forbidden():
    assert check("cnn.max_pool2d", lambda x, kernel_size, stride=None, padding=0: F.max_pool2d(x, kernel_size, stride, padding)).status == "forbidden"
