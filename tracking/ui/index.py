"""An in-memory index of each experiment's runs, kept in the UI server and refreshed incrementally.

Reading one run's row costs a handful of store calls (record, status listing, events, summary);
for 10,000 runs that is seconds, far too slow per page view. The server therefore keeps one
:class:`ExperimentIndex` per experiment and on each refresh only

* loads runs it has never seen (one listing of ``experiments/<name>/runs`` finds them),
* re-reads runs that are still live (their status, tags and metrics move),
* re-reads a bounded slice of settled runs, round-robin, so late tag edits show up eventually.

A page view then filters and sorts plain Python rows in memory (milliseconds for 10,000 runs).
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import RecordNotFoundError, StoreError
from ..metric_store import read_summary
from ..names import check_experiment_name
from ..records import RunRecords
from ..run import Run, _ExperimentRef
from ..status import RunStatus

# a terminal run keeps moving briefly (final summary, compaction): re-read it until this old
SETTLE_AFTER_S = 5.0
SETTLED_RECHECK_PER_REFRESH = 64


@dataclass
class RunRow:
    """What the runs table shows of one run."""

    run_id: str
    experiment: str
    created: float
    kind: str
    parent_run_id: str | None
    display_name: str | None
    target: str
    status: str
    start: float | None
    end: float | None
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)   # name -> last scalar value
    metric_kinds: dict[str, str] = field(default_factory=dict)
    checked: float = 0.0

    @property
    def terminal(self) -> bool:
        return RunStatus(self.status).is_terminal()

    @property
    def settled(self) -> bool:
        return self.terminal and self.end is not None and self.checked - self.end > SETTLE_AFTER_S

    @property
    def duration(self) -> float | None:
        if self.start is None:
            return None
        return (self.end or time.time()) - self.start

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "experiment": self.experiment, "created": self.created,
                "kind": self.kind, "parent_run_id": self.parent_run_id,
                "display_name": self.display_name, "target": self.target, "status": self.status,
                "start": self.start, "end": self.end, "duration": self.duration,
                "tags": self.tags, "metrics": self.metrics}


def attach_run(records: RunRecords, run_id: str, record: dict | None = None) -> Run:
    """A read-only handle on a run (no experiment object needed)."""
    record = record or records.read_run(run_id)
    return Run(_ExperimentRef(record["experiment"], records.store), run_id, _record=record)


def load_row(records: RunRecords, run_id: str) -> RunRow:
    """Read one run's row from the store (record, derived status, tags, metric summary)."""
    run = attach_run(records, run_id)
    record = run._record  # noqa: SLF001 - the record attach_run just read
    status, events, _ = run._derived_status()  # noqa: SLF001 - same derivation get_status() uses
    state = run._state()  # noqa: SLF001 - tags and display name folded from events
    summary = read_summary(records, run_id)
    start = next((e.time for e in events if e.status is RunStatus.RUNNING), None)
    end = next((e.time for e in events if e.status.is_terminal()), None)
    metrics, kinds = {}, {}
    for name, entry in summary.items():
        kinds[name] = entry.get("kind") or "scalar"
        last = entry.get("last")
        if isinstance(last, (int, float, str, bool)) and kinds[name] in ("scalar", "list"):
            metrics[name] = last
    return RunRow(run_id=run_id, experiment=record.get("experiment", ""),
                  created=float(record.get("created") or 0.0), kind=record.get("kind") or "",
                  parent_run_id=record.get("parent_run_id"),
                  display_name=state.get("display_name"), target=str(record.get("target") or ""),
                  status=status.value, start=start, end=end, tags=dict(state.get("tags") or {}),
                  metrics=metrics, metric_kinds=kinds, checked=time.time())


class ExperimentIndex:
    """The rows of one experiment, refreshed at most every ``max_age_s`` seconds."""

    def __init__(self, records: RunRecords, name: str, pool: ThreadPoolExecutor):
        self.records = records
        self.name = check_experiment_name(name)
        self.rows: dict[str, RunRow] = {}
        self.refreshed = 0.0
        self._pool = pool
        self._lock = threading.Lock()
        self._cursor = 0

    def refresh(self, max_age_s: float = 1.0) -> None:
        """Bring the rows up to date (see module docstring); concurrent callers wait for one."""
        if time.time() - self.refreshed < max_age_s:
            return
        with self._lock:
            if time.time() - self.refreshed < max_age_s:
                return
            listed = [n[:-5] for n in self.records.store.list(f"experiments/{self.name}/runs")
                      if n.endswith(".json")]
            todo = [r for r in listed if r not in self.rows]
            todo += [r for r, row in self.rows.items() if not row.settled]
            todo += self._settled_slice()
            for row in self._pool.map(lambda r: _try_load(self.records, r), todo):
                if row is not None:
                    self.rows[row.run_id] = row
            self.refreshed = time.time()

    def _settled_slice(self) -> list[str]:
        settled = [r for r, row in self.rows.items() if row.settled]
        if not settled:
            return []
        start = self._cursor % len(settled)
        picked = (settled[start:] + settled[:start])[:SETTLED_RECHECK_PER_REFRESH]
        self._cursor = start + len(picked)
        return picked

    def put(self, row: RunRow) -> None:
        """Replace a row read elsewhere (the run page reads fresh data anyway)."""
        if row.experiment == self.name:
            self.rows[row.run_id] = row


def _try_load(records: RunRecords, run_id: str) -> RunRow | None:
    try:
        return load_row(records, run_id)
    except (RecordNotFoundError, StoreError, ValueError, KeyError):
        return None  # half-written or foreign object: skip it, the next refresh retries


class StoreIndex:
    """All experiment indexes of one store, created on first use."""

    def __init__(self, records: RunRecords, *, threads: int = 16):
        self.records = records
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="runyard-ui-index")
        self._experiments: dict[str, ExperimentIndex] = {}
        self._lock = threading.Lock()

    def experiment(self, name: str, *, max_age_s: float = 1.0) -> ExperimentIndex:
        with self._lock:
            index = self._experiments.get(name)
            if index is None:
                index = self._experiments[name] = ExperimentIndex(self.records, name, self.pool)
        index.refresh(max_age_s)
        return index

    def known(self, name: str) -> ExperimentIndex | None:
        return self._experiments.get(name)

    def warm(self) -> None:
        """Index every experiment (run in a background thread when the server starts)."""
        for name in self.records.list_experiments():
            try:
                self.experiment(name)
            except (StoreError, ValueError):
                continue

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
