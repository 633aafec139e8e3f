"""Device choice and seeding, used by every lesson's set-up cell."""

from __future__ import annotations

import os
import random

import torch


def available_devices() -> list[torch.device]:
    """Every device this machine can compute on: always the CPU, then CUDA and MPS if present."""
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(torch.device("mps"))
    return devices


def default_device() -> torch.device:
    """CUDA, then MPS, then CPU; the environment variable ``MINIDL_DEVICE`` overrides the choice."""
    forced = os.environ.get("MINIDL_DEVICE", "").strip()
    if forced:
        return torch.device(forced)
    return available_devices()[-1] if len(available_devices()) > 1 else torch.device("cpu")


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (on every device) in one call."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # numpy is optional for minidl itself
        pass
    torch.manual_seed(seed)
