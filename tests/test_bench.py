"""make bench's modules load and declare their rows; one runs in a child process as make bench runs it."""

import importlib
import pathlib

import pytest

from bench.__main__ import rows_in_processes

BENCH = pathlib.Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("stem", sorted(p.stem for p in BENCH.glob("bench_*.py")))
def test_bench_module_declares_rows(stem):
    module = importlib.import_module(f"bench.{stem}")
    assert callable(module.rows)
    assert isinstance(getattr(module, "PROCESSES", 3), int)


def test_rows_come_back_from_fresh_processes():
    rows = rows_in_processes("bench_lessons_01_02", processes=2)
    assert len(rows) >= 5
    for name, values in rows:
        assert len(values) == 2 and all(v > 0 for v in values), name
