"""Lesson 08: one training script that runs in one process, or in W processes with torchrun.

    python -m minidl.ddp_train --out single.pt                       # one process
    torchrun --nproc_per_node=2 -m minidl.ddp_train --out ddp.pt     # 2 processes (gloo on the CPU, NCCL on GPUs)

It trains lesson 07's GPT (dropout off) on windows of Shakespeare. Each step takes a global batch
of B windows in the order of ``shard_indices`` (= DistributedSampler): with W processes, rank r
computes the mean loss on its B / W windows and DistributedDataParallel averages the gradients
during backward, so every rank takes the step of the mean over all B windows, the same step as
one process computing it on the whole batch. Rank 0 writes the final parameters and the losses.
``--allreduce minidl`` averages with ``minidl.scale.average_gradients`` after backward instead of DDP.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

from minidl.data import shakespeare
from minidl.scale import average_gradients, shard_indices
from minidl.text import CharVocab, char_windows
from minidl.transformer import GPT, GPTConfig


def data(chars: int = 20_000, block_size: int = 32) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(inputs, targets) [M, block_size] from the start of the plays, and the vocabulary size."""
    text = shakespeare(["the-comedy-of-errors"], max_chars=chars)
    vocab = CharVocab([text])
    x, y = char_windows(vocab.encode(text), block_size)
    return x, y, len(vocab)


def train(steps: int, batch_size: int, rank: int, world_size: int, allreduce: str = "ddp", seed: int = 0,
          lr: float = 3e-3, dtype: torch.dtype = torch.float32) -> tuple[torch.nn.Module, list[float]]:
    """``steps`` AdamW steps on global batches of ``batch_size`` windows; returns (model, mean loss per step)."""
    x, y, vocab_size = data()
    torch.manual_seed(seed)                                   # the same initial model on every rank
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=x.shape[1], n_layer=2, n_head=2, d_model=32,
                          dropout=0.0)).to(dtype)
    net = torch.nn.parallel.DistributedDataParallel(model) if world_size > 1 and allreduce == "ddp" else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    per_rank = batch_size // world_size
    losses, epoch, order = [], 0, []
    for _ in range(steps):
        if len(order) < per_rank:                             # a new epoch: a new order, split across ranks
            order = shard_indices(len(x), rank, world_size, shuffle=True, seed=seed, epoch=epoch, drop_last=True)
            epoch += 1
        batch, order = order[:per_rank], order[per_rank:]
        optimizer.zero_grad()
        loss = F.cross_entropy(net(x[batch]).flatten(0, 1), y[batch].flatten())
        loss.backward()                                       # DDP: the all-reduce overlaps with this
        if world_size > 1 and allreduce == "minidl":
            average_gradients(model)
        optimizer.step()
        mean = loss.detach().clone()
        if world_size > 1:
            dist.all_reduce(mean)
            mean /= world_size
        losses.append(mean.item())
    return model, losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16, help="the global batch, split across the processes")
    parser.add_argument("--allreduce", choices=["ddp", "minidl"], default="ddp")
    parser.add_argument("--float64", action="store_true", help="train in float64 (to compare runs to 1e-12)")
    parser.add_argument("--out", required=True, help="where rank 0 saves {'state': ..., 'losses': ..., 'seconds': ...}")
    args = parser.parse_args(argv)
    world_size = int(os.environ.get("WORLD_SIZE", 1))        # torchrun sets WORLD_SIZE, RANK, MASTER_ADDR, ...
    rank = int(os.environ.get("RANK", 0))
    if world_size > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if args.batch_size % world_size:
        raise SystemExit(f"--batch-size {args.batch_size} does not split into {world_size} equal parts")
    began = time.perf_counter()
    model, losses = train(args.steps, args.batch_size, rank, world_size, args.allreduce,
                          dtype=torch.float64 if args.float64 else torch.float32)
    seconds = time.perf_counter() - began
    if rank == 0:
        torch.save({"state": model.state_dict(), "losses": losses, "world_size": world_size, "seconds": seconds},
                   args.out)
        print(f"rank 0 of {world_size}: {args.steps} steps in {seconds:.1f} s, loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    if world_size > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
