"""``make gpu-check`` collects on a machine that has PyTorch and pytest but no Jupyter, nbgrader or
hypothesis: the GPU check's files, run here with those packages made unimportable."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
ABSENT = ("nbgrader", "nbformat", "nbclient", "nbconvert", "jupyter_client", "jupyter_core", "jupyterlab",
          "notebook", "ipykernel", "IPython", "ipywidgets", "hypothesis", "tqdm", "tokenizers")

BLOCKER = f'''
import sys

class Absent:
    """Refuses the packages a GPU machine lacks, as if they were not installed."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (absent on the GPU machine)")
        return None

sys.meta_path.insert(0, Absent())
'''


def gpu_check_files() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_gpu_*.py"))


def test_the_gpu_check_collects_without_jupyter_nbgrader_or_hypothesis(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    # no plugins from this venv (hypothesis registers one): a GPU machine's pytest has none of them
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}.", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    probe = subprocess.run([sys.executable, "-c", "import nbformat"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert "absent on the GPU machine" in probe.stderr                   # the blocker works
    run = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "--collect-only", "-q", *gpu_check_files()],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tests = [line for line in run.stdout.splitlines() if "::" in line]
    assert len(tests) >= 60 and "error" not in run.stdout.splitlines()[-1], run.stdout[-2000:]
    for name in ("test_gpu_references.py", "test_gpu_grading.py", "test_gpu_scale.py", "test_gpu_lessons.py"):
        assert any(line.startswith(f"tests/{name}::") for line in tests), name
