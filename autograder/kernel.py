"""The learner's kernel and its life: a notebook executed headless, definitions extracted.

The learner's kernel is untrusted. It is started confined (see confine.py: memory, CPU time,
processes, file size, and an unprivileged user when the grader is root), in a scratch folder,
with the secret removed from its environment and with in-notebook checks switched off (the
CLI grades elsewhere). Its outputs are counted and thrown away, never kept in memory.

After every cell that mentions an exercise's name, and after the last cell, a hidden cell
serialises each exercise's definition by value with cloudpickle into a file of its own. So a
kernel that dies, hangs or runs out of time keeps what it had defined: it is restarted (and
the set-up cell run again) for the cells that remain, and every exercise is judged on the last
definition that could be taken out. This process never unpickles those files (only a
sandboxed worker does) and reads nothing back from the kernel but a JSON index.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .confine import Confinement, release, sandbox_user
from .i18n import _
from .policy import COLLECT_ENV, learner_env

EXTRACT = """
def __minidl_extract(names, folder):
    import json, os, cloudpickle
    index = {}
    for name in names:
        if name not in globals():
            continue
        try:
            data = cloudpickle.dumps(globals()[name])
        except BaseException as e:
            index[name] = "unpicklable: " + repr(e)[:300]
            continue
        with open(os.path.join(folder, name + ".pkl.tmp"), "wb") as f:
            f.write(data)
        os.replace(os.path.join(folder, name + ".pkl.tmp"), os.path.join(folder, name + ".pkl"))
        index[name] = "ok"
    index["__callables__"] = sorted(k for k, v in globals().items() if callable(v) and not k.startswith("_"))[:500]
    with open(os.path.join(folder, "index.json"), "w") as f:
        json.dump(index, f)
__minidl_extract(%r, %r)
del __minidl_extract
"""
EXTRACT_SECONDS = 30
RECOVER_SECONDS = 5
OUTPUT_LIMIT = 2_000_000  # characters of output a notebook may print (counted, never kept)


@dataclass
class Execution:
    """What happened when the notebook ran: definitions found and the problems met on the way."""

    definitions: dict[str, str] = field(default_factory=dict)  # name -> "ok" | "missing" | reason
    callables: set[str] = field(default_factory=set)  # every function or class name the notebook had
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    restarts: int = 0
    output_chars: int = 0


class ConfinedKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel through ``python -m autograder.confine``. A kernel
    cut off from the network is reached through Unix sockets in a folder of their own (see
    ``socket_folder``; its loopback is not the grader's)."""

    confinement: Confinement = Confinement()
    home: str | None = None

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        kernel = super().format_kernel_cmd(extra_arguments)
        kernel[0] = sys.executable if kernel[0].startswith("python") else kernel[0]
        return self.confinement.prefix(self.home, own=(self.connection_file,)) + kernel


class QuietClient(NotebookClient):
    """An nbclient that counts the learner's output and throws it away (a notebook may print
    gigabytes; the grader keeps none of it)."""

    output_chars = 0

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        self.output_chars += len(str(content.get("text", ""))) + sum(len(str(v)) for v in content.get("data", {}).values())
        return None


def socket_folder() -> pathlib.Path:
    """A folder for a kernel's Unix sockets, on a short path (a socket's path has at most 107
    bytes, and a batch's scratch folders can be deeper than that)."""
    base = "/tmp" if os.access("/tmp", os.W_OK) else None
    return pathlib.Path(tempfile.mkdtemp(prefix="minidl-ipc-", dir=base))


def kernel_env(home: str) -> dict[str, str]:
    """The learner kernel's environment: no secrets, checks deferred, quiet progress bars."""
    env = learner_env()
    env[COLLECT_ENV] = "1"
    env.setdefault("PYTHONWARNINGS", "ignore")
    env.update(MPLBACKEND="Agg", TQDM_DISABLE="1", HOME=home, JUPYTER_RUNTIME_DIR=home)
    return env


def mentions(cell_source: str, names: list[str]) -> bool:
    return any(re.search(rf"\b{re.escape(n)}\b", cell_source) for n in names)


def setup_cells(nb: nbformat.NotebookNode) -> list[int]:
    """The cells to run again in a restarted kernel: those marked as set-up, else the first code cell."""
    marked = [i for i, c in enumerate(nb.cells)
              if c.get("cell_type") == "code" and (c.get("metadata", {}).get("minidl") or {}).get("role") == "setup"]
    first = [i for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"][:1]
    return marked or first


class Runner:
    """One notebook's kernel: run cells within limits, recover from hangs and deaths, extract."""

    def __init__(self, nb: nbformat.NotebookNode, names: list[str], scratch: pathlib.Path,
                 confinement: Confinement, result: Execution):
        self.nb, self.names, self.result = nb, names, result
        self.home, self.work, self.defs = scratch / "home", scratch / "work", scratch / "defs"
        for folder in (self.home, self.work, self.defs):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(scratch, 0o711)
        km = ConfinedKernelManager(kernel_name="python3")
        km.confinement, km.home = confinement, str(self.home)
        self.sockets = None  # the kernel's Unix sockets, when it is cut off from the network
        if confinement.offline and sys.platform.startswith("linux"):
            self.sockets = socket_folder()
            km.transport, km.ip = "ipc", str(self.sockets / "kernel")
        km.connection_file = str(scratch / "kernel.json")
        self.confinement = confinement
        self.client = QuietClient(nb, km=km, kernel_name="python3", allow_errors=True, interrupt_on_timeout=False,
                                  record_timing=False, startup_timeout=120, iopub_timeout=2,
                                  resources={"metadata": {"path": str(self.work)}})
        self.slot = len(nb.cells)  # where the grader's own hidden cells run
        nb.cells.append(nbformat.v4.new_code_cell(""))
        self.index: dict[str, str] = {}
        self.callables: set[str] = set()  # the functions and classes the notebook defined
        self.pids: list[int] = []  # every kernel process started, for ``release``

    def start(self):
        user = sandbox_user()
        if user:  # the kernel becomes the sandbox user: give it its folders
            for path in (self.work, self.defs, self.sockets):
                if path:
                    os.chown(path, user.pw_uid, user.pw_gid)
        return self.client.setup_kernel(env=kernel_env(str(self.home)), cwd=str(self.work),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def remember_pid(self) -> None:
        pid = getattr(getattr(self.client.km, "provisioner", None), "pid", None)
        if pid and pid not in self.pids:
            self.pids.append(pid)

    def release(self) -> None:
        """Kill whatever the kernels left behind (their cgroups, where there are some)."""
        for pid in self.pids:
            release(pid)
        if self.sockets:
            shutil.rmtree(self.sockets, ignore_errors=True)

    def run_cell(self, index: int, seconds: float) -> str:
        """Run one cell; 'ok', 'timeout' (interrupted or restarted) or 'died' (restarted)."""
        self.client.timeout = max(1, int(seconds))
        try:
            self.client.execute_cell(self.nb.cells[index], index)
            return "ok"
        except CellTimeoutError:
            self.recover()
            return "timeout"
        except DeadKernelError:
            self.restart()
            return "died"

    def recover(self) -> None:
        """After a timeout: interrupt; a kernel that does not answer within seconds is restarted."""
        try:
            run_sync(self.client.km.interrupt_kernel)()
            self.client.timeout = RECOVER_SECONDS
            self.client.execute_cell(nbformat.v4.new_code_cell("pass"), self.slot)
        except Exception:
            self.restart()

    def restart(self) -> None:
        """A fresh kernel (same confinement), with the set-up cells run again."""
        self.result.restarts += 1
        try:
            self.client.kc.stop_channels()
        except Exception:
            pass
        self.remember_pid()
        run_sync(self.client.km.restart_kernel)(now=True)
        self.remember_pid()
        self.client.kc = self.client.km.client()
        self.client.kc.start_channels()
        run_sync(self.client.kc.wait_for_ready)(timeout=120)
        for index in setup_cells(self.nb):
            self.client.timeout = 120
            try:
                self.client.execute_cell(self.nb.cells[index], index)
            except Exception:
                break

    def extract(self) -> None:
        """Take the current definitions out of the kernel (the last good copy of each is kept)."""
        cell = nbformat.v4.new_code_cell(EXTRACT % (self.names, str(self.defs)))
        (self.defs / "index.json").unlink(missing_ok=True)
        self.client.timeout = EXTRACT_SECONDS
        try:
            self.client.execute_cell(cell, self.slot)
        except CellTimeoutError:
            self.recover()
        except DeadKernelError:
            self.restart()
        try:
            found = json.loads((self.defs / "index.json").read_text())
        except (OSError, ValueError):
            return
        if not isinstance(found, dict):
            return
        if isinstance(found.get("__callables__"), list):
            self.callables = {str(n)[:100] for n in found["__callables__"]}
        for name, state in found.items():
            if name in self.names and isinstance(state, str):
                self.index[name] = "ok" if state == "ok" else state[:300]


def execute(nb: nbformat.NotebookNode, names: list[str], scratch: pathlib.Path, cell_timeout: float = 120,
            total_timeout: float = 900, confinement: Confinement | None = None) -> Execution:
    """Run every code cell (errors allowed) within the limits, extracting ``names`` into scratch/defs."""
    result, start = Execution(), time.monotonic()
    deadline = start + total_timeout
    cells = [i for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"]
    runner = Runner(nb, names, scratch, confinement or Confinement(), result)
    try:
        with runner.start():
            runner.remember_pid()
            for index in cells:
                remaining = deadline - time.monotonic()
                if remaining <= 1:
                    result.problems.append(_("the notebook ran past its {seconds:g} s limit; later cells were "
                                             "not run").format(seconds=total_timeout))
                    break
                seconds = min(cell_timeout, remaining)
                outcome = runner.run_cell(index, seconds)
                if outcome == "timeout":
                    result.problems.append(_("cell {cell} ran past its {seconds:.0f} s limit and was stopped").format(
                        cell=index + 1, seconds=seconds))
                elif outcome == "died":
                    result.problems.append(_("the kernel died in cell {cell} (a crash, or more memory than allowed); "
                                             "it was restarted for the remaining cells").format(cell=index + 1))
                if mentions(nb.cells[index].get("source", ""), names) and runner.client.kc is not None:
                    runner.extract()
            runner.extract()
    except Exception as e:  # the kernel could not be started or restarted: keep what was extracted
        result.problems.append(_("the notebook's kernel failed ({error})").format(
            error=f"{type(e).__name__}: {str(e)[:200]}"))
    finally:
        runner.release()
    result.output_chars = runner.client.output_chars
    if result.output_chars > OUTPUT_LIMIT:
        result.problems.append(_("the notebook printed {millions:.1f} million characters (not kept; only the "
                                 "exercises are graded)").format(millions=result.output_chars / 1e6))
    result.definitions = {n: runner.index.get(n, "missing") for n in names}
    result.callables = runner.callables
    result.seconds = time.monotonic() - start
    return result
