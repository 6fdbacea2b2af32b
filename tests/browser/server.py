"""Launch the app as a subprocess on a free localhost port, the way a user starts it, and stop it again.

Shared by the browser tests and `bench/ui_latency.py`. The app runs `[sys.executable, "app.py"]` from the
repository root (no `uv run`), with GRADIO_SERVER_NAME / GRADIO_SERVER_PORT set; its output goes to a log file.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180  # import torch + gradio on a busy 2-core machine, plus a first-run model conversion


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _responds(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(log_path: Path, chars: int = 3000) -> str:
    return log_path.read_text(errors="replace")[-chars:] if log_path.exists() else "(no log)"


def wait_for_http(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll `url` until it answers 200; fail early, with the log tail, when the app exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with code {process.returncode}:\n{_log_tail(log_path)}")
        if _responds(url):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the app did not answer at {url} within {timeout_s:.0f} s:\n{_log_tail(log_path)}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


@contextlib.contextmanager
def running_app(log_path: Path) -> Iterator[str]:
    """Start app.py on a free port, yield its URL once it answers HTTP, terminate it on exit."""
    port = free_port()
    env = os.environ | {
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("GRADIO_SHARE", None)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}/"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_http(url, process, log_path)
            yield url
        finally:
            _stop(process)
