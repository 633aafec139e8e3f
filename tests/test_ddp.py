"""The course's DDP script launched with torchrun on 2 processes takes the same steps as 1 process."""

import os
import pathlib
import socket
import subprocess
import sys

import pytest
import torch

from minidl import ddp_train

ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("allreduce", ["ddp", "minidl"])
def test_torchrun_on_two_processes_equals_one_process(tmp_path, allreduce):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={free_port()}", "-m", "minidl.ddp_train", "--float64", "--steps", "4",
               "--allreduce", allreduce, "--out", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    ddp = torch.load(out)
    assert ddp["world_size"] == 2
    single, losses = ddp_train.train(steps=4, batch_size=16, rank=0, world_size=1, dtype=torch.float64)
    torch.testing.assert_close(torch.tensor(ddp["losses"]), torch.tensor(losses), rtol=1e-12, atol=1e-12)
    for name, value in single.state_dict().items():
        torch.testing.assert_close(ddp["state"][name], value, rtol=1e-10, atol=1e-12)
    assert losses[-1] < losses[0] - 0.1                                    # it trained


def test_a_batch_that_does_not_split_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setattr(ddp_train.dist, "init_process_group", lambda *a, **k: None)
    with pytest.raises(SystemExit, match="does not split"):
        ddp_train.main(["--batch-size", "16", "--out", str(tmp_path / "x.pt")])
