"""JupyterLab started exactly as `make lab` starts it, on a free loopback port with a token."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import requests

from .conftest import BIN, ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    base: str
    token: str
    log: str

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}?token={self.token}"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.base}/api/{path}", timeout=30,
                                headers={"Authorization": f"token {self.token}"}, **kwargs)


@contextlib.contextmanager
def make_lab(root: str | os.PathLike | None = None, log: str | os.PathLike = os.devnull) -> Iterator[Lab]:
    """`make lab` serving ``root`` (lessons/ when None); `make test` has set up the venv, so make
    is told not to remake it (-o), and this checkout comes first on the kernels' import path."""
    port, token = free_port(), "minidl-test"
    args = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(ROOT))
    command = ["make", "-o", ".venv/.installed", "lab", f"LAB_ARGS={args}"] + ([f"LAB_ROOT={root}"] if root else [])
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token, str(log))
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if lab.api("GET", "status").status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, f"make lab exited with {proc.returncode} (log: {log})"
            assert time.monotonic() < deadline, "JupyterLab did not start in 120 s"
            time.sleep(1)
        yield lab
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
