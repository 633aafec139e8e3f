"""Lesson 08: what each tool of training at scale costs or gains, on lesson 07's GPT (CPU).

``rows()`` returns (name, ratio) pairs, ratio = time of the first / time of the second, measured in
this run (interleaved, best of several): accumulation over 4 micro-batches and a checkpointed step
against one plain step on the same 64 windows, the course's DDP script on 2 processes against 1
(its training time per run, torchrun's start excluded), torch.compile against eager, and dynamic
int8 against float32 inference.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from minidl import ddp_train
from minidl.scale import accumulated_step
from minidl.transformer import GPT, GPTConfig

from .timing import interleaved_ratio

PROCESSES = 1              # the DDP row starts its own processes; one round is enough
ROOT = pathlib.Path(__file__).resolve().parent.parent


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def gpt(n_layer: int = 2) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=n_layer, n_head=4, d_model=64, dropout=0.0))


def training_rows() -> list[tuple[str, float]]:
    from torch.utils.checkpoint import checkpoint

    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 65, (64, 32), generator=g), torch.randint(0, 65, (64, 32), generator=g)
    model = gpt()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def plain():
        opt.zero_grad()
        lm_loss(model(x), y).backward()
        opt.step()

    def accumulated():
        accumulated_step(model, lm_loss, opt, list(zip(x.split(16), y.split(16))))

    def checkpointed():
        opt.zero_grad()
        h = model.drop(model.tok(x) + model.pos(torch.arange(32)))
        for block in model.blocks:
            h = checkpoint(block, h, is_causal=True, use_reentrant=False)
        lm_loss(model.head(model.ln(h)), y).backward()
        opt.step()

    return [("scale.accumulated_step, 4 micro-batches of 16 / one step on 64", interleaved_ratio(accumulated, plain)),
            ("activation-checkpointed step (every block) / plain step", interleaved_ratio(checkpointed, plain))]


def ddp_rows(steps: int = 10) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
        common = ["-m", "minidl.ddp_train", "--device", "cpu", "--steps", str(steps), "--batch-size", "32"]
        subprocess.run([sys.executable, *common, "--out", f"{tmp}/one.pt"], env=env, check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                        f"--master_port={port}", *common, "--out", f"{tmp}/two.pt"], env=env, check=True,
                       capture_output=True)
        one, two = torch.load(f"{tmp}/one.pt"), torch.load(f"{tmp}/two.pt")
    return [(f"minidl.ddp_train, {steps} steps of batch 32: torchrun 2 processes / 1 process", two["seconds"] / one["seconds"])]


def inference_rows() -> list[tuple[str, float]]:
    model = gpt().eval()
    x = torch.randint(0, 65, (32, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = torch.compile(model)
        compiled(x)                                           # compile outside the timing
        int8 = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        return [("torch.compile(GPT) forward / eager", interleaved_ratio(lambda: compiled(x), lambda: model(x))),
                ("dynamic int8 GPT forward / float32", interleaved_ratio(lambda: int8(x), lambda: model(x)))]


def rows() -> list[tuple[str, float]]:
    return training_rows() + ddp_rows() + inference_rows()


if __name__ == "__main__":
    for name, ratio in rows():
        print(f"{ratio:6.2f}x  {name}")
