"""The local target: the launcher runs as a detached process on this machine.

Detached (its own session, stdio to a log file), so the job keeps running if the notebook or the
submitting process exits; any process can cancel it through the store or by its recorded pid.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Mapping

from tracking import config

from .base import JobSpec
from .launch import _with_runyard_on_path


class LocalTarget:
    """Run jobs as local processes.

    Args:
        python: interpreter for the launcher (default: this one).
    """

    name = "local"

    def __init__(self, python: str | None = None):
        self.python = python or sys.executable

    def __repr__(self) -> str:
        return f"LocalTarget(python={self.python!r})"

    def submit(self, job: JobSpec) -> dict[str, Any]:
        log_path = os.path.join(config.cache_dir("launchers"), f"{job.run_id}.log")
        env = {**os.environ, **job.environment(),
               "PYTHONPATH": _with_runyard_on_path(os.environ.get("PYTHONPATH"))}
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(job.launcher_args(self.python), env=env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True)
        _DETACHED.append(proc)  # keep a reference so Python reaps it quietly when it exits
        return {"pid": proc.pid, "host": socket.gethostname(), "log": log_path}

    def poll(self, handle: Mapping[str, Any]) -> str:
        if handle.get("host") != socket.gethostname():
            return "unknown"
        for proc in _DETACHED:
            if proc.pid == handle["pid"]:
                return "running" if proc.poll() is None else "exited"
        return "running" if _alive(handle["pid"]) else "exited"

    def cancel(self, handle: Mapping[str, Any], grace_seconds: float = 10.0) -> None:
        """Force-stop the launcher's session if it did not honour the cancel request."""
        deadline = time.monotonic() + grace_seconds + 5
        while time.monotonic() < deadline and self.poll(handle) == "running":
            time.sleep(0.1)
        if self.poll(handle) == "running":
            try:
                os.killpg(handle["pid"], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def logs(self, handle: Mapping[str, Any]) -> str:
        try:
            with open(handle["log"], encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""


_DETACHED: list[subprocess.Popen] = []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
