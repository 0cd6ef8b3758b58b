"""Status, details, logs and waiting: the read side of a Run, computed from the store alone.

A run whose owner (launcher or interactive process) stops heartbeating reads as NotResponding
once its newest heartbeat or status is older than the heartbeat timeout (RUNYARD_HEARTBEAT_TIMEOUT,
default 60 s), and as Failed after twice that. No daemon is needed: every reader derives it.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Iterator, TextIO

from . import config
from .errors import RunFailedError
from .status import RunStatus

_LIVE = (RunStatus.PREPARING, RunStatus.STARTING, RunStatus.RUNNING, RunStatus.FINALIZING,
         RunStatus.CANCEL_REQUESTED)
LOG_STREAM = "driver"


def _iso(ts: float | None) -> str | None:
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z") if ts else None


class RunStatusView:
    """Mixin for Run: status lifecycle as readers see it."""

    id: str

    def _derived_status(self) -> tuple[RunStatus, list, dict | None]:
        recorded, events = self._records.recorded_status(self.id)
        if recorded not in _LIVE:
            return recorded, events, None
        beat = self._records.read_heartbeat(self.id)
        last = max([e.time for e in events] + [beat["time"] if beat else 0.0])
        age = time.time() - last
        timeout = config.heartbeat_timeout()
        if age > 2 * timeout:
            return RunStatus.FAILED, events, {"message": f"no heartbeat for {age:.0f} s (timeout "
                                                         f"{timeout:.0f} s): the job's process or machine was lost",
                                              "code": "HeartbeatLost"}
        if age > timeout:
            return RunStatus.NOT_RESPONDING, events, None
        return recorded, events, None

    def get_status(self) -> str:
        """Current status as a string, e.g. ``'Running'`` or ``'Completed'``."""
        return self._derived_status()[0].value

    @property
    def status(self) -> str:
        return self.get_status()

    def get_details(self) -> dict[str, Any]:
        """Run details in azureml's shape (runId, status, times, properties, runDefinition...)."""
        status, events, derived_error = self._derived_status()
        record = self._record
        state = self._state()  # tags, properties and names from one read of the run's events
        start = next((e.time for e in events if e.status is RunStatus.RUNNING), None)
        end = next((e.time for e in events if e.status.is_terminal()), None)
        details: dict[str, Any] = {
            "runId": self.id, "experiment": self.experiment.name, "status": status.value,
            "target": record.get("target", "local"), "type": record.get("kind"),
            "startTimeUtc": _iso(start), "endTimeUtc": _iso(end),
            "createdTimeUtc": _iso(record.get("created")),
            "properties": state["properties"], "tags": state["tags"],
            "displayName": state["display_name"], "parentRunId": record.get("parent_run_id"),
            "snapshotId": record.get("snapshot_id"),
            "runDefinition": {k: record.get(k) for k in ("script", "command", "arguments",
                                                         "target", "environment",
                                                         "max_run_duration_seconds") if k in record},
            "inputDatasets": [], "outputDatasets": [],
            "logFiles": {f"logs/{s}": f"runs/{self.id}/logs/{s}" for s in self._records.log_streams(self.id)},
            "statusTimeline": [{"status": e.status.value, "timeUtc": _iso(e.time)} for e in events],
        }
        for key in ("python_version", "git", "pip_freeze_file"):
            if record.get(key) is not None:
                details[key] = record[key]
        terminal = next((e for e in events if e.status.is_terminal()), None)
        info = self._records.status_details(terminal) if terminal else {}
        if events and not terminal:
            info = self._records.status_details(events[-1])
        for key in ("exit_code", "signal", "node", "container_id", "reason", "attempt"):
            if key in info:
                details[key] = info[key]
        attempts = self._records.launcher_starts(events)
        if attempts:
            details["attempts"] = attempts
        error = info.get("error") or derived_error
        if error:
            details["error"] = {"error": error}
        return details

    # ---------------------------------------------------------------- logs
    def iter_log_chunks(self, start: int = 0) -> Iterator[tuple[int, str]]:
        """(index, text) of the job's combined stdout/stderr chunks from ``start``."""
        chunks = self._records.log_chunks(self.id, LOG_STREAM)
        for i, chunk in enumerate(chunks[start:], start=start):
            yield i + 1, self._records.read_log_chunk(self.id, LOG_STREAM, chunk).decode(
                "utf-8", "replace")

    def get_log_text(self) -> str:
        return "".join(text for _, text in self.iter_log_chunks())

    def wait_for_completion(self, show_output: bool = False, wait_post_processing: bool = False,
                            raise_on_error: bool = True, poll_interval: float = 0.25,
                            timeout: float | None = None, out: TextIO | None = None) -> dict:
        """Wait until the run is terminal; ``show_output`` streams its output live.

        Raises:
            RunFailedError: the run ended Failed or Canceled and ``raise_on_error`` (carries the
                exit code and the stderr tail).
            TimeoutError: ``timeout`` seconds passed first.
        """
        out = out or sys.stdout
        deadline = time.monotonic() + timeout if timeout else None
        seen = 0
        if show_output:
            print(f"RunId: {self.id}\nWeb View: {self.get_portal_url()}\n", file=out, flush=True)
        while True:
            status = RunStatus(self.get_status())
            if show_output:
                for seen, text in self.iter_log_chunks(seen):
                    out.write(text)
                out.flush()
            if status.is_terminal():
                break
            if deadline and time.monotonic() > deadline:
                raise TimeoutError(f"run {self.id} still {status.value} after {timeout} s")
            time.sleep(poll_interval)
        if show_output:  # chunks shipped just before the final status
            for seen, text in self.iter_log_chunks(seen):
                out.write(text)
            print(f"\nExecution Summary\n=================\nRunId: {self.id}\nStatus: {status.value}",
                  file=out, flush=True)
        details = self.get_details()
        if raise_on_error and status in (RunStatus.FAILED, RunStatus.CANCELED):
            error = (details.get("error") or {}).get("error", {})
            raise RunFailedError(self.id, status.value, exit_code=details.get("exit_code"),
                                 signal=details.get("signal"),
                                 stderr_tail=error.get("stderr_tail", ""),
                                 message=error.get("message", ""))
        return details
