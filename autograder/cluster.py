"""Grading on a Dask cluster: ``python -m autograder batch DIR --scheduler tcp://HOST:8786``
(or ``--scheduler-file FILE``), with ``pip install -e '.[cluster]'``.

Each submission is one Dask task running ``batch.grade_submission`` on a worker: the notebook's
bytes and the lesson's expected values (sent once to every worker) go out, the report comes
back. Workers need the course's environment and nothing of the course's files; this process
alone writes the store and the outputs, as the local pool's run does. Dask reschedules the task
of a worker that dies; a task whose workers keep dying (``distributed.scheduler.allowed-failures``)
becomes an error row and is graded again on the next run, like any other grader failure.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from . import policy
from .batch import Task, grade_submission

RETRIES = 2  # more tries for a task that raised on its worker (a worker's own trouble, e.g. its disk)


def connect(address: str | None = None, scheduler_file: str | None = None):
    """A ``distributed.Client`` of the scheduler at ``address`` or described by ``scheduler_file``."""
    try:
        from distributed import Client
    except ImportError as e:
        raise SystemExit("--scheduler needs Dask distributed: pip install -e '.[cluster]'") from e
    client = Client(address, scheduler_file=scheduler_file, timeout="60s")
    print(f"Dask scheduler {client.scheduler.address}; dashboard {client.dashboard_link}", file=sys.stderr)
    return client


def window(client) -> int:
    """How many submissions are with the cluster at once: enough to keep every thread busy, few
    enough that a class of thousands of notebooks is not all in the scheduler's memory."""
    threads = sum(client.nthreads().values()) or 1
    return max(16, 4 * threads)


def task_key(task: Task) -> str:
    return f"minidl-grade-{task.sub.student}-{task.sub.key}-{task.key[:12]}"


def grader(client):
    """A grader for ``batch.run``: (task, result) as each submission comes back from the cluster."""

    def grade(tasks: list[Task], expected: dict, hidden: bool, limits: policy.Limits) -> Iterator[tuple[Task, dict]]:
        from distributed import as_completed

        shared = {lesson: client.scatter(values, broadcast=True, hash=False) for lesson, values in expected.items()}
        waiting = iter(tasks)
        sent: dict = {}

        def send() -> object | None:
            task = next(waiting, None)
            if task is None:
                return None
            future = client.submit(grade_submission, task.name, task.data, task.sub.lesson, hidden, limits,
                                   shared[task.sub.lesson], key=task_key(task), retries=RETRIES, pure=False)
            sent[future.key] = task
            return future

        first = [f for f in (send() for _ in range(window(client))) if f is not None]
        running = as_completed(first)
        for future in running:
            task = sent.pop(future.key)
            try:
                result = future.result()
            except Exception as e:  # KilledWorker (its workers kept dying), or the task raised on every try
                result = {"error": f"{type(e).__name__}: {e}"[:500]}
            future.release()
            yield task, result
            following = send()
            if following is not None:
                running.add(following)

    return grade
