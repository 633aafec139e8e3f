"""A class as a TA grades it (issue 18): 32 submissions of lessons 01 and 02, graded by
``batch --workers 2``, every verdict as expected; a run killed midway and resumed gives the
grades of the uninterrupted one.

The class: the instructor's own notebooks, the reference answers, other correct answers (one of
them the slower-but-allowed difference cube of pairwise_sq_dists), wrong ones, stubs, a forbidden
built-in, a function that loops forever, one that kills the process checking it, and an empty
notebook. Every submission is graded for real, each in its own confined kernel and worker.
"""

from __future__ import annotations

import inspect

import nbformat
import pytest

import minidl.broadcasting

from .conftest import ROOT
from .test_batch import kill_after_the_first, read_csv, run_batch
from .test_hostile import GOOD, WRONG_ONE_HOT, build

SECRET = "class-test-secret"
GOOD2 = {name: inspect.getsource(getattr(minidl.broadcasting, name))
         for name in ("broadcast_shapes", "sum_to_shape", "pairwise_sq_dists", "softmax")}
IMPORTS2 = "from collections.abc import Sequence\n"

LOOPS = "def {name}(*args, **kwargs):\n    while True:\n        pass\n"
CRASHES = "def {name}(*args, **kwargs):\n    import os\n    os._exit(3)\n"
STUB = "def {name}(*args, **kwargs):\n    raise NotImplementedError()\n"
ONE_HOT_INDEXED = ("def one_hot(labels, num_classes):\n"
                   "    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):\n"
                   "        raise ValueError('label out of range')\n"
                   "    return (labels[..., None] == torch.arange(num_classes, device=labels.device)).float()\n")
STRIDES_LOOP = ("def contiguous_strides(shape):\n    strides, step = [], 1\n    for size in reversed(tuple(shape)):\n"
                "        strides.insert(0, step)\n        step *= max(size, 1)\n    return tuple(strides)\n")
ONE_HOT_FORBIDDEN = ("def one_hot(labels, num_classes):\n"
                     "    return torch.nn.functional.one_hot(labels, num_classes).float()\n")
DISTS_CUBE = "def pairwise_sq_dists(x, y):\n    return ((x[:, None] - y[None]) ** 2).sum(-1)\n"
DISTS_DOUBLE_LOOP = ("def pairwise_sq_dists(x, y):\n"
                     "    out = torch.empty(x.shape[0], y.shape[0], dtype=x.dtype, device=x.device)\n"
                     "    for i in range(x.shape[0]):\n        for j in range(y.shape[0]):\n"
                     "            out[i, j] = ((x[i] - y[j]) ** 2).sum()\n    return out\n")
DISTS_CDIST = "def pairwise_sq_dists(x, y):\n    return torch.cdist(x, y) ** 2\n"
SOFTMAX_UNSTABLE = "def softmax(x, dim=-1):\n    e = x.exp()\n    return e / e.sum(dim=dim, keepdim=True)\n"
SHAPES_FORBIDDEN = "def broadcast_shapes(*shapes):\n    return tuple(torch.broadcast_shapes(*shapes))\n"


def lesson01(**replaced: str):
    return build(*{**GOOD, **replaced}.values())


def lesson02(**replaced: str):
    return build(IMPORTS2, *{**GOOD2, **replaced}.values(), lesson="02_broadcasting")


def every(names, template: str) -> dict[str, str]:
    return {n: template.format(name=n) for n in names}


def instructor(key: str) -> str:
    return (ROOT / "course" / "source" / key / f"{key}.ipynb").read_text()


# (how many hand it in, the notebook, what each exercise must get: "full", "partial", "zero", or a
# status: "not_implemented", "missing", "forbidden", "error"). Exercises not named get "full".
FULL = {}
LESSON01 = [
    (1, instructor("01_tensors"), FULL),
    (3, lesson01(), FULL),
    (1, lesson01(one_hot=ONE_HOT_INDEXED), FULL),
    (1, lesson01(contiguous_strides=STRIDES_LOOP), FULL),
    (1, lesson01(one_hot=ONE_HOT_INDEXED, contiguous_strides=STRIDES_LOOP), FULL),
    (2, lesson01(one_hot=WRONG_ONE_HOT), {"one_hot": "partial"}),
    (2, lesson01(**every(GOOD, STUB)), dict.fromkeys(GOOD, "not_implemented")),
    (1, lesson01(one_hot=LOOPS.format(name="one_hot")), {"one_hot": "zero"}),
    (1, lesson01(patchify=CRASHES.format(name="patchify")), {"patchify": "error"}),
    (1, lesson01(one_hot=ONE_HOT_FORBIDDEN), {"one_hot": "forbidden"}),
    (2, build(), dict.fromkeys(GOOD, "missing")),
]
LESSON02 = [
    (1, instructor("02_broadcasting"), FULL),
    (3, lesson02(), FULL),
    (2, lesson02(pairwise_sq_dists=DISTS_CUBE), FULL),
    (1, lesson02(pairwise_sq_dists=DISTS_DOUBLE_LOOP), {"pairwise_sq_dists": "partial"}),
    (2, lesson02(softmax=SOFTMAX_UNSTABLE), {"softmax": "partial"}),
    (2, lesson02(**every(GOOD2, STUB)), dict.fromkeys(GOOD2, "not_implemented")),
    (1, lesson02(softmax=LOOPS.format(name="softmax")), {"softmax": "zero"}),
    (1, lesson02(sum_to_shape=CRASHES.format(name="sum_to_shape")), {"sum_to_shape": "error"}),
    (1, lesson02(broadcast_shapes=SHAPES_FORBIDDEN), {"broadcast_shapes": "forbidden"}),
    (2, lesson02(pairwise_sq_dists=DISTS_CDIST), {"pairwise_sq_dists": "forbidden"}),
]


def hand_in(folder) -> dict[tuple[str, str], str]:
    """Write the class into ``folder`` as an LMS names the files; {(student, exercise): expected verdict}."""
    expected, n = {}, 0
    for key, plan in (("01_tensors", LESSON01), ("02_broadcasting", LESSON02)):
        for copies, nb, verdicts in plan:
            for _ in range(copies):
                n += 1
                student = f"student{n:02d}_{100 + n}"
                text = nb if isinstance(nb, str) else nbformat.writes(nb)
                (folder / f"{student}_{9000 + n}_{key}.ipynb").write_text(text)
                names = GOOD if key == "01_tensors" else GOOD2
                for name in names:
                    expected[(student, name)] = verdicts.get(name, "full")
    return expected


def verdict(row: dict) -> str:
    score, top = float(row["score"]), float(row["max_score"])
    if row["status"] != "checked":
        return row["status"]
    return "full" if score == top else "zero" if score == 0 else "partial"


@pytest.mark.slow
def test_a_class_of_32_gets_every_verdict_and_a_killed_run_resumes_to_the_same_grades(tmp_path, tool_env):
    folder = tmp_path / "downloads"
    folder.mkdir()
    expected = hand_in(folder)
    assert len({student for student, _ in expected}) == 32
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = dict(tool_env, AUTOGRADER_SECRET=SECRET, TMPDIR=str(temporary))

    whole = tmp_path / "whole.csv"
    proc = run_batch(folder, whole, env, workers=2, cell_timeout=60)
    _, stderr = proc.communicate(timeout=1800)
    assert proc.returncode == 0, stderr[-3000:]
    rows = read_csv(whole)
    got = {(r["student"], r["exercise"].split(".")[1]): verdict(r) for r in rows}
    wrong = {k: (v, got.get(k)) for k, v in expected.items() if got.get(k) != v}
    assert not wrong, wrong
    messages = {(r["student"], r["exercise"].split(".")[1]): r["message"] for r in rows}
    for (student, name), v in expected.items():
        if v == "error":
            assert "crashed the process that checks it" in messages[(student, name)]
        if v == "zero" and name in ("one_hot", "softmax"):
            assert "did not finish within" in messages[(student, name)]

    resumed = tmp_path / "resumed.csv"
    stored = kill_after_the_first(run_batch(folder, resumed, env, workers=2, cell_timeout=60), tmp_path / "resumed", 10)
    assert 10 <= stored < 32
    proc = run_batch(folder, resumed, env, workers=2, cell_timeout=60)
    _, stderr = proc.communicate(timeout=1800)
    assert proc.returncode == 0, stderr[-3000:]
    assert f"{stored} already graded" in stderr
    grades = {(r["student"], r["exercise"]): (r["score"], r["passed"]) for r in rows}
    assert {(r["student"], r["exercise"]): (r["score"], r["passed"]) for r in read_csv(resumed)} == grades
    assert not list(temporary.glob("minidl-*"))  # the killed run's temporary folders are gone too
