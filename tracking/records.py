"""Run records in the store: the key layout and the write-once operations on it.

Layout under the store root (documented in tracking/README.md)::

    runs/<run_id>/run.json                         creation record, written once
    runs/<run_id>/status/<time_ns>-<Status>.json   one object per transition
    runs/<run_id>/events/<time_ns>-<writer>.json   tags / properties / display name changes
    runs/<run_id>/metrics/<writer>-<seq>.parquet   metric batches (SCHEMA in metrics.py)
    runs/<run_id>/metrics/compacted-<time_ns>.parquet  written when the run ends
    runs/<run_id>/summary/<writer>.json            per-writer last/min/max (replaced by its writer)
    runs/<run_id>/heartbeat.json                   latest heartbeat (replaced by the run's owner)
    runs/<run_id>/logs/<stream>/<seq>.txt          stdout/stderr chunks
    runs/<run_id>/files/<name>                     uploaded files, ./outputs, images
    runs/<run_id>/children/<child_id>.json         child index
    runs/<run_id>/cancel_requested.json            written by cancel() for the job's launcher
    experiments/<name>/experiment.json             written once
    experiments/<name>/runs/<run_id>.json          experiment index entry, written once
"""
from __future__ import annotations

import os
import re
import time
from typing import Any, NamedTuple

from .errors import InvalidNameError, RecordNotFoundError, RunNotFoundError
from .names import check_experiment_name, check_file_name
from .status import RunStatus
from .store import Store

_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
_STATUS_NAME_RE = re.compile(r"^(\d{20})-([A-Za-z]+)\.json$")


def check_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not _RUN_ID_RE.match(run_id) or ".." in run_id:
        raise InvalidNameError(f"{run_id!r} is not a valid run id (letters, digits, '_', '-', '.')")
    return run_id


def new_run_id(experiment: str) -> str:
    """``<experiment>_<unix seconds>_<8 hex>``, as azureml does."""
    return f"{experiment}_{int(time.time())}_{os.urandom(4).hex()}"


def new_writer_id() -> str:
    host = re.sub(r"[^A-Za-z0-9]", "", os.uname().nodename)[:16] or "host"
    return f"{host}-{os.getpid()}-{os.urandom(3).hex()}"


def now_ns() -> int:
    return time.time_ns()


class StatusEvent(NamedTuple):
    status: RunStatus
    time: float
    key: str


class RunRecords:
    """Typed access to the run layout of one store. Stateless; safe to share."""

    def __init__(self, store: Store):
        self.store = store

    # ----------------------------------------------------------------- keys
    @staticmethod
    def run_key(run_id: str, *parts: str) -> str:
        return "/".join(("runs", check_run_id(run_id), *parts))

    # -------------------------------------------------------------- creation
    def create_run(self, record: dict[str, Any]) -> None:
        run_id = check_run_id(record["run_id"])
        experiment = check_experiment_name(record["experiment"])
        exp_key = f"experiments/{experiment}/experiment.json"
        if not self.store.exists(exp_key):
            self.store.put_json(exp_key, {"name": experiment, "created": time.time()})
        self.store.put_json(self.run_key(run_id, "run.json"), record)
        entry = {k: record.get(k) for k in ("run_id", "created", "parent_run_id", "kind",
                                            "display_name", "target")}
        self.store.put_json(f"experiments/{experiment}/runs/{run_id}.json", entry)
        parent = record.get("parent_run_id")
        if parent:
            self.store.put_json(self.run_key(parent, "children", f"{run_id}.json"), entry)

    def read_run(self, run_id: str) -> dict[str, Any]:
        try:
            return self.store.get_json(self.run_key(run_id, "run.json"))
        except RecordNotFoundError:
            raise RunNotFoundError(run_id, url=self.store.url) from None

    def run_exists(self, run_id: str) -> bool:
        return self.store.exists(self.run_key(run_id, "run.json"))

    # ---------------------------------------------------------------- status
    def write_status(self, run_id: str, status: RunStatus, details: dict | None = None) -> None:
        ts = now_ns()
        body = {"status": status.value, "time": ts / 1e9, **(details or {})}
        self.store.put_json(self.run_key(run_id, "status", f"{ts:020d}-{status.value}.json"), body)

    def status_events(self, run_id: str) -> list[StatusEvent]:
        events = []
        for name in self.store.list(self.run_key(run_id, "status")):
            match = _STATUS_NAME_RE.match(name)
            if match:
                events.append(StatusEvent(RunStatus(match.group(2)), int(match.group(1)) / 1e9,
                                          self.run_key(run_id, "status", name)))
        return events

    def recorded_status(self, run_id: str) -> tuple[RunStatus, list[StatusEvent]]:
        """Latest recorded status; the first terminal status recorded is final."""
        events = self.status_events(run_id)
        for event in events:
            if event.status.is_terminal():
                return event.status, events
        return (events[-1].status if events else RunStatus.NOT_STARTED), events

    def status_details(self, event: StatusEvent) -> dict[str, Any]:
        return self.store.get_json(event.key)

    def launcher_starts(self, events: list[StatusEvent]) -> int:
        """How many times a launcher started on the run (one Preparing each; a target's own
        Preparing stages, such as an image build, carry a "stage" and do not count)."""
        return sum(1 for e in events if e.status is RunStatus.PREPARING
                   and "stage" not in self.status_details(e))

    # ------------------------------------------------------------ heartbeats
    def write_heartbeat(self, run_id: str, info: dict | None = None) -> None:
        self.store.put_json(self.run_key(run_id, "heartbeat.json"), {"time": time.time(), **(info or {})})

    def read_heartbeat(self, run_id: str) -> dict[str, Any] | None:
        try:
            return self.store.get_json(self.run_key(run_id, "heartbeat.json"))
        except RecordNotFoundError:
            return None

    # ---------------------------------------------------------------- cancel
    def request_cancel(self, run_id: str) -> None:
        self.store.put_json(self.run_key(run_id, "cancel_requested.json"), {"time": time.time()})

    def cancel_requested(self, run_id: str) -> bool:
        return self.store.exists(self.run_key(run_id, "cancel_requested.json"))

    # ---------------------------------------------------------------- events
    def write_event(self, run_id: str, writer_id: str, event: dict[str, Any]) -> None:
        self.store.put_json(self.run_key(run_id, "events", f"{now_ns():020d}-{writer_id}.json"),
                            {"time": time.time(), **event})

    def read_events(self, run_id: str) -> list[dict[str, Any]]:
        keys = self.store.list(self.run_key(run_id, "events"))
        return [self.store.get_json(self.run_key(run_id, "events", k)) for k in keys]

    # ----------------------------------------------------------------- files
    def file_key(self, run_id: str, name: str) -> str:
        return self.run_key(run_id, "files", check_file_name(name))

    def list_files(self, run_id: str) -> list[str]:
        return self.store.list(self.run_key(run_id, "files"), recursive=True)

    # ------------------------------------------------------------------ logs
    def put_log_chunk(self, run_id: str, stream: str, seq: int, data: bytes) -> None:
        self.store.put_bytes(self.run_key(run_id, "logs", stream, f"{seq:010d}.txt"), data)

    def log_chunks(self, run_id: str, stream: str) -> list[str]:
        return self.store.list(self.run_key(run_id, "logs", stream))

    def read_log_chunk(self, run_id: str, stream: str, chunk: str) -> bytes:
        return self.store.get_bytes(self.run_key(run_id, "logs", stream, chunk))

    def log_streams(self, run_id: str) -> list[str]:
        return self.store.list(self.run_key(run_id, "logs"))

    # ------------------------------------------------------------- listings
    def list_experiments(self) -> list[str]:
        return [n for n in self.store.list("experiments") if not n.endswith(".json")]

    def list_experiment_runs(self, experiment: str) -> list[dict[str, Any]]:
        prefix = f"experiments/{check_experiment_name(experiment)}/runs"
        return [self.store.get_json(f"{prefix}/{name}") for name in self.store.list(prefix)
                if name.endswith(".json")]

    def list_children(self, run_id: str) -> list[dict[str, Any]]:
        prefix = self.run_key(run_id, "children")
        return [self.store.get_json(f"{prefix}/{n}") for n in self.store.list(prefix)]
