"""`make lab` serves JupyterLab on lessons/: the lab page and a lesson come back over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest
import requests

from .conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_make_lab_serves_the_lessons(tool_env):
    port, token = free_port(), "minidl-test"
    args = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token}"
    proc = subprocess.Popen(["make", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=tool_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                page = requests.get(f"{base}/lab?token={token}", timeout=5)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, "make lab exited"
                assert time.monotonic() < deadline, "JupyterLab did not start in 120 s"
                time.sleep(1)
        assert page.status_code == 200 and "JupyterLab" in page.text
        lesson = requests.get(f"{base}/api/contents/01_tensors.ipynb", params={"token": token}, timeout=10)
        assert lesson.status_code == 200
        assert lesson.json()["type"] == "notebook" and lesson.json()["content"]["cells"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
