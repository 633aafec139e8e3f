"""nbgrader configuration for the minidl course (read by every nbgrader command run in course/)."""

import importlib.util
import os
import pathlib
import sys

c = get_config()  # noqa: F821 (provided by nbgrader)

here = pathlib.Path(__file__).resolve().parent
# The grading policy (secret, limits) lives in autograder/policy.py; loaded by its path, since
# importing the autograder package would load PyTorch into every nbgrader command.
_package = importlib.util.find_spec("autograder")  # found, not imported
_spec = importlib.util.spec_from_file_location(
    "minidl_policy", pathlib.Path(_package.submodule_search_locations[0]) / "policy.py")
policy = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(policy)
c.CourseDirectory.root = str(here)
c.CourseDirectory.course_id = "minidl"

# The exchange: where release_assignment puts assignments and students' submit puts their work.
# On a hub every user must reach it (a shared volume), so set it on purpose: nbgrader makes the
# folder world-writable (777) by design, and each course's inbound/ write-only for students (733),
# so no student can read another's submission. Students' nbgrader config names the same folder.
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", "/srv/nbgrader/exchange")

# Per-cell time limit: training cells and the checks (which start a reference process) need
# more than nbgrader's default 30 s on a 2-core CPU. A cell that runs past it is interrupted.
# The same limit as `python -m autograder grade|batch` (policy.CELL_SECONDS).
c.ExecutePreprocessor.timeout = policy.CELL_SECONDS
c.ExecutePreprocessor.interrupt_on_timeout = True
# Without this, nbclient interrupts a cell that ignores the interrupt (a learner's code can)
# again and again, forever; with it, the cell ends as an error and autograde goes on.
c.ExecutePreprocessor.error_on_timeout = {
    "ename": "CellTimeoutError",
    "evalue": "this cell ran past its time limit and was interrupted",
    "traceback": ["CellTimeoutError: this cell ran past its time limit and was interrupted"],
}

# Student code must not be able to fill the gradebook with megabytes of output.
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100

# Feedback shows the public report of each check, never the hidden tests' source.
c.ClearHiddenTests.enforce_metadata = True
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "nbgrader.preprocessors.ClearHiddenTests",
]

# nbgrader zeroes a test cell that writes anything to stderr. Keep framework noise (warnings,
# progress bars) out of the kernels it starts; the checks themselves never write to stderr.
os.environ.setdefault("PYTHONWARNINGS", "ignore")
os.environ.setdefault("TQDM_DISABLE", "1")

# The instructor's secret seed for hidden cases lives outside the repository (see README):
# $AUTOGRADER_SECRET, or .autograder_secret next to this file, found as every command finds it.
secret_file = here / policy.SECRET_NAME
if secret_file.exists() and policy.SECRET_ENV not in os.environ:
    os.environ.setdefault(policy.SECRET_FILE_ENV, str(secret_file))
