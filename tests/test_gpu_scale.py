"""GPU check for lesson 08: float16 autocast with minidl's LossScaler against torch's GradScaler, an
exact checkpoint resume with the CUDA random generator, and the DDP script under torchrun on NCCL.
Part of ``make gpu-check``: imports torch, pytest and the repository only; skipped without a GPU."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from minidl import ddp_train, scale

pytestmark = pytest.mark.cuda

ROOT = pathlib.Path(__file__).resolve().parent.parent


def mlp(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 4)).cuda()


def batches(n: int = 8, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """n batches (x [32, 16], y [32]) of a learnable problem on cuda: y is the argmax of 4 features."""
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(32, 16, generator=g) for _ in range(n)]
    return [(x.cuda(), x[:, :4].argmax(1).cuda()) for x in xs]


def amp_run(scaler, overflow_at: set[int]) -> list[tuple[float, float, bool, list[torch.Tensor]]]:
    """Training in float16 autocast through ``scaler``; the loss is made inf at the steps in ``overflow_at``.
    Per step: (loss, scale after update, step taken, parameters)."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    record = []
    for t, (x, y) in enumerate(batches() * 3):
        opt.zero_grad()
        with torch.autocast("cuda", dtype=torch.float16):
            logits = model(x)
            assert logits.dtype == torch.float16                     # autocast computes the matmuls in float16
            loss = F.cross_entropy(logits, y)                         # and the loss in float32
        if t in overflow_at:
            loss = loss * float("inf")
        before = [p.detach().clone() for p in model.parameters()]
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        after = [p.detach().clone() for p in model.parameters()]
        taken = not all(torch.equal(a, b) for a, b in zip(before, after))
        record.append((loss.item(), scaler.get_scale(), taken, after))
    return record


def test_float16_autocast_with_loss_scaler_follows_grad_scaler():
    hp = dict(init_scale=2.0**10, growth_interval=4)
    ours = amp_run(scale.LossScaler(**hp), overflow_at={3, 9, 10})
    theirs = amp_run(torch.amp.GradScaler("cuda", **hp), overflow_at={3, 9, 10})
    for t, (a, b) in enumerate(zip(ours, theirs)):
        assert a[1] == b[1] and a[2] == b[2], (t, a[:3], b[:3])          # the same scale, the same skips
        torch.testing.assert_close(a[3], b[3], rtol=1e-6, atol=1e-7)
    assert [t for t, r in enumerate(ours) if not r[2]] == [3, 9, 10]      # exactly the overflows were skipped
    assert ours[3][1] == 2.0**9 and max(r[1] for r in ours) > 2.0**10     # backed off, then grew again
    assert ours[-1][0] < ours[0][0]                                       # and it trained


def noisy_epoch(model: nn.Module, optimizer, scheduler, scaler, data) -> list[float]:
    """One float16 epoch whose randomness is all on the GPU's generator (dropout, input noise)."""
    losses = []
    for x, y in data:
        optimizer.zero_grad()
        with torch.autocast("cuda", dtype=torch.float16):
            loss = F.cross_entropy(model(x + 0.1 * torch.randn_like(x)), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        losses.append(loss.item())
    return losses


def parts(seed: int):
    model = mlp(seed, dropout=0.3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return model, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, 3, 0.5), torch.amp.GradScaler("cuda")


def test_checkpoint_resume_restores_the_cuda_generator_bitwise(tmp_path):
    data = batches()
    model, optimizer, scheduler, scaler = parts(0)
    torch.cuda.manual_seed_all(7)
    noisy_epoch(model, optimizer, scheduler, scaler, data)
    scale.save_checkpoint(tmp_path / "ckpt.pt", model, optimizer, scheduler, scaler, epoch=1)
    expected = noisy_epoch(model, optimizer, scheduler, scaler, data)
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert len(saved["rng"]["cuda"]) == torch.cuda.device_count()

    resumed, optimizer2, scheduler2, scaler2 = parts(1)
    torch.cuda.manual_seed_all(12345)                                     # a different GPU generator state
    assert scale.load_checkpoint(tmp_path / "ckpt.pt", resumed, optimizer2, scheduler2, scaler2) == {"epoch": 1}
    assert noisy_epoch(resumed, optimizer2, scheduler2, scaler2, data) == expected
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert a.device.type == "cuda" and torch.equal(a, b)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("allreduce", ["ddp", "minidl"])
def test_torchrun_one_process_per_gpu_on_nccl(tmp_path, allreduce):
    """``torchrun --nproc-per-node 1`` runs the lesson's script on cuda:0 in an NCCL group, and takes the
    steps of the same training in this process on the GPU (and, to rounding, on the CPU)."""
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "--master_addr=127.0.0.1",
               f"--master_port={free_port()}", "-m", "minidl.ddp_train", "--float64", "--steps", "4",
               "--allreduce", allreduce, "--out", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    ddp = torch.load(out, weights_only=True)
    assert (ddp["device"], ddp["backend"], ddp["world_size"]) == ("cuda:0", "nccl", 1)
    _, on_gpu = ddp_train.train(steps=4, batch_size=16, rank=0, world_size=1, dtype=torch.float64, device="cuda")
    _, on_cpu = ddp_train.train(steps=4, batch_size=16, rank=0, world_size=1, dtype=torch.float64)
    losses = torch.tensor(ddp["losses"], dtype=torch.float64)
    torch.testing.assert_close(losses, torch.tensor(on_gpu, dtype=torch.float64), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(losses, torch.tensor(on_cpu, dtype=torch.float64), rtol=1e-8, atol=1e-10)
