"""Grading a class: ``python -m autograder batch`` with 1 and 2 workers against nbgrader's
serial ``autograde``, on the same N identical full-marks submissions of lesson 01, in one run.

``rows()`` returns wall-time ratios (lower is faster). N is ``BENCH_BATCH_N`` (default 4).
Hidden cases are on for both (an instructor's secret is set), as when grading a class.
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
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def rows() -> list[tuple[str, float]]:
    n = int(os.environ.get("BENCH_BATCH_N", "4"))
    bin_dir = str(pathlib.Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    env.update(PATH=bin_dir + os.pathsep + env.get("PATH", ""), AUTOGRADER_SECRET="bench-secret")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        course = course_with_submissions(tmp, n, env)
        batch = [sys.executable, "-m", "autograder", "batch", str(course)]
        one = seconds(batch + ["--out", str(tmp / "one.csv"), "--workers", "1"], ROOT, env)
        two = seconds(batch + ["--out", str(tmp / "two.csv"), "--workers", "2"], ROOT, env)
        nbgrader = seconds([sys.executable, "-m", "nbgrader", "autograde", LESSON, "--force"], course, env)
    per = f"{n} full-marks lesson-01 notebooks"
    return [
        (f"batch, 1 worker / nbgrader autograde ({per}; {one:.0f} s vs {nbgrader:.0f} s)", one / nbgrader),
        (f"batch, 2 workers / nbgrader autograde ({two:.0f} s vs {nbgrader:.0f} s)", two / nbgrader),
        (f"batch, 2 workers / 1 worker ({n / two * 60:.1f} vs {n / one * 60:.1f} notebooks a minute)", two / one),
    ]


if __name__ == "__main__":
    for name, ratio in rows():
        print(f"{ratio:6.2f}x  {name}")
