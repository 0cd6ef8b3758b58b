"""An in-process target for unit tests: the launcher runs in a thread of this process.

It ships with the package (as httpx ships MockTransport) so tests of the submission flow need
no detached process. The script itself still runs as a real child process. With a memory://
store the script's own store calls (upload_file) cannot reach this process's memory, so use a
file:// store for scripts that upload files.
"""
from __future__ import annotations

import threading
from typing import Any, Mapping

from tracking.records import RunRecords
from tracking.store import Store

from .base import JobSpec
from .launch import Launcher


class InlineTarget:
    name = "inline"

    def __init__(self, store: Store | None = None):
        self.store = store
        self._threads: dict[str, threading.Thread] = {}
        self.exit_codes: dict[str, int] = {}

    def submit(self, job: JobSpec) -> dict[str, Any]:
        store = self.store or Store(job.store_url, **dict(job.storage_options))
        launcher = Launcher(RunRecords(store), job.run_id, extra_env=job.environment())

        def run() -> None:
            self.exit_codes[job.run_id] = launcher.run()

        thread = threading.Thread(target=run, daemon=True, name=f"inline-{job.run_id}")
        thread.start()
        self._threads[job.run_id] = thread
        return {"run_id": job.run_id}

    def poll(self, handle: Mapping[str, Any]) -> str:
        thread = self._threads.get(handle["run_id"])
        return "unknown" if thread is None else ("running" if thread.is_alive() else "exited")

    def cancel(self, handle: Mapping[str, Any], grace_seconds: float = 10.0) -> None:
        thread = self._threads.get(handle["run_id"])
        if thread is not None:
            thread.join(grace_seconds + 5)

    def logs(self, handle: Mapping[str, Any]) -> str:
        return ""

    def join(self, timeout: float | None = None) -> None:
        for thread in list(self._threads.values()):
            thread.join(timeout)
