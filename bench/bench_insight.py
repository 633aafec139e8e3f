"""``python -m autograder insight`` on a class of 1,000 stored results, against reading the CSV
that batch wrote with the standard library (``csv.DictReader``, nothing else).

The class is synthetic: ``batch`` runs with a stand-in for its workers that returns made-up
reports of lessons 01 and 02 (full marks, partial credit with a first failure, stubs, forbidden
built-ins, grader problems), so that the store and the CSVs are exactly what a real run writes,
without grading 1,000 notebooks first. ``rows()`` returns insight's time over the CSV's.
"""

from __future__ import annotations

import csv
import pathlib
import random
import tempfile
import time

PROCESSES = 1      # one run writes 1,000 files and a dozen plots: seconds, not microseconds
RESULTS = 1000     # stored results (submissions): RESULTS // 2 students, lessons 01 and 02
LESSON_KEYS = ("01_tensors", "02_broadcasting")
FAILURES = (  # (group, symptom, message, hint)
    ("values", "values", "output differs in 3 of 12 elements; largest error at index [0, 1]", "Check the formula."),
    ("edge cases", "shape", "output has shape [0, 3], expected [0]", "Keep the empty dimension."),
    ("speed", "slow", "correct, but 412.0x slower than the reference on this input (allowed: 200x)",
     "Replace Python loops over elements with whole-tensor operations."),
    ("values", "forbidden", "this exercise asks you to build it yourself; torch.cdist is off-limits here",
     "Build it from simpler operations, as the lesson shows."),
)


def exercise_result(rng: random.Random, eid: str, points: float) -> dict:
    """One made-up exercise result: full, partial with a first failure, a stub, or forbidden."""
    draw = rng.random()
    result = {"id": eid, "max_score": points, "cases": 20, "failure": None}
    if draw < 0.5:
        return result | {"score": points, "passed": True, "status": "checked", "message": "all 20 cases passed",
                         "passed_cases": 20}
    if draw < 0.65:
        return result | {"score": 0.0, "passed": False, "status": "not_implemented", "passed_cases": 0,
                         "message": f"{eid.split('.')[1]} is not implemented yet (it raises NotImplementedError)"}
    group, symptom, message, hint = rng.choice(FAILURES)
    failure = {"group": group, "inputs": "x: float32[3, 4] on cpu", "message": message, "symptom": symptom,
               "hint": hint, "device": "cpu", "where": ""}
    forbidden = symptom == "forbidden"
    score = 0.0 if forbidden else round(points * rng.randint(1, 9) / 10, 4)
    return result | {"score": score, "passed": False, "status": "forbidden" if forbidden else "checked",
                     "message": f"[{group}] {message}", "passed_cases": 0 if forbidden else 12, "failure": failure}


def made_up_report(rng: random.Random, lesson: str) -> dict:
    """A report as a worker sends it back; one in 20 has a cell that ran past its limit."""
    from autograder.catalog import LESSONS

    exercises = [exercise_result(rng, e.id, e.points) for e in LESSONS[lesson].exercises]
    problems = ["cell 5 ran past its 120 s limit and was stopped"] if rng.random() < 0.05 else []
    return {"notebook": f"{lesson}.ipynb", "lesson": lesson, "score": round(sum(e["score"] for e in exercises), 4),
            "max_score": sum(e["max_score"] for e in exercises), "hidden_cases": True, "problems": problems,
            "repairs": [], "seconds": 1.0, "exercises": exercises, "feedback": []}


def synthetic_class(folder: pathlib.Path, results: int = RESULTS, seed: int = 0) -> pathlib.Path:
    """Grade ``results`` empty notebooks (LMS names) with made-up reports through ``batch.run``;
    returns the CSV it wrote."""
    from autograder import batch, policy

    rng = random.Random(seed)
    downloads = folder / "downloads"
    downloads.mkdir(parents=True)
    made_up = {}
    for i in range(results):
        lesson = LESSON_KEYS[i % len(LESSON_KEYS)]
        name = f"student{i // len(LESSON_KEYS):04d}_{1000 + i // len(LESSON_KEYS)}_{i}_{lesson}.ipynb"
        (downloads / name).write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
        made_up[name] = made_up_report(rng, lesson)

    def workers(tasks, expected, hidden, limits):
        for task in tasks:
            yield task, made_up[task.name]

    csv_path = folder / "grades.csv"
    batch.run(downloads, csv_path, limits=policy.Limits(), hidden=True, progress=False, grader=workers)
    return csv_path


def read_with_stdlib(csv_path: pathlib.Path) -> list[dict]:
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def insight_seconds(csv_path: pathlib.Path, out: pathlib.Path) -> float:
    from autograder import insight

    start = time.perf_counter()
    insight.write(csv_path, out)
    return time.perf_counter() - start


def rows() -> dict[str, float]:
    from autograder import grading

    grading.expected_values = lambda key, hidden: ({}, {})  # the stand-in workers need no expected values
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = synthetic_class(pathlib.Path(tmp))
        seconds = insight_seconds(csv_path, pathlib.Path(tmp) / "insight")
        start = time.perf_counter()
        read_with_stdlib(csv_path)
        reading = time.perf_counter() - start
    print(f"insight {seconds:.2f} s, csv.DictReader {1000 * reading:.1f} ms")  # before the data line: for a reader
    return {f"insight on {RESULTS:,} stored results / csv.DictReader on their CSV": seconds / reading}
