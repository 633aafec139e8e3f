"""GPU check: the autograder on a machine with CUDA grades every case on cuda too, judges the device
of the output, and times CUDA speed cases in synchronised wall time. Part of ``make gpu-check``:
imports torch, pytest and the repository only (no Jupyter, nbgrader or hypothesis)."""

from __future__ import annotations

import math

import pytest
import torch

from autograder import check, oracle
from autograder.catalog import EXERCISES
from autograder.runner import time_ratio

pytestmark = pytest.mark.cuda


@pytest.fixture(autouse=True)
def fresh_oracle_cache(tmp_path, monkeypatch):
    """Expected values computed here, on this machine's devices (never a CPU-only machine's cache)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """A learner's correct softmax: shift by the maximum, exponentiate, normalise."""
    e = (x - x.amax(dim, keepdim=True)).exp()
    return e / e.sum(dim, keepdim=True)


def softmax_on_the_cpu(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Right values, wrong device: the result is moved to the CPU."""
    return softmax(x, dim).cpu()


def dists(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A learner's vectorised pairwise squared distances: |x|^2 + |y|^2 - 2 x.y, clamped at 0."""
    return ((x * x).sum(1)[:, None] + (y * y).sum(1)[None] - 2 * x @ y.T).clamp_min(0)


def dists_double_loop(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Right values, one pair at a time: thousands of kernel launches."""
    out = torch.empty(len(x), len(y), dtype=x.dtype, device=x.device)
    for i in range(len(x)):
        for j in range(len(y)):
            out[i, j] = ((x[i] - y[j]) ** 2).sum()
    return out


def cuda_cases(exercise_id: str) -> list:
    lesson = [eid for eid in EXERCISES if eid.split(".")[0] == exercise_id.split(".")[0]]
    cases = oracle.cases_and_expected(lesson)[exercise_id]["cases"]
    return [case for case in cases if case.device.startswith("cuda")]


@pytest.mark.parametrize("exercise_id, learner", [("broadcasting.softmax", softmax),
                                                  ("broadcasting.pairwise_sq_dists", dists)])
def test_a_correct_solution_passes_every_case_on_cuda_too(exercise_id, learner):
    result = check(exercise_id, learner)
    assert result.passed and result.score == result.max_score, result.message
    assert cuda_cases(exercise_id), "no case ran on cuda"


def test_an_output_left_on_the_cpu_fails_on_the_cuda_cases():
    result = check("broadcasting.softmax", softmax_on_the_cpu)
    assert not result.passed
    failure = result.failures[0]
    assert failure.symptom == "device" and failure.device.startswith("cuda"), failure
    assert "device cpu, expected cuda:0" in failure.message


def test_cuda_speed_cases_are_timed_and_judged():
    """A vectorised solution measures a finite ratio well inside the limit (never NaN: the clock on a GPU is
    synchronised wall time); a Python double loop is far beyond it."""
    exercise = EXERCISES["broadcasting.pairwise_sq_dists"]
    limit = exercise.group("speed").speed
    speed = [case for case in cuda_cases(exercise.id) if case.group == "speed"]
    assert speed
    fast = time_ratio(exercise, dists, speed[0], 10.0)
    slow = time_ratio(exercise, dists_double_loop, speed[0], 5.0)
    print(f"cuda speed case {speed[0].note}: vectorised {fast:.2f}x, double loop {slow:.3g}x the reference")
    assert math.isfinite(fast) and 0 < fast < limit
    assert slow > limit
