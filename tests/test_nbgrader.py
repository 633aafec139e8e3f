"""nbgrader end to end, with a temporary course and exchange, on lesson 01 (the fastest):
generate_assignment -> release_assignment -> fetch_assignment (as a student) -> submit ->
collect -> autograde -> generate_feedback -> export. Partial credit reaches the gradebook, the
feedback shows no hidden test, and ``python -m autograder batch`` reads the same submitted/
tree and writes its tamper-proof scores into the gradebook. Here with PostgreSQL where Debian's
server is installed; with SQLite, test_recipe.py follows the README's recipe with three students."""

from __future__ import annotations

import csv
import glob
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import nbformat
import pytest

from .conftest import ROOT
from .test_hostile import GOOD, WRONG_ONE_HOT

LESSON = "01_tensors"
SECRET = "nbgrader-e2e-secret"
POSTGRES = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))


def nbgrader(cwd, env, *args, timeout=900):
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)}:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def student_work(path: pathlib.Path) -> None:
    """The student fills the fetched notebook: two exercises right, one wrong, one left undone."""
    nb = nbformat.read(path, as_version=4)
    answers = {"contiguous_strides": GOOD["contiguous_strides"], "one_hot": WRONG_ONE_HOT,
               "patchify": GOOD["patchify"]}
    for cell in nb.cells:
        grade_id = (cell.metadata.get("nbgrader") or {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in answers:
            cell.source = answers[grade_id]
    nbformat.write(nb, path)


def course_loop(tmp: pathlib.Path, env: dict, db_url: str | None) -> dict:
    """The whole nbgrader loop for one student; returns what the tests check."""
    course, exchange, home = tmp / "course", tmp / "exchange", tmp / "student"
    for folder in (course / "source", exchange, home):
        folder.mkdir(parents=True)
    shutil.copytree(ROOT / "course" / "source" / LESSON, course / "source" / LESSON)
    shutil.copy(ROOT / "course" / "nbgrader_config.py", course)
    extra = [f"--Exchange.root={exchange}"]
    db = [f"--CourseDirectory.db_url={db_url}"] if db_url else []
    teacher = dict(env, AUTOGRADER_SECRET=SECRET)

    nbgrader(course, teacher, "generate_assignment", LESSON, "--force", *db)
    nbgrader(course, teacher, "release_assignment", LESSON, "--force", *extra, *db)
    nbgrader(home, env, "fetch_assignment", LESSON, "--course=minidl", *extra)
    student_work(home / LESSON / f"{LESSON}.ipynb")
    nbgrader(home, env, "submit", LESSON, "--course=minidl", *extra)
    nbgrader(course, teacher, "collect", LESSON, *extra, *db)
    log = nbgrader(course, teacher, "autograde", LESSON, "--force", *db)
    assert "[ERROR]" not in log, log[-3000:]
    nbgrader(course, teacher, "generate_feedback", LESSON, "--force", *db)
    nbgrader(course, teacher, "export", f"--to={tmp / 'export.csv'}", *db)

    out = tmp / "batch.csv"
    proc = subprocess.run([sys.executable, "-m", "autograder", "batch", str(course), "--out", str(out),
                           "--gradebook", db_url or f"sqlite:///{course / 'gradebook.db'}"],
                          cwd=ROOT, env=teacher, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    student = next((course / "submitted").iterdir()).name
    feedback = next((course / "feedback" / student / LESSON).glob("*.html")).read_text()
    with open(tmp / "export.csv") as f:
        exported = [row for row in csv.DictReader(f) if row["assignment"] == LESSON]
    return {"student": student, "feedback": feedback, "exported": exported, "batch": out, "db":
            db_url or f"sqlite:///{course / 'gradebook.db'}", "stdout": proc.stdout}


def check_loop(result: dict) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(result["db"]) as gb:
        submission = gb.find_submission(LESSON, result["student"])
        assert submission.max_score == 10
        nb = gb.find_submission_notebook(LESSON, LESSON, result["student"])
        scores = {g.name: g.score for g in nb.grades}
        # the batch wrote its own (tamper-proof) scores as manual scores over nbgrader's auto scores
        assert scores["test_contiguous_strides"] == 2 and scores["test_patchify"] == 3
        assert scores["test_to_device"] == 0 and 0 < scores["test_one_hot"] < 3
        assert 5 < submission.score < 10  # partial credit
    assert "BEGIN HIDDEN TESTS" not in result["feedback"] and "hidden=True" not in result["feedback"]
    assert "PASSED" in result["feedback"] and "NOT YET" in result["feedback"]
    assert len(result["exported"]) == 1 and 5 < float(result["exported"][0]["score"]) < 10
    report = json.loads((result["batch"].with_suffix("") / f"{result['student']}.json").read_text())
    assert report["score"] == pytest.approx(submission.score)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A PostgreSQL server of Debian's package, on a loopback port, for the test's duration."""
    if not POSTGRES:
        pytest.skip("no PostgreSQL server binary (/usr/lib/postgresql/*/bin/postgres): apt-get install postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("the PostgreSQL server is installed but SQLAlchemy's driver is not: pip install 'psycopg[binary]'")
    bin_dir = pathlib.Path(POSTGRES[-1]).parent
    data = pathlib.Path(tempfile.mkdtemp(prefix="minidl-pg-"))
    kwargs = {}
    if os.geteuid() == 0:  # the server refuses to run as root
        import pwd

        user = pwd.getpwnam("postgres" if "postgres" in {p.pw_name for p in pwd.getpwall()} else "nobody")
        os.chown(data, user.pw_uid, user.pw_gid)
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    subprocess.run([bin_dir / "initdb", "-D", data / "db", "-U", "minidl", "--auth=trust"], check=True,
                   capture_output=True, cwd=data, **kwargs)
    port = free_port()
    server = subprocess.Popen([bin_dir / "postgres", "-D", data / "db", "-p", str(port), "-k", data,
                               "-c", "listen_addresses=127.0.0.1"], cwd=data, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, **kwargs)
    try:
        for _ in range(100):
            if subprocess.run([bin_dir / "pg_isready", "-h", "127.0.0.1", "-p", str(port)],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        yield f"postgresql+psycopg://minidl@127.0.0.1:{port}/postgres"
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.slow
def test_nbgrader_course_loop_with_postgresql(tmp_path, tool_env, postgres_url):
    check_loop(course_loop(tmp_path, tool_env, postgres_url))
