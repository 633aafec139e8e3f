"""Hostile and broken submissions: every one gets the right verdict, the grader never crashes,
and no run goes past its limits by more than a few seconds.

Each test builds a small lesson-01 notebook (only the exercises it needs, the others are
reported missing), grades it with tight limits, and checks the verdict of each exercise. The
expected values are computed once (public and hidden) and shared, as ``batch`` does.
"""

from __future__ import annotations

import inspect
import json
import os
import pathlib
import subprocess
import sys
import time

import nbformat
import pytest

import minidl.tensors
from autograder import confine, grading, policy
from autograder.confine import PIDS_CGROUP, release, sandbox_user

from .conftest import ROOT

SECRET = "s3cr3t-hostile-seed"
LIMITS = grading.Limits(cell=8, notebook=60, memory=6000, processes=64)
SLACK = 10  # seconds a run may exceed the limit it hits (kernel start, process teardown)
BUDGET = 60  # seconds an exercise check may take at most here (lesson 01: a few seconds each; see policy.budget)
NAMES = ("contiguous_strides", "one_hot", "to_device", "patchify")
GOOD = {name: inspect.getsource(getattr(minidl.tensors, name)) for name in NAMES}
HEADER = "import copy\nfrom typing import Any\nimport torch\n"
WRONG_ONE_HOT = "def one_hot(labels, num_classes):\n    return torch.zeros(*labels.shape, num_classes)\n"


@pytest.fixture(scope="module")
def expected():
    os.environ["AUTOGRADER_SECRET"] = SECRET
    try:
        yield grading.expected_values("01_tensors", hidden=True)
    finally:
        os.environ.pop("AUTOGRADER_SECRET", None)


@pytest.fixture(scope="module")
def wrong_score(tmp_path_factory, expected):
    """The score of WRONG_ONE_HOT when nobody tampers with anything."""
    results, _ = grade(tmp_path_factory.mktemp("baseline"), expected, build(WRONG_ONE_HOT))
    return results["one_hot"].score


def build(*cells, lesson: str | None = "01_tensors") -> nbformat.NotebookNode:
    """A notebook: the set-up cell, then ``cells`` (source strings, or ready-made cells)."""
    setup = nbformat.v4.new_code_cell(HEADER, metadata={"minidl": {"role": "setup"}})
    made = [c if isinstance(c, dict) else nbformat.v4.new_code_cell(c) for c in cells]
    nb = nbformat.v4.new_notebook(cells=[setup, *made])
    if lesson:
        nb.metadata["minidl"] = {"lesson": lesson}
    return nb


def grade(tmp_path, expected, nb_or_text, limits=LIMITS, name="submission.ipynb"):
    """Grade, and check the run stayed within its limits; returns {exercise name: result} and the report."""
    path = tmp_path / name
    path.write_text(nb_or_text if isinstance(nb_or_text, str) else nbformat.writes(nb_or_text))
    start = time.monotonic()
    report = grading.grade_notebook(path, limits, hidden=True, expected=expected)
    elapsed = time.monotonic() - start
    assert report.seconds <= limits.notebook + SLACK, report.problems
    checked = sum(1 for r in report.results if r.status not in ("missing",))
    assert elapsed <= limits.notebook + checked * BUDGET + 2 * SLACK
    json.dumps(report.to_dict())  # the public JSON report can always be written
    return {r.exercise.split(".")[1]: r for r in report.results}, report


def full(result) -> bool:
    return result.passed and result.score == result.max_score


# -- broken notebooks: no kernel needed, fast ---------------------------------------------------


@pytest.mark.parametrize("text, problem", [
    ('{"cells": [{"cell_type": "code", "source": "def one_hot(', "JSON is broken"),
    ("", "JSON is broken"),
    ("[1, 2, 3]", "not a notebook"),
    ('{"nbformat": 4, "metadata": {}}', "not a notebook"),
])
def test_unreadable_notebook_gets_a_verdict_for_every_exercise(tmp_path, expected, text, problem):
    results, report = grade(tmp_path, expected, text, name="doe_jane_01_tensors.ipynb")
    assert any(problem in p for p in report.problems), report.problems
    assert list(results) == list(NAMES)
    assert all(r.status == "error" and r.score == 0 for r in results.values())


def test_notebook_of_no_known_lesson_is_reported_not_crashed(tmp_path, expected):
    _, report = grade(tmp_path, expected, build(GOOD["one_hot"], lesson=None), name="homework.ipynb")
    assert report.lesson is None and report.results == []
    assert any("which lesson" in p for p in report.problems)


def test_cli_reports_a_corrupt_notebook_without_a_traceback(tmp_path):
    path = tmp_path / "01_tensors.ipynb"
    path.write_text('{"cells": [')
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(path), "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr + proc.stdout
    report = json.loads(out.read_text())
    assert report["score"] == 0 and len(report["exercises"]) == len(NAMES)
    assert "JSON is broken" in proc.stdout


# -- broken notebooks that still run -------------------------------------------------------------


@pytest.mark.slow
def test_old_nbformat_changed_cells_duplicate_ids_and_extra_cells_are_repaired(tmp_path, expected):
    solution = {"nbgrader": {"grade": False, "grade_id": "one_hot", "locked": False, "schema_version": 3,
                             "solution": True, "task": False}}
    test_meta = {"nbgrader": {"grade": True, "grade_id": "test_one_hot", "locked": True, "points": 3,
                              "schema_version": 3, "solution": False, "task": False}}
    nb = build(
        nbformat.v4.new_markdown_cell(GOOD["one_hot"], metadata=solution),      # a learner turned it into markdown
        nbformat.v4.new_code_cell("check('tensors.one_hot', one_hot)", metadata=test_meta),
        nbformat.v4.new_code_cell("check('tensors.one_hot', one_hot)", metadata=test_meta),  # copied cell
        nbformat.v4.new_markdown_cell("my own notes"),
        nbformat.v4.new_code_cell("from autograder import check\nnotes = [1, 2]"),  # extra cells
        "def onehot_copy(x):\n    return x\n",
        GOOD["contiguous_strides"],
    )
    v3 = nbformat.convert(nb, 3)  # and saved by an old Jupyter as nbformat 3
    results, report = grade(tmp_path, expected, nbformat.writes(v3, version=3))
    assert any("converted from nbformat 3" in r for r in report.repairs)
    assert any("turned into markdown" in r for r in report.repairs)
    assert any("'test_one_hot' appears in 2 cells" in r for r in report.repairs)
    assert full(results["one_hot"]) and full(results["contiguous_strides"])
    assert results["patchify"].status == "missing"


@pytest.mark.slow
def test_renamed_function_and_syntax_error_cost_only_their_exercise(tmp_path, expected):
    renamed = GOOD["one_hot"].replace("def one_hot(", "def onehot(")
    broken = GOOD["patchify"].replace("B, C, H, W = images.shape", "B, C, H, W = = images.shape")
    results, _ = grade(tmp_path, expected, build(renamed, broken, GOOD["to_device"]))
    assert results["one_hot"].status == "missing" and "onehot" in results["one_hot"].note
    assert results["patchify"].status == "missing"
    assert full(results["to_device"])


# -- the learner's kernel: hangs, crashes, memory, output, processes ------------------------------


ENDLESS = "while True:\n    pass"
STUBBORN = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n" + ENDLESS   # needs a new kernel


@pytest.mark.slow
@pytest.mark.parametrize("endless", [ENDLESS, STUBBORN], ids=["endless cell", "ignores interrupts"])
def test_endless_cell_is_stopped_and_the_rest_still_runs(tmp_path, expected, endless):
    results, report = grade(tmp_path, expected, build(GOOD["one_hot"], endless, GOOD["patchify"]))
    assert any("limit" in p for p in report.problems)
    assert full(results["one_hot"]) and full(results["patchify"])


@pytest.mark.slow
def test_kernel_that_dies_is_restarted_for_the_remaining_exercises(tmp_path, expected):
    results, report = grade(tmp_path, expected, build(GOOD["one_hot"], "import os\nos._exit(1)", GOOD["patchify"]))
    assert any("kernel died" in p for p in report.problems)
    assert full(results["one_hot"]) and full(results["patchify"])


@pytest.mark.slow
def test_kernel_that_eats_memory_hits_its_limit(tmp_path, expected):
    greedy = "hoard = []\nwhile True:\n    hoard.append(bytearray(10**8))"
    limits = grading.Limits(**{**LIMITS.__dict__, "memory": 5000})
    results, _ = grade(tmp_path, expected, build(greedy, "del hoard", GOOD["one_hot"]), limits)
    assert full(results["one_hot"])


@pytest.mark.slow
def test_megabytes_of_output_are_counted_not_kept(tmp_path, expected):
    flood = "for _ in range(30):\n    print('x' * 10**6)"
    results, report = grade(tmp_path, expected, build(flood, GOOD["one_hot"]))
    assert any("million characters" in p for p in report.problems)
    assert full(results["one_hot"])


@pytest.mark.slow
def test_fork_bomb_is_bounded_and_cleaned_up(tmp_path, expected):
    bomb = ("import os, time\nchildren = 0\nfor _ in range(1000):\n    try:\n        if os.fork() == 0:\n"
            "            time.sleep(120)\n            os._exit(0)\n        children += 1\n    except OSError:\n"
            "        break\nassert children < 1000")
    before = set(PIDS_CGROUP.glob("minidl-*"))
    results, _ = grade(tmp_path, expected, build(bomb, GOOD["one_hot"]))
    assert full(results["one_hot"])
    if os.geteuid() == 0 and sandbox_user() is None and PIDS_CGROUP.is_dir():  # the bomb's cgroup
        for folder in set(PIDS_CGROUP.glob("minidl-*")) - before:
            alive = (folder / "cgroup.procs").read_text().split() if folder.exists() else []
            assert not alive, f"processes left alive in {folder}"


# -- one exercise's code hangs, crashes or eats memory: that exercise only -----------------------


@pytest.mark.slow
@pytest.mark.parametrize("body, status", [
    ("while True:\n        pass", "checked"),                                   # each group's first case times out
    ("import signal\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n        pass", "error"),  # the budget
    ("return bytearray(10**11)", "checked"),                                   # MemoryError is its verdict
    ("import os\n    os._exit(3)", "error"),
    ("import ctypes\n    ctypes.string_at(0)", "error"),                        # a segfault
])
def test_one_bad_exercise_costs_that_exercise_only(tmp_path, expected, body, status):
    bad = f"def one_hot(labels, num_classes):\n    {body}\n"
    results, _ = grade(tmp_path, expected, build(bad, GOOD["contiguous_strides"]))
    assert results["one_hot"].score == 0 and results["one_hot"].status == status, results["one_hot"].message
    assert full(results["contiguous_strides"])


# -- tampering with the checker, the reference or PyTorch in the kernel -------------------------


@pytest.mark.slow
@pytest.mark.parametrize("patch", [
    "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
    "torch.testing.assert_close = lambda *a, **k: None\ntorch.Tensor.__eq__ = lambda *a: True",
    "import autograder, autograder.judge, autograder.attempt\nautograder.check = lambda *a, **k: 3.0\n"
    "autograder.judge.judge = None\nautograder.attempt.run = None",
    "import minidl.tensors\nminidl.tensors.one_hot = one_hot",
    "import numpy\nnumpy.allclose = lambda *a, **k: True\nnumpy.testing.assert_allclose = lambda *a, **k: None",
])
def test_monkeypatching_in_the_kernel_changes_nothing(tmp_path, expected, patch, wrong_score):
    results, _ = grade(tmp_path, expected, build(WRONG_ONE_HOT, patch))
    assert results["one_hot"].score == wrong_score < 3 and results["one_hot"].status == "checked"


@pytest.mark.slow
def test_replacing_the_graders_code_inside_the_checker_scores_zero(tmp_path, expected):
    sneaky = GOOD["one_hot"].replace('    """labels', '    import autograder.judge\n    autograder.judge.verdict = '
                                     'lambda *a: None\n    """labels')
    results, _ = grade(tmp_path, expected, build(sneaky))
    assert results["one_hot"].score == 0 and "replaced the grader's own code" in results["one_hot"].note


# -- forbidden built-ins by another route ------------------------------------------------------


VALIDATE = ("    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):\n"
            "        raise ValueError('bad label')\n")


@pytest.mark.slow
@pytest.mark.parametrize("route", [
    "from torch.nn.functional import one_hot as oh\ndef one_hot(labels, num_classes):\n" + VALIDATE
    + "    return oh(labels, num_classes).float()\n",
    "def one_hot(labels, num_classes):\n" + VALIDATE + "    return torch._C._nn.one_hot(labels, num_classes).float()\n",
    "def one_hot(labels, num_classes):\n    import torch\n" + VALIDATE
    + "    return torch.ops.aten.one_hot(labels, num_classes).float()\n",
    "from minidl.tensors import one_hot as reference\ndef one_hot(labels, num_classes):\n"
    "    return reference(labels, num_classes)\n",
    "def one_hot(labels, num_classes):\n    import importlib.util, minidl\n"
    "    spec = importlib.util.spec_from_file_location('copy_of_tensors', minidl.__path__[0] + '/tensors.py')\n"
    "    module = importlib.util.module_from_spec(spec)\n    spec.loader.exec_module(module)\n"
    "    return module.one_hot(labels, num_classes)\n",
    "import types, minidl.tensors\nref = minidl.tensors.one_hot\n"
    "one_hot = types.FunctionType(ref.__code__, ref.__globals__, 'one_hot')\n",
    "import importlib, minidl.tensors\ndef one_hot(labels, num_classes):\n"
    "    return importlib.reload(minidl.tensors).one_hot(labels, num_classes)\n",
])
def test_forbidden_built_in_by_another_route_is_caught(tmp_path, expected, route):
    results, _ = grade(tmp_path, expected, build(route))
    assert results["one_hot"].status == "forbidden", results["one_hot"].message
    assert results["one_hot"].score == 0


@pytest.mark.slow
def test_forbidden_aten_operator_for_patches_is_caught(tmp_path, expected):
    aten = ("def patchify(images, patch):\n    B, C, H, W = images.shape\n    if H % patch or W % patch:\n"
            "        raise ValueError('no')\n    cols = torch._C._nn.im2col(images, (patch, patch), (1, 1), (0, 0), "
            "(patch, patch))\n    return cols.transpose(1, 2)\n")
    results, _ = grade(tmp_path, expected, build(aten))
    assert results["patchify"].status == "forbidden"


# -- the secret ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_secret_never_reaches_learner_code(tmp_path, expected, monkeypatch):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    monkeypatch.setenv("AUTOGRADER_SECRET", SECRET)
    monkeypatch.setenv("AUTOGRADER_SECRET_FILE", str(secret_file))
    if os.geteuid() != 0:
        pytest.skip("learner code runs as the grader's own user, who can read the secret file")
    look = (  # everything a process can try: its environment, the secret file, every /proc/*/environ
        "def look():\n    import os\n    found = [k + '=' + v for k, v in os.environ.items() if k.startswith('AUTOGRADER_S')]\n"
        f"    try:\n        found.append(open({str(secret_file)!r}).read())\n    except OSError as e:\n"
        "        found.append(type(e).__name__)\n    for p in os.listdir('/proc'):\n        try:\n"
        "            env = open('/proc/' + p + '/environ', 'rb').read().decode(errors='replace')\n"
        "        except OSError:\n            continue\n"
        "        found += [v for v in env.split(chr(0)) if v.startswith('AUTOGRADER_SECRET')]\n    return found\n")
    spy = look + "SEEN = look()\ndef one_hot(labels, num_classes):\n    raise ValueError(repr((SEEN, look())))\n"
    limits = grading.Limits(**{**LIMITS.__dict__, "hide": policy.secret_files()})
    results, report = grade(tmp_path, expected, build(spy), limits)
    message = results["one_hot"].message
    assert "ValueError" in message and "AUTOGRADER" not in message, message  # kernel and worker saw nothing
    assert SECRET not in json.dumps(report.to_dict())


# -- the network -----------------------------------------------------------------------------------

REACH = """
def reach(hosts, port):
    import socket
    outcome = []
    for host in hosts:
        try:
            socket.create_connection((host, port), timeout=3).close()
            outcome.append(host + ' connected')
        except OSError as e:
            outcome.append(host + ' ' + type(e).__name__)
    return outcome
"""


@pytest.fixture
def listener():
    """A TCP listener on every address of this host; yields (addresses, port, connections accepted)."""
    import socket
    import threading

    server = socket.create_server(("0.0.0.0", 0))
    accepted: list[str] = []

    def serve():
        while True:
            try:
                conn, peer = server.accept()
            except OSError:
                return
            accepted.append(peer[0])
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # the outward address (nothing is sent)
        try:
            probe.connect(("10.255.255.255", 1))
            outward = probe.getsockname()[0]
        except OSError:
            outward = "127.0.0.1"
    try:
        yield sorted({"127.0.0.1", outward}), server.getsockname()[1], accepted
    finally:
        server.close()


def test_the_listener_is_reachable_from_an_unconfined_process(listener):
    """The control: the same code, not confined, does connect (so the test below can fail)."""
    hosts, port, accepted = listener
    scope: dict = {}
    exec(REACH, scope)
    assert all(o.endswith("connected") for o in scope["reach"](hosts, port))
    deadline = time.monotonic() + 5
    while len(accepted) < len(hosts) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(accepted) == len(hosts)


@pytest.mark.slow
def test_learner_code_cannot_reach_the_network_in_the_kernel_or_the_checker(tmp_path, expected, listener):
    hosts, port, accepted = listener
    if not confine.offline_possible():
        pytest.skip("this machine lets the grader make no network namespace (the report says so)")
    spy = REACH + (f"KERNEL = reach({hosts!r}, {port})\n"
                   "def one_hot(labels, num_classes):\n"
                   f"    raise ValueError(repr((KERNEL, reach({hosts!r}, {port}))))\n")
    results, report = grade(tmp_path, expected, build(spy))
    message = results["one_hot"].message
    assert "ValueError" in message and "connected" not in message, message  # kernel and checker alike
    assert message.count("Error") >= 2 * len(hosts), message
    assert accepted == [] and not any("network" in p for p in report.problems), (accepted, report.problems)


@pytest.mark.slow
def test_a_good_submission_scores_full_marks_with_hidden_cases(tmp_path, expected):
    results, report = grade(tmp_path, expected, build(*GOOD.values()))
    assert report.score == report.max_score == 10 and report.hidden
    assert all(r.hidden_cases > 0 for r in results.values())
    assert not report.problems


def test_limits_are_enforced_on_the_confined_process():
    code = "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0], resource.getrlimit(resource.RLIMIT_CPU)[0])"
    proc = subprocess.Popen(grading.worker_confinement(LIMITS, 25).prefix() + [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=pathlib.Path("/"))
    out, _ = proc.communicate(timeout=60)
    release(proc.pid)
    memory, cpu = map(int, out.split())
    assert memory == LIMITS.memory * 1024 * 1024 and cpu == grading.worker_confinement(LIMITS, 25).cpu


def test_a_machine_without_network_namespaces_is_named_in_the_report(tmp_path, expected, monkeypatch):
    monkeypatch.setattr(grading, "offline_possible", lambda: False)
    _, report = grade(tmp_path, expected, build(lesson="01_tensors"))
    assert any("could reach the network" in p for p in report.problems), report.problems
