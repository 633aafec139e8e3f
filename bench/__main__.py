"""``make bench``: every benchmark module's rows, then each notebook's headless run time.

A row is (what, ratio): our time over the built-in's, measured in this same run, so the
numbers hold on whatever machine prints them. Modules are ``bench/bench_*.py`` with ``rows()``.

Each module runs in ``PROCESSES`` fresh Python processes (3 unless the module says otherwise)
and a row prints the median with the range. Within one process the best of many repeats is
stable, but from one process to the next it is not: memory layout, allocator state and where the
threads land are drawn anew at every start, and conv2d's ratio measured 2.2x in one process and
3.4x in the next on the same quiet machine. pyperf spawns worker processes for the same reason.
"""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import torch

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def notebook_seconds(path: pathlib.Path) -> float:
    """Wall time of a headless top-to-bottom run (checks deferred, as when grading)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    start = time.perf_counter()
    client = NotebookClient(nb, timeout=600, allow_errors=False, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel(env=env, stderr=subprocess.DEVNULL):
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    return time.perf_counter() - start


def rows_in_processes(stem: str, processes: int) -> list[tuple[str, list[float]]]:
    """Every row of ``bench/<stem>.py`` as measured by ``processes`` fresh processes, in order."""
    runs = []
    for _ in range(processes):
        done = subprocess.run([sys.executable, "-m", "bench", "--rows", stem], cwd=ROOT,
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"bench/{stem}.py failed:\n{done.stderr[-3000:]}")
        runs.append(dict(json.loads(done.stdout.splitlines()[-1])))     # the last line: anything printed before it is not data
    return [(name, [run[name] for run in runs]) for name in runs[0]]


def main(argv: list[str]) -> int:
    torch.set_num_threads(os.cpu_count() or 1)
    if argv[:1] == ["--rows"]:                     # one process's measurement, for rows_in_processes
        print(json.dumps(importlib.import_module(f"bench.{argv[1]}").rows()))
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; ratio = ours / built-in (lower is faster),"
          " the median over fresh processes, their range in brackets")
    for module_path in sorted(HERE.glob("bench_*.py")):
        module = importlib.import_module(f"bench.{module_path.stem}")
        processes = getattr(module, "PROCESSES", 3)
        print(f"\n{module_path.stem} ({processes} process{'es' if processes > 1 else ''})")
        for name, values in rows_in_processes(module_path.stem, processes):
            spread = f"  [{min(values):.2f}-{max(values):.2f}]" if len(values) > 1 else ""
            print(f"  {name:<72} {statistics.median(values):8.2f}x{spread}")
    if "--no-notebooks" not in argv:
        print("\nnotebooks, instructor edition, headless on CPU (checks included)")
        for path in sorted((ROOT / "course" / "source").glob("*/*.ipynb")):
            print(f"  {path.stem:<72} {notebook_seconds(path):7.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
