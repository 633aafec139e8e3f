"""minidl.device: the choice of device and seeding."""

import torch

from minidl.device import available_devices, default_device, seed_everything


def test_cpu_is_always_available():
    assert available_devices()[0] == torch.device("cpu")


def test_default_device_prefers_an_accelerator(monkeypatch):
    monkeypatch.delenv("MINIDL_DEVICE", raising=False)
    expected = available_devices()[-1]
    assert default_device() == expected


def test_environment_overrides_the_choice(monkeypatch):
    monkeypatch.setenv("MINIDL_DEVICE", "meta")
    assert default_device() == torch.device("meta")


def test_seeding_makes_draws_repeat():
    seed_everything(3)
    a = torch.randn(4)
    seed_everything(3)
    assert torch.equal(a, torch.randn(4))
