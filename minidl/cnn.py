"""Lesson 05: convolutional networks. Convolution as im2col + one matmul, max pooling, LeNet.

Notation: an input x has shape [B, C, H, W] (batch, channels, height, width); a kernel
w has shape [O, C, kh, kw] (output channels, input channels, kernel height and width).
Stride s, padding p and dilation d are ints or (height, width) pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IntPair = int | tuple[int, int]


def pair(v: IntPair) -> tuple[int, int]:
    """3 -> (3, 3); (1, 2) -> (1, 2). Every size below is (height, width)."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """The output length along one axis of a convolution or pooling.

    A dilated kernel spans d(k - 1) + 1 input positions; it fits into the padded length
    n + 2p at the start positions 0, s, 2s, ...:  out = floor((n + 2p - d(k - 1) - 1) / s) + 1.
    """
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def windows(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
            dilation: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """x: [B, C, H, W] (already padded) -> [B, C, Ho, Wo, kh, kw], every window as a view.

    ``Tensor.unfold(dim, span, step)`` cuts one axis into windows of ``span`` positions taken
    every ``step``; a dilated window keeps every d-th of its d(k - 1) + 1 positions.
    """
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    win = x.unfold(2, span_h, sh).unfold(3, span_w, sw)     # [B, C, Ho, Wo, span_h, span_w]
    return win[..., ::dh, ::dw]                              # [B, C, Ho, Wo, kh, kw]


def conv2d_loops(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1) -> torch.Tensor:
    """The definition, one output pixel at a time (slow; for the lesson and the tests only).

    out[b, o, i, j] = bias[o] + sum_{c, u, v} x_pad[b, c, i*sh + u*dh, j*sw + v*dw] * w[o, c, u, v]
    """
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    B, C, H, W = x.shape
    O, _, kh, kw = weight.shape
    Ho, Wo = conv_output_size(H, kh, sh, ph, dh), conv_output_size(W, kw, sw, pw, dw)
    xp = F.pad(x, (pw, pw, ph, ph))
    rows = []
    for i in range(Ho):
        cols = []
        for j in range(Wo):
            patch = xp[:, :, i * sh: i * sh + dh * (kh - 1) + 1: dh, j * sw: j * sw + dw * (kw - 1) + 1: dw]
            cols.append((patch.unsqueeze(1) * weight).sum(dim=(2, 3, 4)))     # [B, O]
        rows.append(torch.stack(cols, dim=-1))                                 # [B, O, Wo]
    out = torch.stack(rows, dim=-2)                                            # [B, O, Ho, Wo]
    return out if bias is None else out + bias.view(1, O, 1, 1)


class Im2col(torch.autograd.Function):
    """cols = im2col(xp) with its adjoint, col2im, written out as the backward pass.

    forward:  xp [C, B, Hp, Wp] -> cols [C, T, B, Ho, Wo], cols[:, t] = xp[:, :, rows_t, columns_t]
              for the T = kh*kw kernel taps, each a (rows, columns) pair of strided slices.
    backward: grad_xp[:, :, rows_t, columns_t] += grad_cols[:, t] for every tap, into one zero tensor.
    Autograd would compute the same through the slices, but with one zero tensor of the padded
    input's full size per tap and a sum over all of them; this is the same algebra, written once.
    """

    @staticmethod
    def forward(ctx, xp: torch.Tensor, taps: list[tuple[slice, slice]]) -> torch.Tensor:
        ctx.shape, ctx.taps = xp.shape, taps
        return torch.stack([xp[:, :, rows, columns] for rows, columns in taps], dim=1)

    @staticmethod
    def backward(ctx, grad_cols: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad_xp = grad_cols.new_zeros(ctx.shape)
        for t, (rows, columns) in enumerate(ctx.taps):
            grad_xp[:, :, rows, columns] += grad_cols[:, t]
        return grad_xp, None


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1) -> torch.Tensor:
    """x: [B, C, H, W], weight: [O, C, kh, kw], bias: [O] or None -> [B, O, Ho, Wo], as F.conv2d.

    Cross-correlation (the kernel is not flipped), by im2col and one matmul:
      cols[(c, u, v), (b, i, j)] = x_pad[b, c, i*sh + u*dh, j*sw + v*dw]          [C*kh*kw, B*Ho*Wo]
      out[(b, i, j), o] = sum_{(c, u, v)} cols[(c, u, v), (b, i, j)] * w[o, (c, u, v)] + bias[o]
    with Ho = conv_output_size(H, kh, sh, ph, dh) and the same for Wo. The rows of ``cols`` for
    one kernel tap (u, v) are a single strided slice of the padded batch (shifted by (u*dh, v*dw),
    every sh-th row and sw-th column), so the loop runs over the kh*kw taps, never over output
    positions. Putting the batch into the matmul makes the forward pass one large matrix product
    (and the backward pass two); ``Im2col`` adds each tap's gradient back in place. The product is taken as
    cols^T @ w^T, [B*Ho*Wo, O], which the CPU's BLAS runs faster than w @ cols for this shape.
    """
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    O, C, kh, kw = weight.shape
    B, _, H, W = x.shape
    Ho, Wo = conv_output_size(H, kh, sh, ph, dh), conv_output_size(W, kw, sw, pw, dw)
    xp = F.pad(x, (pw, pw, ph, ph)).transpose(0, 1)               # [C, B, H + 2ph, W + 2pw]; pads W first
    taps = [(slice(u * dh, u * dh + (Ho - 1) * sh + 1, sh), slice(v * dw, v * dw + (Wo - 1) * sw + 1, sw))
            for u in range(kh) for v in range(kw)]                # kh*kw (rows, columns) slices
    cols = Im2col.apply(xp, taps).reshape(C * kh * kw, B * Ho * Wo)
    w = weight.reshape(O, C * kh * kw)
    out = cols.t() @ w.t() if bias is None else torch.addmm(bias, cols.t(), w.t())   # the one matmul
    return out.view(B, Ho, Wo, O).permute(0, 3, 1, 2).contiguous()  # [B*Ho*Wo, O] -> [B, O, Ho, Wo]


def max_pool2d(x: torch.Tensor, kernel_size: IntPair, stride: IntPair | None = None,
               padding: IntPair = 0) -> torch.Tensor:
    """x: [B, C, H, W] -> [B, C, Ho, Wo], the maximum of every window, as F.max_pool2d.

    out[b, c, i, j] = max_{u, v} x_pad[b, c, i*sh + u, j*sw + v], padding with -inf, and the
    stride defaults to the kernel size. Its gradient flows only to the argmax of each window:
    d out[b, c, i, j] / d x[...] is 1 at the window's maximum and 0 everywhere else.
    """
    kernel = pair(kernel_size)
    step = kernel if stride is None else pair(stride)
    ph, pw = pair(padding)
    xp = F.pad(x, (pw, pw, ph, ph), value=float("-inf"))
    win = windows(xp, kernel, step)                               # [B, C, Ho, Wo, kh, kw]
    return win.flatten(-2).max(dim=-1).values                     # max(dim) routes to one index


def receptive_field(layers: list[tuple[int, int]]) -> int:
    """Receptive field of stacked layers given as (kernel_size, stride), first layer first.

    r = 1 + sum_l (k_l - 1) * prod_{m < l} s_m: each layer widens the field by (k - 1) steps
    of the input positions its own inputs are apart.
    """
    field, jump = 1, 1
    for k, s in layers:
        field += (k - 1) * jump
        jump *= s
    return field


def conv_params(in_channels: int, out_channels: int, kernel_size: IntPair, bias: bool = True) -> int:
    """Parameters of a Conv2d layer: O * C * kh * kw weights plus O biases."""
    kh, kw = pair(kernel_size)
    return out_channels * in_channels * kh * kw + (out_channels if bias else 0)


class LeNet(nn.Module):
    """A LeNet-style network for small grey images ([B, 1, 8, 8] digits or [B, 1, 28, 28]).

    conv(3x3) -> BN -> ReLU -> maxpool(2) -> conv(3x3) -> BN -> ReLU -> maxpool(2) -> linear head.
    The head's input size is computed with ``conv_output_size``, never hard-coded.
    """

    def __init__(self, image_size: int = 8, channels: tuple[int, int] = (16, 32), classes: int = 10,
                 dropout: float = 0.1):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = conv_output_size(conv_output_size(image_size, 2, 2), 2, 2)   # two 2x2 pools
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c2 * side * side, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
