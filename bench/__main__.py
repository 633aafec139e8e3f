"""``make bench``: every benchmark module's rows, then each notebook's headless run time.

A row is (what, ratio): our time over the built-in's, measured in this same run, so the
numbers hold on whatever machine prints them. Modules are ``bench/bench_*.py`` with ``rows()``.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import pathlib
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


def main(argv: list[str]) -> int:
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; ratio = ours / built-in (lower is faster)")
    for module_path in sorted(HERE.glob("bench_*.py")):
        module = importlib.import_module(f"bench.{module_path.stem}")
        print(f"\n{module_path.stem}")
        for name, value in module.rows():
            print(f"  {name:<72} {value:8.2f}x")
    if "--no-notebooks" not in argv:
        print("\nnotebooks, instructor edition, headless on CPU (checks included)")
        for path in sorted((ROOT / "course" / "source").glob("*/*.ipynb")):
            print(f"  {path.stem:<72} {notebook_seconds(path):7.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
