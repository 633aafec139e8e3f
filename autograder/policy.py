"""The grading policy, in one place: every command asks here.

- **The secret** (the seed of the hidden cases): ``$AUTOGRADER_SECRET``, else the file named by
  ``--secret-file`` or ``$AUTOGRADER_SECRET_FILE``, else the course's ``.autograder_secret`` next to
  its ``nbgrader_config.py`` (the course folder holding the working directory, else this
  repository's ``course/``). The notebook check, ``grade``, ``batch``, ``progress`` and nbgrader
  (through ``course/nbgrader_config.py``) all find it the same way.
- **What learner processes see**: ``learner_env`` strips every ``AUTOGRADER_*`` variable, and
  ``secret_files`` lists the files they must not read.
- **The limits**: ``Limits``, the defaults of the CLI's flags and of nbgrader's cell timeout, and
  ``budget``, each exercise's time sized from its reference's measured cost.
- **What a grade depends on**: ``grader_digest``, a digest of everything that decides a grade (the
  whole grader, minidl, the catalogue, PyTorch's version), in the key of every stored result.

This module imports nothing heavy: nbgrader's configuration file reads it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib
from dataclasses import dataclass, field

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECRET_ENV = "AUTOGRADER_SECRET"
SECRET_FILE_ENV = "AUTOGRADER_SECRET_FILE"
SECRET_NAME = ".autograder_secret"  # in the course folder, next to nbgrader_config.py
LEARNER_STRIPPED = "AUTOGRADER_"  # every variable with this prefix is removed from learner processes
# Set in the kernel that `grade` runs a notebook in: the notebook's own checks are deferred there,
# because the grader checks every exercise in processes of its own.
COLLECT_ENV = "AUTOGRADER_COLLECT"


# -- the secret -------------------------------------------------------------------------------

def course_folders(start: pathlib.Path | None = None) -> list[pathlib.Path]:
    """Course folders (holding ``nbgrader_config.py``) that contain ``start`` (default: the
    working directory) or sit in it as ``course/``, nearest first; then this repository's."""
    start = (start or pathlib.Path.cwd()).resolve()
    found = []
    for folder in (start, *start.parents):
        for candidate in (folder, folder / "course"):
            if (candidate / "nbgrader_config.py").is_file() and candidate not in found:
                found.append(candidate)
    if ROOT / "course" not in found:
        found.append(ROOT / "course")
    return found


def secret_file() -> pathlib.Path | None:
    """The file the secret is read from when no ``$AUTOGRADER_SECRET`` is set, if there is one."""
    named = os.environ.get(SECRET_FILE_ENV)
    if named:
        return pathlib.Path(named).resolve()
    for course in course_folders():
        if (course / SECRET_NAME).is_file():
            return course / SECRET_NAME
    return None


def use_secret_file(path: str | os.PathLike) -> None:
    """``--secret-file PATH``: read the secret from ``path`` (in this process and its children)."""
    path = pathlib.Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"the secret file {path} does not exist")
    os.environ[SECRET_FILE_ENV] = str(path)


@dataclass(frozen=True)
class Secret:
    """The instructor's secret and where it came from (``value`` None: public cases only)."""

    value: str | None
    source: str

    def __bool__(self) -> bool:
        return self.value is not None

    def banner(self) -> str:
        """The first line of every grading run."""
        if self.value is None:
            return ("PUBLIC CASES ONLY: no instructor secret found ($AUTOGRADER_SECRET, --secret-file, "
                    f"or {SECRET_NAME} next to the course's nbgrader_config.py); hidden cases are not counted")
        return f"hidden cases included (secret from {self.source})"


def secret() -> Secret:
    """The instructor's secret, found the same way by every command (see the module's doc)."""
    if os.environ.get(SECRET_ENV):
        return Secret(os.environ[SECRET_ENV], f"${SECRET_ENV}")
    path = secret_file()
    if path is not None and path.is_file():
        try:
            value = path.read_text().strip()
        except OSError:
            value = ""
        if value:
            return Secret(value, str(path))
    return Secret(None, "none")


def secret_files() -> tuple[str, ...]:
    """Every file that may hold the secret: learner processes must not read them."""
    candidates = [os.environ.get(SECRET_FILE_ENV)] + [str(c / SECRET_NAME) for c in course_folders()]
    return tuple(dict.fromkeys(str(pathlib.Path(p).resolve()) for p in candidates if p and os.path.isfile(p)))


def learner_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) without the grader's variables, for learner processes."""
    env = dict(os.environ if env is None else env)
    return {k: v for k, v in env.items() if not k.startswith(LEARNER_STRIPPED)}


# -- limits ------------------------------------------------------------------------------------

CELL_SECONDS = 120  # per notebook cell: `grade`, `batch` and nbgrader's autograde alike
NOTEBOOK_SECONDS = 900
MEMORY_MB = 8192


@dataclass
class Limits:
    """What learner code may use. Seconds per notebook cell and for the whole notebook; memory
    (address space) in MB for the kernel and for each checking process; processes and threads
    it may start; files it must not read. Each exercise's time comes from ``budget``."""

    cell: float = CELL_SECONDS
    notebook: float = NOTEBOOK_SECONDS
    memory: int = MEMORY_MB
    processes: int = 256
    hide: tuple[str, ...] = field(default_factory=secret_files)


# A case may take this many times the reference's time on it, plus CASE_GRACE seconds (Python
# loops, a first call that compiles or allocates); an exercise gets the sum over its cases plus
# EXERCISE_GRACE (loading PyTorch's kernels, unpickling the learner's code). An endless loop is
# stopped after one case's limit; the rest of that case's group gets its verdict without running.
CASE_FACTOR = 200
CASE_GRACE = 2.0
FIRST_CASE_GRACE = 5.0  # the first case also pays its process's first calls (lazy imports: seconds on a loaded machine)
EXERCISE_GRACE = 5.0
SPEED_REPEATS = 11  # a speed case may take this many times its limit more, to time both sides (runner.time_ratio)
TRAINED_CASE_SECONDS = 30.0  # a trained model's case (no reference to time): one forward pass over held-out data


def case_seconds(reference_seconds: float) -> float:
    """The time one case may take, from the reference's time on it."""
    return round(CASE_GRACE + CASE_FACTOR * max(reference_seconds, 0.0), 2)


def budget(case_limits: list[float], speed_cases: int = 0) -> float:
    """The time one exercise's check may take: every case's limit, and the speed cases' timings."""
    slowest = max(case_limits, default=CASE_GRACE)
    return round(EXERCISE_GRACE + FIRST_CASE_GRACE + sum(case_limits) + speed_cases * SPEED_REPEATS * slowest, 1)


# -- what a grade depends on -----------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def grader_digest() -> str:
    """A digest of everything that decides a grade: the grader's code (all of it, catalogue
    included), minidl, and PyTorch's version. Stored results and caches are keyed by it."""
    import torch

    from .course import LOADED  # an instructor's own declaration files, once the catalogue is loaded

    h = hashlib.sha256(torch.__version__.encode())
    for path in sorted([*ROOT.glob("autograder/**/*.py"), *ROOT.glob("minidl/**/*.py")]):
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes())
    for path in LOADED:
        h.update(str(path).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:20]
