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
               f"--master_port={free_port()}", "-m", "minidl.ddp_train", "--device", "cpu", "--float64", "--steps", "4",
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


@pytest.mark.slow
def test_torchrun_on_one_process_forms_a_gloo_group_of_one(tmp_path):
    """torchrun with one process: the same script in a group of one (DDP on), the steps of a plain run."""
    out = tmp_path / "one.pt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "--master_addr=127.0.0.1",
               f"--master_port={free_port()}", "-m", "minidl.ddp_train", "--device", "cpu", "--float64",
               "--steps", "3", "--out", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    one = torch.load(out)
    assert (one["device"], one["backend"], one["world_size"]) == ("cpu", "gloo", 1)
    _, losses = ddp_train.train(steps=3, batch_size=16, rank=0, world_size=1, dtype=torch.float64)
    assert one["losses"] == losses


def test_a_batch_that_does_not_split_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setattr(ddp_train.dist, "init_process_group", lambda *a, **k: None)
    with pytest.raises(SystemExit, match="does not split"):
        ddp_train.main(["--batch-size", "16", "--out", str(tmp_path / "x.pt")])


# -- the device, back end and GPU each process picks from torchrun's environment ---------------------

TORCHRUN_ENV = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}


def fake_gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_launch_reads_torchruns_variables_and_defaults_to_one_process():
    assert ddp_train.launch_from_env(TORCHRUN_ENV) == ddp_train.Launch(rank=3, world_size=4, local_rank=1,
                                                                       local_world_size=2, torchrun=True)
    assert ddp_train.launch_from_env({}) == ddp_train.Launch(rank=0, world_size=1, local_rank=0, local_world_size=1,
                                                             torchrun=False)


def test_one_process_per_gpu_on_nccl_and_gloo_on_the_cpu(monkeypatch):
    launch = ddp_train.launch_from_env(TORCHRUN_ENV)
    fake_gpus(monkeypatch, 2)
    assert ddp_train.choose_device(launch) == torch.device("cuda", 1)         # LOCAL_RANK, not RANK
    assert ddp_train.backend_for(ddp_train.choose_device(launch)) == "nccl"
    assert ddp_train.choose_device(launch, "cpu") == torch.device("cpu")
    fake_gpus(monkeypatch, 0)
    assert ddp_train.choose_device(launch) == torch.device("cpu")
    assert ddp_train.backend_for(ddp_train.choose_device(launch)) == "gloo"


def test_more_processes_than_gpus_is_refused(monkeypatch):
    fake_gpus(monkeypatch, 1)
    with pytest.raises(SystemExit, match="one process per GPU: 2 processes on this machine but 1 GPU"):
        ddp_train.choose_device(ddp_train.launch_from_env(TORCHRUN_ENV))
    fake_gpus(monkeypatch, 0)
    with pytest.raises(SystemExit, match="but 0 GPU"):
        ddp_train.choose_device(ddp_train.Launch(), "cuda")


def test_main_binds_its_gpu_then_forms_an_nccl_group(tmp_path, monkeypatch):
    """On a (pretended) 2-GPU machine, process LOCAL_RANK=1 sets cuda:1 before init_process_group("nccl")
    and trains on cuda:1; rank 3 writes nothing."""
    calls = []
    fake_gpus(monkeypatch, 2)
    for name, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", torch.device(device))))
    monkeypatch.setattr(ddp_train.dist, "init_process_group", lambda backend: calls.append(("init", backend)))
    monkeypatch.setattr(ddp_train.dist, "destroy_process_group", lambda: calls.append(("destroy",)))
    monkeypatch.setattr(ddp_train, "train", lambda *a, **k: calls.append(("train", a[2:4], k["device"])) or (None, []))
    ddp_train.main(["--batch-size", "16", "--out", str(tmp_path / "x.pt")])
    assert calls == [("set_device", torch.device("cuda", 1)), ("init", "nccl"),
                     ("train", (3, 4), torch.device("cuda", 1)), ("destroy",)]
    assert not (tmp_path / "x.pt").exists()

