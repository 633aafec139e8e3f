"""The set-up cell as Colab runs it: the course installs from the repository into a runtime that
keeps its own torch and kernel packages, once, and a failed install ends with what to do.

Colab is simulated: a fresh virtual environment layered over this one (a .pth file puts this
venv's site-packages last on its path, so torch and the rest are found there, not downloaded),
holding Colab's own versions of the kernel packages, and ``google.colab`` put in ``sys.modules``.
The versions are those Colab's ``google-colab 1.0.0`` package pins (ipykernel, ipython, notebook
6.5.7) and its pip freeze lists (googlecolab/backend-info, 2025): notebook 6.5 holds
jupyter-client below 8 and ipywidgets stays on 7.7.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import sysconfig
import textwrap

import nbformat
import pytest

from autograder.build import repository

from .conftest import ROOT

COLAB_KERNEL_PACKAGES = {
    "ipykernel": "6.17.1",
    "ipython": "7.34.0",
    "ipywidgets": "7.7.1",
    "jupyter-client": "6.1.12",
    "tornado": "6.4.2",
    "traitlets": "5.7.1",
}
WATCHED = [*COLAB_KERNEL_PACKAGES, "torch", "numpy"]

# Runs one cell the way Colab's kernel does (IPython), with google.colab imported, and prints
# what the learner would see; the last line is the error's name, or "ok".
RUN_CELL = textwrap.dedent("""
    import sys, types
    sys.modules["google"] = types.ModuleType("google")
    sys.modules["google.colab"] = types.ModuleType("google.colab")
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    result = shell.run_cell(open(sys.argv[1]).read())
    error = result.error_in_exec or result.error_before_exec
    print("RESULT:", "ok" if error is None else type(error).__name__)
""")


def layered_venv(path: pathlib.Path) -> pathlib.Path:
    """A venv whose own site-packages come first and this venv's last; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    pathlib.Path(site, "zz_course_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def versions(python: pathlib.Path) -> dict[str, str]:
    code = f"import importlib.metadata as m, json; print(json.dumps({{n: m.version(n) for n in {WATCHED!r}}}))"
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def setup_cell() -> str:
    nb = nbformat.read(ROOT / "lessons" / "01_tensors.ipynb", as_version=4)
    [cell] = [c for c in nb.cells if c.metadata.get("minidl", {}).get("role") == "setup"]
    return cell.source


def run_cell(python: pathlib.Path, source: str, tmp: pathlib.Path, env: dict | None = None) -> str:
    cell = tmp / "cell.py"
    cell.write_text(source)
    out = subprocess.run([python, "-c", RUN_CELL, str(cell)], cwd=tmp, capture_output=True, text=True,
                         timeout=600, env={**os.environ, **(env or {})})
    return out.stdout + out.stderr


@pytest.mark.slow
def test_colab_install_keeps_the_runtime_packages(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    python = layered_venv(tmp_path / "colab")
    pins = [f"{n}=={v}" for n, v in COLAB_KERNEL_PACKAGES.items()]
    subprocess.run([python, "-m", "pip", "install", "-q", *pins], check=True, capture_output=True)
    before = versions(python)
    assert {n: before[n] for n in COLAB_KERNEL_PACKAGES} == COLAB_KERNEL_PACKAGES

    source = setup_cell().replace(repository(), clone.as_uri())
    assert clone.as_uri() in source, "the set-up cell does not install from the stamped repository address"
    first = run_cell(python, source, tmp_path)
    assert "Installing the course package" in first, first
    assert "computing on" in first and first.rstrip().endswith("RESULT: ok"), first
    assert versions(python) == before, "installing the course changed a package Colab ships"
    installed = subprocess.run([python, "-c", "import autograder; print(autograder.__file__)"],
                               capture_output=True, text=True, cwd=tmp_path).stdout
    assert str(tmp_path / "colab") in installed, installed

    again = run_cell(python, source, tmp_path)  # idempotent: installed already, nothing to do
    assert "Installing" not in again and again.rstrip().endswith("RESULT: ok"), again


@pytest.mark.slow
def test_colab_setup_without_the_repository_says_what_to_do(tmp_path):
    python = layered_venv(tmp_path / "offline")
    no_network = {"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
                  "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
                  "ALL_PROXY": "http://127.0.0.1:9", "GIT_TERMINAL_PROMPT": "0", "PIP_NO_INDEX": "1"}
    out = run_cell(python, setup_cell(), tmp_path, no_network)
    assert "could not be installed from " + repository() in out, out
    assert "What to do" in out and "make lab" in out, out
    assert "Traceback" not in out and "ModuleNotFoundError" not in out, out
    assert out.rstrip().endswith("RESULT: SetupFailed"), out
