"""Grading a class: ``python -m autograder batch`` with 1 and 2 local workers and on a Dask
``LocalCluster`` of 2 worker processes, against nbgrader's serial ``autograde``, on the same N
identical full-marks submissions of lesson 01; and, per lesson, grading one full submission
against its bare headless execution (a kernel running the notebook, nothing checked).

``rows()`` returns wall-time ratios (lower is faster). N is ``BENCH_BATCH_N`` (default 4); the
lessons are ``BENCH_BATCH_LESSONS`` (comma-separated keys, or ``all``; default ``01_tensors``).
Hidden cases are on (an instructor's secret is set), as when grading a class.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON = "01_tensors"
PROCESSES = 1     # each row times whole grading runs of many seconds, and one set takes minutes
BARE = """
import sys, nbformat, nbclient
nb = nbformat.read(sys.argv[1], as_version=4)
nbclient.NotebookClient(nb, timeout=3600, kernel_name="python3").execute()
"""


def course_with_submissions(tmp: pathlib.Path, n: int, env: dict) -> pathlib.Path:
    """A course whose submitted/ tree holds ``n`` copies of the instructor's edition."""
    course = tmp / "course"
    shutil.copytree(ROOT / "course" / "source" / LESSON, course / "source" / LESSON)
    shutil.copy(ROOT / "course" / "nbgrader_config.py", course)
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", LESSON, "--force"], cwd=course,
                   env=env, check=True, capture_output=True)
    for i in range(n):
        target = course / "submitted" / f"student{i:03d}" / LESSON
        target.mkdir(parents=True)
        shutil.copy(course / "source" / LESSON / f"{LESSON}.ipynb", target)
    return course


def seconds(cmd: list[str], cwd: pathlib.Path, env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def environment() -> dict:
    bin_dir = str(pathlib.Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    env.update(PATH=bin_dir + os.pathsep + env.get("PATH", ""), AUTOGRADER_SECRET="bench-secret")
    return env


def on_local_cluster(cmd: list[str], env: dict) -> float:
    """Seconds of ``cmd`` + ``--scheduler`` on a running 2-worker LocalCluster (its start not counted)."""
    from distributed import Client, LocalCluster

    saved = dict(os.environ)
    os.environ.update(env)  # the workers' environment, as a worker machine's
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                          silence_logs=50) as cluster, Client(cluster) as client:
            client.wait_for_workers(2)
            return seconds(cmd + ["--scheduler", cluster.scheduler_address], ROOT, env)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def class_rows(n: int, env: dict) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        course = course_with_submissions(tmp, n, env)
        batch = [sys.executable, "-m", "autograder", "batch", str(course)]
        one = seconds(batch + ["--out", str(tmp / "one.csv"), "--workers", "1"], ROOT, env)
        two = seconds(batch + ["--out", str(tmp / "two.csv"), "--workers", "2"], ROOT, env)
        dask = on_local_cluster(batch + ["--out", str(tmp / "dask.csv")], env)
        nbgrader = seconds([sys.executable, "-m", "nbgrader", "autograde", LESSON, "--force"], course, env)
    per = f"{n} full-marks lesson-01 notebooks"
    return [
        (f"batch, 1 worker / nbgrader autograde ({per}; {one:.0f} s vs {nbgrader:.0f} s)", one / nbgrader),
        (f"batch, 2 workers / nbgrader autograde ({two:.0f} s vs {nbgrader:.0f} s)", two / nbgrader),
        (f"batch on a 2-worker Dask LocalCluster / nbgrader autograde ({dask:.0f} s vs {nbgrader:.0f} s; "
         f"{n / dask * 60:.1f} notebooks a minute)", dask / nbgrader),
        (f"batch, 2 workers / 1 worker ({n / two * 60:.1f} vs {n / one * 60:.1f} notebooks a minute)", two / one),
    ]


def lesson_row(key: str, env: dict) -> tuple[str, float]:
    """Grading one full submission of ``key`` (``grade``, hidden cases included) against running it
    bare in a copy of its folder (as nbgrader runs it)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp) / key
        shutil.copytree(ROOT / "course" / "source" / key, folder)
        notebook = folder / f"{key}.ipynb"
        bare = seconds([sys.executable, "-c", BARE, str(notebook)], folder, dict(env, PYTHONPATH=str(ROOT)))
        graded = seconds([sys.executable, "-m", "autograder", "grade", str(notebook)], ROOT, env)
    return (f"grading one full {key} submission / its bare headless run ({graded:.0f} s vs {bare:.0f} s)",
            graded / bare)


def lessons() -> list[str]:
    chosen = os.environ.get("BENCH_BATCH_LESSONS", LESSON)
    available = sorted(p.name for p in (ROOT / "course" / "source").iterdir() if p.is_dir())
    return available if chosen == "all" else [k for k in chosen.split(",") if k in available]


def rows() -> list[tuple[str, float]]:
    env, n = environment(), int(os.environ.get("BENCH_BATCH_N", "4"))
    return (class_rows(n, env) if n else []) + [lesson_row(k, env) for k in lessons()]


if __name__ == "__main__":
    for name, ratio in rows():
        print(f"{ratio:6.2f}x  {name}", flush=True)
