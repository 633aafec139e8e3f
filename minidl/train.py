"""Lesson 04: the training loop. One epoch, evaluation, metrics, and ``fit`` (with lesson 08's checkpoints).

``fit`` is the loop every later lesson uses: it runs on CPU, CUDA (autocast when asked) and MPS,
shows a tqdm progress bar, returns a history for plotting, and saves/resumes checkpoints.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from .scale import load_checkpoint, save_checkpoint  # noqa: F401 (lesson 04 uses them as minidl.train's)


def train_one_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer,
                    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], device: torch.device | str,
                    *, amp: bool = False, scaler: torch.amp.GradScaler | None = None) -> float:
    """One pass over ``loader``; returns the mean loss per sample,  sum_b n_b loss_b / sum_b n_b.

    Train mode (dropout and batch norm behave as in training); batches moved to ``device``
    without blocking; gradients zeroed before each backward, or they would add up over steps.
    ``amp`` runs the forward pass under float16 autocast on CUDA, with ``scaler`` scaling the loss.
    """
    model.train()
    use_amp = amp and torch.device(device).type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
    losses, sizes = [], []
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad()
        with autocast:
            loss = loss_fn(model(x), y)
        if scaler is not None and use_amp:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        losses.append(loss.detach())                # kept as tensors: no GPU sync per batch
        sizes.append(len(y))
    if not losses:
        return 0.0
    return float(torch.stack(losses).double().cpu() @ torch.tensor(sizes, dtype=torch.float64)) / sum(sizes)


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted classes, true labels) over the whole loader, on the CPU; eval mode, no graph."""
    model.eval()
    preds, labels = [], []
    for x, y in loader:
        preds.append(model(x.to(device, non_blocking=True)).argmax(dim=1).cpu())
        labels.append(y)
    return torch.cat(preds), torch.cat(labels)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device | str) -> float:
    """Accuracy in [0, 1]: correct predictions / samples, in eval mode and without building a graph."""
    model.eval()
    correct, count = 0, 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        correct += (model(x).argmax(dim=1) == y).sum()
        count += len(y)
    return float(correct) / max(count, 1)


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """M[i, j] = number of samples of true class i predicted as class j."""
    return torch.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(num_classes, num_classes)


def precision_recall_f1(confusion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per class k: precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 P R / (P + R) (0 where undefined)."""
    tp = confusion.diag().double()
    precision = tp / confusion.sum(dim=0).double().clamp_min(1)
    recall = tp / confusion.sum(dim=1).double().clamp_min(1)
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    return precision, recall, f1


def fit(model: nn.Module, train_loader: Iterable, optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], epochs: int, device: torch.device | str,
        val_loader: Iterable | None = None, scheduler=None, amp: bool = False,
        checkpoint: str | os.PathLike | None = None, progress: bool = True) -> dict[str, list[float]]:
    """Train for ``epochs`` epochs; returns the history {"train_loss", "val_acc", "lr", "seconds"}, one entry per epoch.

    ``scheduler`` (a torch.optim.lr_scheduler) steps once per epoch. ``amp``: float16 autocast with a
    gradient scaler on CUDA (ignored elsewhere). ``checkpoint``: a file written after every
    epoch (``minidl.scale.save_checkpoint``: model, optimizer, scheduler, scaler, every RNG state,
    the train loader's own generator, epoch and history); if it exists when fit starts, training
    resumes from it (``epochs`` is the total), exactly where an uninterrupted run would be.
    ``progress=False`` prints nothing.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    model.to(device)
    history: dict[str, list[float]] = {"train_loss": [], "val_acc": [], "lr": [], "seconds": []}
    start = 0
    scaler = torch.amp.GradScaler("cuda") if amp and device.type == "cuda" else None
    shuffler = getattr(train_loader, "generator", None)    # a loader seeded with its own generator shuffles with it
    if checkpoint is not None and Path(checkpoint).exists():
        extra = load_checkpoint(checkpoint, model, optimizer, scheduler, scaler, map_location=device)
        start, history = extra["epoch"], extra["history"]
        if shuffler is not None and extra.get("loader_rng") is not None:
            shuffler.set_state(extra["loader_rng"])
    bar = tqdm(range(start, epochs), initial=start, total=epochs, desc="epochs", disable=not progress)
    for epoch in bar:
        began = time.perf_counter()
        history["lr"].append(optimizer.param_groups[0]["lr"])
        history["train_loss"].append(train_one_epoch(model, train_loader, optimizer, loss_fn, device,
                                                     amp=amp, scaler=scaler))
        if val_loader is not None:
            history["val_acc"].append(evaluate(model, val_loader, device))
        if scheduler is not None:
            scheduler.step()
        history["seconds"].append(time.perf_counter() - began)
        bar.set_postfix({k: f"{v[-1]:.4f}" for k, v in history.items() if k in ("train_loss", "val_acc") and v})
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, scheduler, scaler, epoch=epoch + 1, history=history,
                            loader_rng=shuffler.get_state() if shuffler is not None else None)
    return history


def plot_history(history: dict[str, list[float]], ax=None):
    """Loss (left axis) and validation accuracy (right axis) per epoch."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    epochs = range(1, len(history["train_loss"]) + 1)
    ax.plot(epochs, history["train_loss"], "C0-o", ms=3, label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss", color="C0")
    if history.get("val_acc"):
        right = ax.twinx()
        right.plot(epochs, history["val_acc"], "C1-s", ms=3, label="validation accuracy")
        right.set_ylabel("accuracy", color="C1")
    return ax
