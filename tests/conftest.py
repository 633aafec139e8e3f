"""Shared test set-up: device markers, the repository root, a quiet environment."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest
import torch

try:
    from hypothesis import settings
except ImportError:  # `make gpu-check` runs on a machine's own PyTorch and pytest, without hypothesis
    settings = None
if settings is not None:
    # Timing varies on shared 2-core machines: hypothesis checks properties here, not speed.
    settings.register_profile("course", deadline=None, max_examples=50)
    settings.load_profile("course")

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent


def pytest_collection_modifyitems(config, items):
    mps = getattr(torch.backends, "mps", None)
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if "mps" in item.keywords and not (mps and mps.is_available()):
            item.add_marker(pytest.mark.skip(reason="needs an Apple-silicon GPU (MPS)"))


@pytest.fixture
def tool_env():
    """The environment for nbgrader and jupyter subprocesses: this venv's bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def devices() -> list[str]:
    from minidl.device import available_devices

    return [str(d) for d in available_devices()]
