"""Notebooks as the grader sees them: read defensively, executed headless, definitions extracted.

The learner's kernel is untrusted. It is started with the secret removed from its environment
and with in-notebook checks switched off (the CLI grades elsewhere). After the last cell, one
extra cell serialises each exercise's definition by value with cloudpickle into its own file;
this process never unpickles them (only a sandboxed worker does), and reads nothing back from
the kernel but a JSON index.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import time
from dataclasses import dataclass, field

import nbformat

from .catalog import LESSONS
from .check import COLLECT_ENV

EXTRACT = """
def __minidl_extract(names, folder):
    import json, os, cloudpickle
    index = {}
    for name in names:
        if name not in globals():
            index[name] = "missing"
            continue
        try:
            data = cloudpickle.dumps(globals()[name])
        except Exception as e:
            index[name] = "unpicklable: " + repr(e)[:300]
            continue
        with open(os.path.join(folder, name + ".pkl"), "wb") as f:
            f.write(data)
        index[name] = "ok"
    with open(os.path.join(folder, "index.json"), "w") as f:
        json.dump(index, f)
__minidl_extract(%r, %r)
"""


@dataclass
class Execution:
    """What happened when the notebook ran: definitions found and the problems met on the way."""

    definitions: dict[str, str] = field(default_factory=dict)  # name -> "ok" | "missing" | reason
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def read(path: pathlib.Path) -> tuple[nbformat.NotebookNode | None, str]:
    """The notebook (upgraded to nbformat 4), or None and the reason it cannot be read."""
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as e:  # corrupt JSON, not a notebook, unreadable file
        return None, f"the file is not a readable notebook ({type(e).__name__}: {str(e)[:200]})"
    return nb, ""


def lesson_key(nb: nbformat.NotebookNode | None, path: pathlib.Path) -> str | None:
    """Which lesson a notebook is: its metadata, else its file name, else the checks it calls."""
    if nb is not None:
        key = nb.metadata.get("minidl", {}).get("lesson")
        if key in LESSONS:
            return key
    for key in LESSONS:
        if key in path.name:
            return key
    if nb is not None:
        text = "\n".join(c.get("source", "") for c in nb.cells if isinstance(c.get("source", ""), str))
        for key, lesson in LESSONS.items():
            if any(f'"{e.id}"' in text or f"'{e.id}'" in text for e in lesson.exercises):
                return key
    return None


def kernel_env() -> dict[str, str]:
    """The learner kernel's environment: no secrets, checks deferred, quiet progress bars."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    env[COLLECT_ENV] = "1"
    env.setdefault("PYTHONWARNINGS", "ignore")
    env["MPLBACKEND"] = "Agg"
    return env


def execute(nb: nbformat.NotebookNode, names: list[str], workdir: pathlib.Path, out: pathlib.Path,
            cell_timeout: float = 120, total_timeout: float = 900) -> Execution:
    """Run every code cell (errors allowed) within the limits, then extract ``names`` into ``out``."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    result, start = Execution(), time.monotonic()
    deadline = start + total_timeout
    client = NotebookClient(nb, timeout=cell_timeout, allow_errors=True, kernel_name="python3",
                            interrupt_on_timeout=True, record_timing=False,
                            resources={"metadata": {"path": str(workdir)}})
    out.mkdir(parents=True, exist_ok=True)
    with client.setup_kernel(env=kernel_env(), cwd=str(workdir), stderr=subprocess.DEVNULL):
        for index, cell in enumerate(nb.cells):
            if cell.get("cell_type") != "code":
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 1:
                result.problems.append(f"the notebook ran past its {total_timeout:g} s limit; later cells were not run")
                break
            client.timeout = int(max(1, min(cell_timeout, remaining)))
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError:
                result.problems.append(f"cell {index + 1} ran past its {client.timeout} s limit and was interrupted")
            except DeadKernelError:
                result.problems.append(f"the kernel died in cell {index + 1}; it was restarted for the remaining cells")
                client.km.restart_kernel(now=True)
                client.kc = client.km.client()
                client.kc.start_channels()
                client.kc.wait_for_ready(timeout=60)
        nb.cells.append(nbformat.v4.new_code_cell(EXTRACT % (names, str(out))))
        client.timeout = 60
        try:
            client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
        except Exception as e:
            result.problems.append(f"the definitions could not be read from the kernel ({type(e).__name__})")
    index_file = out / "index.json"
    try:
        index = json.loads(index_file.read_text()) if index_file.exists() else {}
    except ValueError:
        index = {}
    result.definitions = {n: str(index.get(n, "missing")) if isinstance(index.get(n, "missing"), str) else "missing"
                          for n in names}
    result.seconds = time.monotonic() - start
    return result


def safe_name(path: pathlib.Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)[:80] or "notebook"
