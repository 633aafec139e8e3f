"""Lesson 08: training at scale. Gradient accumulation, dynamic loss scaling, the data split
of distributed training, the gradient all-reduce, int8 quantization and exact checkpoints.

Notation: k micro-batches of sizes n_1..n_k, N = sum n_i; W processes (ranks) r = 0..W-1;
s the loss scale; an affine int8 code q stands for the real value (q - z) * scale.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

# -- gradient accumulation ---------------------------------------------------------------------------


def accumulated_step(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                     optimizer: torch.optim.Optimizer, micro_batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
                     ) -> torch.Tensor:
    """One optimizer step over micro-batches (x_i [n_i, ...], y_i [n_i, ...]); returns the mean loss, 0-d.

    ``loss_fn`` averages over its batch, so the loss on the union is L = sum_i (n_i / N) L_i and its
    gradient is sum_i (n_i / N) grad L_i: each micro-batch's backward adds its share to .grad.
    Gradients are zeroed once before the loop and the optimizer steps once after it.
    """
    micro_batches = list(micro_batches)
    N = sum(len(y) for _, y in micro_batches)
    optimizer.zero_grad()
    total = 0.0
    for x, y in micro_batches:
        loss = loss_fn(model(x), y) * (len(y) / N)
        loss.backward()                                  # adds to .grad; the graph of x_i is freed
        total = total + loss.detach()
    optimizer.step()
    return total


# -- dynamic loss scaling ----------------------------------------------------------------------------


class LossScaler:
    """Dynamic loss scaling, as torch.amp.GradScaler does it.

    float16 gradients below 6e-8 flush to zero, so the loss is multiplied by s before backward
    (every gradient is then s times too large) and the gradients are divided by s before the
    step. If any gradient is inf or NaN, s was too large: the step is skipped and s *= backoff.
    After ``growth_interval`` steps in a row without inf/NaN, s *= growth (if s stays finite).
    s is kept in float32, as GradScaler keeps it.
    """

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000):
        self._scale = torch.tensor(init_scale, dtype=torch.float32)
        self.growth_factor, self.backoff_factor, self.growth_interval = growth_factor, backoff_factor, growth_interval
        self._growth_tracker = 0                 # good steps in a row
        self._found_inf: dict[int, bool] = {}    # per optimizer, since the last update(): unscaled, inf found?

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """loss * s (same dtype and device as loss)."""
        return loss * self._scale.to(loss.device)

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide every gradient of ``optimizer`` by s in place (once per step), noting any inf/NaN."""
        if id(optimizer) in self._found_inf:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        inv_scale = self._scale.double().reciprocal().float()
        found_inf = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                found_inf |= not bool(torch.isfinite(p.grad).all())
                p.grad.mul_(inv_scale.to(p.grad.device))
        self._found_inf[id(optimizer)] = found_inf

    def step(self, optimizer: torch.optim.Optimizer) -> Any:
        """optimizer.step() on unscaled gradients, skipped (returns None) if any was inf/NaN."""
        if id(optimizer) not in self._found_inf:
            self.unscale_(optimizer)
        if self._found_inf[id(optimizer)]:
            return None
        return optimizer.step()

    def update(self) -> None:
        """Back off after an inf/NaN, grow after ``growth_interval`` good steps; start a new step."""
        if any(self._found_inf.values()):
            self._scale = self._times(self.backoff_factor)
            self._growth_tracker = 0
        elif self._found_inf:                    # a step was taken (update() without a step changes nothing)
            self._growth_tracker += 1
            if self._growth_tracker == self.growth_interval:
                grown = self._times(self.growth_factor)
                if torch.isfinite(grown):        # at float32's largest power of two, s stays
                    self._scale = grown
                self._growth_tracker = 0
        self._found_inf = {}

    def _times(self, factor: float) -> torch.Tensor:
        """s * factor, multiplied in float64 and rounded to float32 (as GradScaler's kernel does)."""
        return torch.tensor(self.get_scale() * factor, dtype=torch.float32)

    def get_scale(self) -> float:
        return float(self._scale)

    def state_dict(self) -> dict:
        """The keys of GradScaler's state_dict, so checkpoints can hold either."""
        return {"scale": self.get_scale(), "growth_factor": self.growth_factor, "backoff_factor": self.backoff_factor,
                "growth_interval": self.growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state: dict) -> None:
        self._scale = torch.tensor(state["scale"], dtype=torch.float32)
        self.growth_factor, self.backoff_factor = state["growth_factor"], state["backoff_factor"]
        self.growth_interval, self._growth_tracker = state["growth_interval"], state["_growth_tracker"]


# -- data parallelism --------------------------------------------------------------------------------


def shard_indices(n: int, rank: int, world_size: int, shuffle: bool = True, seed: int = 0, epoch: int = 0,
                  drop_last: bool = False) -> list[int]:
    """The indices of n samples that rank ``rank`` of ``world_size`` reads in ``epoch``, as DistributedSampler.

    Every rank draws the same permutation (seeded with seed + epoch, so a new order each epoch),
    which is padded by repeating its start to a multiple of W (or cut to one, with drop_last);
    rank r takes positions r, r + W, r + 2W, ...: disjoint shards of equal length.
    """
    if shuffle:
        g = torch.Generator().manual_seed(seed + epoch)
        indices = torch.randperm(n, generator=g).tolist()
    else:
        indices = list(range(n))
    if drop_last and n % world_size != 0:
        per_rank = math.ceil((n - world_size) / world_size)
    else:
        per_rank = math.ceil(n / world_size)
    total = per_rank * world_size
    if drop_last:
        indices = indices[:total]
    else:
        padding = total - len(indices)
        indices += (indices * math.ceil(padding / len(indices)))[:padding] if padding else []
    return indices[rank:total:world_size]


def average_gradients(model: nn.Module) -> None:
    """In a process group of W ranks: every gradient becomes the mean over ranks, (1/W) sum_r grad_r,
    in place, as DistributedDataParallel's all-reduce does during backward. Parameters are untouched."""
    world_size = dist.get_world_size()
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world_size


# -- int8 quantization -------------------------------------------------------------------------------


def choose_qparams(x: torch.Tensor, quant_min: int = -128, quant_max: int = 127) -> tuple[float, int]:
    """(scale, zero_point) that map [min(x, 0), max(x, 0)] onto the codes [quant_min, quant_max],
    as torch.ao.quantization.MinMaxObserver (affine, per tensor), in float32:

      scale = max((max+ - min-) / (quant_max - quant_min), eps),  z = clamp(quant_min - round(min- / scale)).
    The range always holds 0, so 0.0 has an exact code z (zero padding stays exact).
    """
    x = x.detach().float()
    lo, hi = torch.clamp(x.min(), max=0.0), torch.clamp(x.max(), min=0.0)
    scale = torch.clamp((hi - lo) / float(quant_max - quant_min), min=torch.finfo(torch.float32).eps)
    zero_point = quant_min - torch.round(lo / scale).int()
    return float(scale), int(torch.clamp(zero_point, quant_min, quant_max))


def quantize_per_tensor(x: torch.Tensor, scale: float, zero_point: int, quant_min: int = -128,
                        quant_max: int = 127) -> torch.Tensor:
    """int8 codes of x, same shape: q = clamp(round(x / scale) + z, quant_min, quant_max), rounding half
    to even (2.5 -> 2, 3.5 -> 4), as torch.quantize_per_tensor(x, scale, z, torch.qint8).int_repr()."""
    inv_scale = torch.tensor(1.0 / scale, dtype=torch.float32)
    q = torch.round(x.float() * inv_scale) + zero_point
    return q.clamp(quant_min, quant_max).to(torch.int8)


def dequantize(q: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """float32, same shape: (q - z) * scale, the real value each code stands for."""
    return (q.float() - zero_point) * scale


# -- checkpoints -------------------------------------------------------------------------------------


def rng_states() -> dict:
    """Every random generator a training run draws from: PyTorch's (CPU and each CUDA device), Python's, NumPy's."""
    import numpy as np

    kind, key, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "python": random.getstate(),
            "numpy": (kind, torch.from_numpy(key.astype("int64")), pos, has_gauss, gauss)}


def set_rng_states(rng: dict) -> None:
    import numpy as np

    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    random.setstate(rng["python"])
    kind, key, pos, has_gauss, gauss = rng["numpy"]
    key = key.tolist() if isinstance(key, torch.Tensor) else key
    np.random.set_state((kind, np.array(key, dtype=np.uint32), pos, has_gauss, gauss))


def scaled_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, scaler,
                 jitter: float = 0.0) -> list[float]:
    """One epoch of cross-entropy training through a loss ``scaler``; the loss of each batch.
    ``jitter`` > 0 adds input noise drawn from NumPy's and Python's generators, as augmentation
    code often does: an exact resume must restore those generators too (see ``rng_states``)."""
    import numpy as np
    import torch.nn.functional as F

    losses = []
    for x, y in loader:
        if jitter:
            x = x + jitter * torch.from_numpy(np.random.randn(*x.shape).astype("float32")) * random.random()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    return losses


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler=None,
                    scaler=None, **extra: Any) -> None:
    """One torch.save'd dict: model, optimizer, scheduler and scaler state dicts (None when absent),
    every RNG state, and ``extra`` (epoch, step, history, ...). Written to a temporary file and
    renamed, so a crash never leaves half a checkpoint."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict() if scheduler is not None else None,
             "scaler": scaler.state_dict() if scaler is not None else None,
             "rng": rng_states(), "extra": extra}
    tmp = Path(f"{path}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler=None, scaler=None, map_location: torch.device | str = "cpu") -> dict:
    """Restore what ``save_checkpoint`` wrote into the objects given (and every RNG); returns ``extra``.
    Loaded with weights_only=True: a checkpoint holds data, never code."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    rng = state["rng"]
    set_rng_states({**rng, "torch": rng["torch"].cpu(), "cuda": rng["cuda"] and [s.cpu() for s in rng["cuda"]]})
    return state["extra"]
