"""Lesson 08: one training script that runs in one process, or in W processes with torchrun.

    python -m minidl.ddp_train --out single.pt                         # one process (a GPU if there is one)
    torchrun --nproc_per_node=2 -m minidl.ddp_train --device cpu --out ddp.pt   # 2 CPU processes, gloo
    torchrun --nproc_per_node=NUM_GPUS -m minidl.ddp_train --out ddp.pt        # one process per GPU, NCCL

It trains lesson 07's GPT (dropout off) on windows of Shakespeare. It is the template of every
DDP script:

1. torchrun starts the processes and gives each ``RANK`` (0..W-1 over all machines),
   ``WORLD_SIZE`` (W), ``LOCAL_RANK`` (0..L-1 on this machine), ``LOCAL_WORLD_SIZE`` (L),
   ``MASTER_ADDR`` and ``MASTER_PORT`` (``launch_from_env``);
2. one process per GPU: process ``LOCAL_RANK`` uses ``cuda:LOCAL_RANK``
   (``torch.cuda.set_device``), with the NCCL back end; on the CPU, gloo (``choose_device``);
3. the model and every batch live on that device, and the model is wrapped in
   ``DistributedDataParallel(model, device_ids=[local_rank])`` (no ``device_ids`` on the CPU);
4. ``DistributedSampler`` gives each rank its share of the data, and ``sampler.set_epoch(epoch)``
   makes a new shared order each epoch.

Each step takes a global batch of B windows: rank r computes the mean loss on its B / W windows
and DDP averages the gradients during backward, so every rank takes the step of the mean over
all B windows, the same step as one process computing it on the whole batch. Rank 0 writes the
final parameters (on the CPU) and the losses. ``--allreduce minidl`` averages with
``minidl.scale.average_gradients`` after backward instead of DDP.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from minidl.data import shakespeare
from minidl.scale import average_gradients
from minidl.text import CharVocab, char_windows
from minidl.transformer import GPT, GPTConfig


@dataclass(frozen=True)
class Launch:
    """Where this process sits among the W processes torchrun started (1 process when run alone)."""

    rank: int = 0              # RANK: 0..W-1 over all machines; rank 0 writes the results
    world_size: int = 1        # WORLD_SIZE: W
    local_rank: int = 0        # LOCAL_RANK: 0..L-1 on this machine, the GPU this process uses
    local_world_size: int = 1  # LOCAL_WORLD_SIZE: L, the processes on this machine
    torchrun: bool = False     # started by torchrun: form a process group, even of one process


def launch_from_env(environ: dict[str, str] | None = None) -> Launch:
    """The ``Launch`` torchrun describes in the environment variables; defaults for a plain ``python`` run."""
    env = os.environ if environ is None else environ
    return Launch(rank=int(env.get("RANK", 0)), world_size=int(env.get("WORLD_SIZE", 1)),
                  local_rank=int(env.get("LOCAL_RANK", 0)), local_world_size=int(env.get("LOCAL_WORLD_SIZE", 1)),
                  torchrun="LOCAL_RANK" in env)


def choose_device(launch: Launch, want: str = "auto") -> torch.device:
    """``cuda:LOCAL_RANK`` (one process per GPU) or ``cpu``. ``want`` "auto" takes the GPU when CUDA is
    there; SystemExit when this machine has fewer GPUs than processes (two NCCL ranks cannot share one)."""
    if want == "cpu" or (want == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if launch.local_world_size > gpus:
        raise SystemExit(f"one process per GPU: {launch.local_world_size} processes on this machine but {gpus} "
                         f"GPU(s); start --nproc_per_node={gpus} or pass --device cpu")
    return torch.device("cuda", launch.local_rank)


def backend_for(device: torch.device) -> str:
    """The collective back end for ``device``: NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def data(chars: int = 20_000, block_size: int = 32) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(inputs, targets) [M, block_size] from the start of the plays, and the vocabulary size."""
    text = shakespeare(["the-comedy-of-errors"], max_chars=chars)
    vocab = CharVocab([text])
    x, y = char_windows(vocab.encode(text), block_size)
    return x, y, len(vocab)


def train(steps: int, batch_size: int, rank: int, world_size: int, allreduce: str = "ddp", seed: int = 0,
          lr: float = 3e-3, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
          ) -> tuple[torch.nn.Module, list[float]]:
    """``steps`` AdamW steps on global batches of ``batch_size`` windows, this rank's
    ``batch_size // world_size`` of them on ``device``; returns (model, mean loss over ranks per step).
    Inside a process group (torchrun) the gradients are averaged over its ranks; alone, nothing is."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:       # "cuda": the current GPU, by its number
        device = torch.device("cuda", torch.cuda.current_device())
    x, y, vocab_size = data()
    torch.manual_seed(seed)                                   # the same initial model on every rank
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=x.shape[1], n_layer=2, n_head=2, d_model=32,
                          dropout=0.0)).to(device, dtype)
    grouped = dist.is_initialized()
    ddp = grouped and allreduce == "ddp"
    net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if ddp else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    dataset = TensorDataset(x, y)
    # The same permutation on every rank (seed + epoch), cut to a multiple of W; rank r reads every W-th.
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=batch_size // world_size, sampler=sampler, drop_last=True,
                        pin_memory=device.type == "cuda")
    losses: list[float] = []
    epoch = 0
    while len(losses) < steps:
        sampler.set_epoch(epoch)                              # without it, every epoch repeats epoch 0's order
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            optimizer.zero_grad()
            loss = F.cross_entropy(net(xb).flatten(0, 1), yb.flatten())
            loss.backward()                                   # DDP: the all-reduce overlaps with this
            if grouped and allreduce == "minidl":
                average_gradients(model)
            optimizer.step()
            losses.append(mean_over_ranks(loss.detach(), grouped))
            if len(losses) == steps:
                break
        epoch += 1
    return model, losses


def mean_over_ranks(value: torch.Tensor, grouped: bool) -> float:
    """The mean of a 0-d tensor over the group's ranks (all-reduced on its own device: a GPU's under
    NCCL); the value itself outside a group."""
    if not grouped:
        return value.item()
    total = value.clone()
    dist.all_reduce(total)
    return (total / dist.get_world_size()).item()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16, help="the global batch, split across the processes")
    parser.add_argument("--allreduce", choices=["ddp", "minidl"], default="ddp")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: cuda:LOCAL_RANK when CUDA is there, else the CPU")
    parser.add_argument("--float64", action="store_true", help="train in float64 (to compare runs to 1e-12)")
    parser.add_argument("--out", required=True, help="where rank 0 saves {'state': ..., 'losses': ..., 'seconds': ...}")
    args = parser.parse_args(argv)
    launch = launch_from_env()
    if args.batch_size % launch.world_size:
        raise SystemExit(f"--batch-size {args.batch_size} does not split into {launch.world_size} equal parts")
    device = choose_device(launch, args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)                         # before the group: NCCL binds this process to its GPU
    if launch.torchrun:
        dist.init_process_group(backend_for(device))          # reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
    began = time.perf_counter()
    model, losses = train(args.steps, args.batch_size, launch.rank, launch.world_size, args.allreduce,
                          dtype=torch.float64 if args.float64 else torch.float32, device=device)
    seconds = time.perf_counter() - began
    if launch.rank == 0:
        state = {k: v.cpu() for k, v in model.state_dict().items()}
        torch.save({"state": state, "losses": losses, "world_size": launch.world_size, "seconds": seconds,
                    "device": str(device), "backend": backend_for(device) if launch.torchrun else None},
                   args.out)
        print(f"rank 0 of {launch.world_size} on {device}: {args.steps} steps in {seconds:.1f} s, "
              f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    if launch.torchrun:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
