"""Expected values, computed by minidl's reference in a clean process.

``cases_and_expected`` returns, for each exercise, the generated cases, the plain trees of
the reference's outputs on them (for a trained-model exercise, of the answers its cases carry,
which are then taken out of the cases), and the reference's time on each case, which sizes the
learner's time limits. They are computed by ``python -m autograder.oracle`` in
a fresh interpreter that imports minidl and the catalogue and nothing of the learner's, so no
learner code can alter them. Public results are cached in the user's cache directory (keyed
by the code that makes them); hidden cases use a secret seed that only this process reads.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import torch

from . import policy

PUBLIC_SEED = "minidl-public-2026"


def move(obj, device: str):
    """Move the tensors of a case's arguments to ``device`` (the grader's own, not minidl's)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(move(v, device) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(move(v, device) for v in obj)
    if isinstance(obj, dict):  # a copy keeps the dict's type and state (a defaultdict's factory)
        moved = copy.copy(obj)
        moved.update((k, move(v, device)) for k, v in obj.items())
        return moved
    return obj


def make_cases(exercise, seed: str, devices: list[str]):
    """Every case of ``exercise`` for ``seed``, expanded to each device (CPU first)."""
    from .exercise import Draw

    cases = []
    for group in exercise.groups:
        base = list(group.make(Draw(f"{seed}:{exercise.id}:{group.name}")))
        for case in base:
            case.group = group.name
        for device in devices if group.devices and not exercise.cpu_only else ["cpu"]:
            for case in base:
                cases.append(dataclasses.replace(case, args=move(case.args, device), kwargs=move(case.kwargs, device), device=device))
    return cases


def compute(ids: list[str], hidden: bool, devices: list[str]) -> dict:
    """In this (clean) process: cases and the reference's plain outputs for each exercise."""
    from .catalog import EXERCISES
    from .plain import plain, raised
    from .runner import quiet

    seed = PUBLIC_SEED
    if hidden:
        secret = os.environ.get(policy.SECRET_ENV) or "no-secret-set"  # handed over by cases_and_expected
        seed = "hidden:" + hashlib.sha256(secret.encode()).hexdigest()
    if torch.are_deterministic_algorithms_enabled():  # (the setter imports the compiler: 1.5 s)
        torch.use_deterministic_algorithms(False)
    results = {}
    for eid in ids:
        exercise = EXERCISES[eid]
        cases, outputs = make_cases(exercise, seed, devices), []
        if exercise.threshold is not None:  # a trained model: the expected values are the case's answers
            outputs = [plain(case.answer) for case in cases]
            cases = [dataclasses.replace(case, answer=None) for case in cases]  # never sent to learner code
            results[eid] = {"cases": cases, "expected": outputs}
            continue
        reference, seconds = exercise.reference(), []
        for case in cases:
            start = time.perf_counter()
            try:
                with quiet():
                    outputs.append(plain(exercise.probe_for(case.group)(reference, *case.args, **case.kwargs)))
            except Exception as e:  # the case asks for an exception (invalid input)
                outputs.append(raised(e))
            seconds.append(time.perf_counter() - start)  # sizes the case's time limit (policy.case_seconds)
        results[eid] = {"cases": cases, "expected": outputs, "seconds": seconds}
    return results


def cache_dir() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "minidl" / "oracle"


_HIDDEN: dict[str, dict] = {}  # this process's hidden cases: kept in memory, never on disk


class OracleError(RuntimeError):
    """The reference process failed: a problem of the course, never of the learner."""


def cases_and_expected(ids: list[str], hidden: bool = False, devices: list[str] | None = None,
                       use_cache: bool = True, timeout: float = 600) -> dict:
    """Cases and expected plain outputs for ``ids``, from a clean process (or the cache)."""
    from minidl.device import available_devices

    devices = devices or [str(d) for d in available_devices()]
    key = hashlib.sha256(json.dumps([sorted(ids), hidden, devices, policy.grader_digest()]).encode()).hexdigest()[:24]
    cached = cache_dir() / f"{key}.pt"
    if hidden:  # one reference process per lesson and secret: a notebook's hidden checks share it
        key = hashlib.sha256((key + (policy.secret().value or "")).encode()).hexdigest()
        if use_cache and key in _HIDDEN:
            return _HIDDEN[key]
    elif use_cache and cached.exists():
        try:
            return torch.load(cached, weights_only=False)
        except Exception:
            cached.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        request, answer = pathlib.Path(tmp, "request.json"), pathlib.Path(tmp, "answer.pt")
        request.write_text(json.dumps({"ids": ids, "hidden": hidden, "devices": devices}))
        env = policy.learner_env()  # the reference process reads nothing of the grader's but the secret
        if hidden:
            env[policy.SECRET_ENV] = policy.secret().value or ""
        proc = subprocess.run(
            [sys.executable, "-m", "autograder.oracle", str(request), str(answer)],
            capture_output=True, text=True, timeout=timeout, env=env,
            cwd=pathlib.Path(__file__).resolve().parent.parent,
        )
        if proc.returncode != 0 or not answer.exists():
            raise OracleError(f"the reference process failed:\n{proc.stderr[-3000:]}")
        results = torch.load(answer, weights_only=False)
        if use_cache and hidden:
            _HIDDEN[key] = results
        elif use_cache:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp_file = cached.with_suffix(f".{os.getpid()}.tmp")
            torch.save(results, tmp_file)
            os.replace(tmp_file, cached)
        return results


def main(argv: list[str]) -> None:
    request = json.loads(pathlib.Path(argv[0]).read_text())
    torch.save(compute(request["ids"], request["hidden"], request["devices"]), argv[1])


if __name__ == "__main__":
    main(sys.argv[1:])
