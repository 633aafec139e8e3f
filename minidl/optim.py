"""Lessons 04 and 07: optimizers. SGD with momentum, Nesterov and weight decay; Adam with bias
correction; AdamW (Adam with decoupled weight decay) and a warm-up + cosine learning-rate schedule.

Both subclass ``torch.optim.Optimizer`` only for its bookkeeping (``param_groups``, ``state``,
``zero_grad``, ``state_dict``), so that PyTorch's learning-rate schedulers work with them; the
update rules are written out in ``step``, in the notation of torch.optim's documentation
(g_t gradient, theta parameters, lambda weight decay, mu momentum, gamma learning rate).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class SGD(torch.optim.Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD`` (dampening 0). Per parameter, each step:

        g_t = grad + lambda theta                     (weight decay: the gradient of lambda/2 ||theta||^2)
        b_t = g_t if t = 1 else mu b_{t-1} + g_t      (momentum buffer; weight decay is already inside)
        g_t = g_t + mu b_t  if nesterov  else  b_t    (when mu > 0)
        theta_t = theta_{t-1} - gamma g_t
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum requires a momentum > 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov))

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if wd:
                    g = g.add(p, alpha=wd)                    # g + lambda theta
                if mu:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.clone()
                    else:
                        state["momentum_buffer"].mul_(mu).add_(g)
                    buf = state["momentum_buffer"]
                    g = g.add(buf, alpha=mu) if group["nesterov"] else buf
                p.add_(g, alpha=-lr)


class Adam(torch.optim.Optimizer):
    """Adam, as ``torch.optim.Adam`` (L2 weight decay added to the gradient). Per parameter, step t:

        g_t = grad + lambda theta
        m_t = beta1 m_{t-1} + (1 - beta1) g_t            (first moment, m_0 = 0)
        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2          (second moment, v_0 = 0)
        m^_t = m_t / (1 - beta1^t),  v^_t = v_t / (1 - beta2^t)   (bias correction: m_0 = v_0 = 0
                                                                   pull early averages towards 0)
        theta_t = theta_{t-1} - gamma m^_t / (sqrt(v^_t) + eps)
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = self.decay(p, lr, wd)
                state = self.state[p]
                if not state:
                    state.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                state["t"] += 1
                t, m, v = state["t"], state["m"], state["v"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)                    # m_t
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)             # v_t
                denominator = (v / (1 - beta2**t)).sqrt_().add_(eps)      # sqrt(v^_t) + eps
                p.addcdiv_(m, denominator, value=-lr / (1 - beta1**t))    # - gamma m^_t / (...)

    @staticmethod
    def decay(p: torch.Tensor, lr: float, wd: float) -> torch.Tensor:
        """Adam's weight decay is L2: lambda theta joins the gradient (and is scaled by 1 / sqrt(v^))."""
        return p.grad.add(p, alpha=wd) if wd else p.grad


class AdamW(Adam):
    """AdamW, as ``torch.optim.AdamW``: Adam whose weight decay is decoupled from the gradient.

        theta_{t-1} <- theta_{t-1} (1 - gamma lambda)       (shrink the weights, whatever the gradient)
        then Adam's step with g_t = grad                     (no lambda theta in the moments)
    With L2 inside Adam, a weight with large gradients (large v^) is barely decayed; AdamW decays
    every weight at the same rate gamma lambda.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)

    @staticmethod
    def decay(p: torch.Tensor, lr: float, wd: float) -> torch.Tensor:
        p.mul_(1 - lr * wd)
        return p.grad


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, start_factor: float = 1 / 3,
                  min_factor: float = 0.0) -> float:
    """The learning-rate factor at ``step`` (lr = factor * base lr):

        step < w:       start_factor + (1 - start_factor) step / w            (linear warm-up)
        w <= step:      m + (1 - m) (1 + cos(pi (step - w) / (n - w))) / 2     (cosine decay to m)
    with w = warmup_steps, n = total_steps, m = min_factor; after n steps the cosine turns up again,
    as CosineAnnealingLR's does. Equals LinearLR(start_factor, total_iters=w) then
    CosineAnnealingLR(T_max=n - w, eta_min=m * base lr) in a SequentialLR with milestone w.
    """
    if step < warmup_steps:
        return start_factor + (1 - start_factor) * step / warmup_steps
    return min_factor + (1 - min_factor) * (1 + math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps))) / 2


class WarmupCosine(torch.optim.lr_scheduler.LambdaLR):
    """The scheduler of ``warmup_cosine``: call ``step()`` after each optimizer step."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                 start_factor: float = 1 / 3, min_factor: float = 0.0):
        if not 0 < warmup_steps < total_steps:
            raise ValueError(f"need 0 < warmup_steps < total_steps, got {warmup_steps} and {total_steps}")
        super().__init__(optimizer, lambda step: warmup_cosine(step, warmup_steps, total_steps, start_factor, min_factor))
