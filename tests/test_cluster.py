"""batch on a Dask cluster (a LocalCluster of 2 worker processes): the same CSV as the local pool,
nothing lost when a worker is killed mid-run, and a killed client that is started again finishes
with the same CSV."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import nbformat
import pytest

from autograder import batch, cluster

from .conftest import ROOT
from .test_batch import SECRET, kill_after_the_first, read_csv
from .test_hostile import GOOD, WRONG_ONE_HOT, build

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def secret():
    os.environ["AUTOGRADER_SECRET"] = SECRET
    yield
    os.environ.pop("AUTOGRADER_SECRET")


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    """Three lesson-01 submissions as Canvas names them: full marks, one exercise wrong, nothing done."""
    folder = tmp_path_factory.mktemp("class") / "downloads"
    folder.mkdir()
    for name, nb in {"doe_jane_101_9001_01_tensors.ipynb": build(*GOOD.values()),
                     "roe_rick_102_9002_01_tensors.ipynb": build(GOOD["contiguous_strides"], WRONG_ONE_HOT),
                     "poe_edgar_103_9003_01_tensors.ipynb": build()}.items():
        (folder / name).write_text(nbformat.writes(nb))
    return folder


@pytest.fixture(scope="module")
def local_csv(submissions, tmp_path_factory, secret):
    """The local pool's CSV on the same submissions."""
    out = tmp_path_factory.mktemp("local") / "grades.csv"
    batch.run(submissions, out, workers=2, progress=False)
    return read_csv(out)


@pytest.fixture(scope="module")
def client(secret):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=50) as dask_cluster, distributed.Client(dask_cluster) as client:
        yield client


def test_the_cluster_gives_the_local_pools_csv(submissions, local_csv, client, tmp_path):
    out = tmp_path / "grades.csv"
    batch.run(submissions, out, grader=cluster.grader(client), progress=False)
    assert read_csv(out) == local_csv
    scores = {r["student"]: 0.0 for r in local_csv}
    for r in local_csv:
        scores[r["student"]] += float(r["score"])
    assert scores["doe_jane_101"] == 10 and 0 < scores["roe_rick_102"] < 10 and scores["poe_edgar_103"] == 0


def test_a_worker_killed_mid_run_loses_nothing(submissions, local_csv, client, tmp_path):
    grade, killed = cluster.grader(client), []

    def killing(tasks, expected, hidden, limits):
        for item in grade(tasks, expected, hidden, limits):
            busy = [w for w, keys in client.processing().items() if keys]
            if not killed and busy:  # a submission is being graded there: end the worker's process
                pids = client.run(os.getpid)
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
            yield item

    out = tmp_path / "grades.csv"
    batch.run(submissions, out, grader=killing, progress=False)
    assert killed
    rows = read_csv(out)
    assert rows == local_csv and len({(r["student"], r["exercise"]) for r in rows}) == len(rows)
    client.wait_for_workers(2, timeout=120)  # the nanny restarted it


def test_a_client_killed_and_started_again_finishes_with_the_same_csv(submissions, local_csv, client, tmp_path,
                                                                      tool_env):
    out = tmp_path / "grades.csv"
    command = [sys.executable, "-m", "autograder", "batch", str(submissions), "--out", str(out),
               "--scheduler", client.scheduler.address]
    env = dict(tool_env, AUTOGRADER_SECRET=SECRET)
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    graded_before = kill_after_the_first(proc, tmp_path / "grades")
    assert 1 <= graded_before < 3
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{graded_before} already graded, {3 - graded_before} to grade on the cluster" in proc.stderr
    assert "dashboard http" in proc.stderr
    assert read_csv(out) == local_csv
