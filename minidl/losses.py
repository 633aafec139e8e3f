"""Lesson 04: losses. Mean squared error, binary and multi-class cross-entropy, from logits."""

from __future__ import annotations

import torch


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', not {reduction!r}")


def mse_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Squared error (pred - target)^2, element-wise, then reduced. Linear regression's loss."""
    return _reduce((pred - target) ** 2, reduction)


def binary_cross_entropy_with_logits(z: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Logistic regression's loss, from logits z and labels y in {0, 1} (same shape).

        -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))]  =  max(z, 0) - y z + log(1 + exp(-|z|))

    The right-hand side never takes exp of a positive number, so it is finite for any z.
    """
    return _reduce(z.clamp_min(0) - y * z + torch.log1p(torch.exp(-z.abs())), reduction)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy from logits[N, C] and class indices targets[N] (int64); a loss per sample:

        loss_n = -log softmax(z_n)[t_n] = logsumexp(z_n) - z_n[t_n],
        logsumexp(z) = m + log sum_j exp(z_j - m),  m = max_j z_j.

    Subtracting m keeps exp() from overflowing, so logits of magnitude 1e4 give a finite loss.
    Takes raw logits: applying softmax first computes the loss of softmax(softmax(z)).
    reduction: "mean" (over N), "sum" or "none" ([N]).
    """
    m = logits.amax(dim=1, keepdim=True)
    logsumexp = m.squeeze(1) + (logits - m).exp().sum(dim=1).log()
    picked = logits.gather(1, targets.unsqueeze(1)).squeeze(1)   # z_n[t_n]
    return _reduce(logsumexp - picked, reduction)
