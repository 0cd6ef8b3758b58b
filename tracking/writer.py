"""The metric writer: ``run.log`` appends to memory; a background thread spools and ships.

Path of a point::

    run.log -> deque (memory) --every flush interval--> spool dir (local file, atomic)
            --SpoolShipper--> store: runs/<id>/metrics/<writer>-<seq>.parquet

In an interactive run the writer's own thread ships. In a submitted job the script only spools
(``RUNYARD_SPOOL_DIR``) and the launcher ships, so a SIGKILLed script loses at most the points
of the last flush interval, and a store outage only delays delivery: spool files are shipped in
order once it answers again, each under a fixed key, so a retried upload never duplicates.

A job's writer spools small batches (up to ``json_rows`` points) as JSON (``*.points.json``,
:mod:`tracking.points`) and the launcher encodes them to Parquet when it ships them: a script
that logs a handful of values never imports pyarrow. Larger batches are encoded to Parquet by
the writer itself, where columnar encoding repays the import.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import threading
import time
import weakref
from collections import deque
from typing import Callable

from .errors import MetricDeliveryError, StoreError
from .points import decode_json_batch, encode_json_batch, summarize_records
from .records import RunRecords

_BATCH_RE = re.compile(r"^(?P<writer>.+)-(?P<seq>\d{10})\.(?P<format>parquet|points\.json)$")
_SUMMARY_PREFIX = "summary-"
MAX_ROWS_PER_BATCH = 500_000  # bounded batches: each one is durable before the next is encoded
JOB_JSON_ROWS = 20_000        # a job's batches up to this size are spooled as JSON


class SpoolShipper:
    """Uploads a spool directory's batch files to the store, in order, then deletes them.

    Safe to call from one thread at a time. A failed upload leaves the file (and every later
    one) in the spool for the next call, after a backoff.
    """

    def __init__(self, spool_dir: str, records: RunRecords, run_id: str):
        self.spool_dir, self.records, self.run_id = spool_dir, records, run_id
        self.last_error: Exception | None = None
        self._retry_at = 0.0
        self._backoff = 0.5
        self._lock = threading.Lock()

    def pending(self) -> list[str]:
        try:
            names = os.listdir(self.spool_dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if _BATCH_RE.match(n) or
                      (n.startswith(_SUMMARY_PREFIX) and n.endswith(".json")))

    def ship(self, force: bool = False) -> int:
        """Ship what is spooled; return how many files are still pending."""
        with self._lock:
            if not force and time.monotonic() < self._retry_at:
                return len(self.pending())
            batches = [n for n in self.pending() if _BATCH_RE.match(n)]
            summaries = [n for n in self.pending() if n.startswith(_SUMMARY_PREFIX)]
            try:
                for name in batches + summaries:
                    self._ship_one(name)
            except (StoreError, OSError) as exc:
                self.last_error = exc
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, 10.0)
                _log().warning("runyard: store unreachable, %d metric file(s) kept in %s: %s",
                            len(self.pending()), self.spool_dir, exc)
            else:
                self.last_error, self._backoff = None, 0.5
            return len(self.pending())

    def _ship_one(self, name: str) -> None:
        path = os.path.join(self.spool_dir, name)
        store = self.records.store
        if name.startswith(_SUMMARY_PREFIX):
            writer = name[len(_SUMMARY_PREFIX):-len(".json")]
            with open(path, "rb") as fh:
                data = fh.read()
            store.put_bytes(self.records.run_key(self.run_id, "summary", f"{writer}.json"), data)
            # a newer summary may have replaced the file meanwhile: only delete what we sent
            try:
                with open(path, "rb") as fh:
                    if fh.read() == data:
                        os.unlink(path)
            except FileNotFoundError:
                pass
            return
        match = _BATCH_RE.match(name)
        if match["format"] == "parquet":
            store.put_file(self.records.run_key(self.run_id, "metrics", name), path)
        else:  # a job's JSON batch: encode it here, under the key the writer's number gives it
            from .metrics import encode_batch, to_parquet_bytes
            with open(path, "rb") as fh:
                data = fh.read()
            try:
                records, seq = decode_json_batch(data)
                table = encode_batch(records, seq)
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                # never written by our writer (atomic renames): set it aside, ship the rest
                os.replace(path, path + ".bad")
                _log().error("runyard: %s is not a metric batch (%s); set aside as %s.bad, "
                             "the other batches still ship", path, exc, name)
                return
            store.put_bytes(self.records.run_key(self.run_id, "metrics", f"{match['writer']}-"
                                                 f"{match['seq']}.parquet"),
                            to_parquet_bytes(table))
        os.unlink(path)


class MetricWriter:
    """Buffers records in memory and flushes them to a spool directory every ``interval`` s.

    Args:
        spool_dir: local directory for batch files (created).
        writer_id: unique per process and run; part of every batch name.
        ship: callable run after each flush (interactive runs ship themselves); None in a job.
        interval: flush interval in seconds.
        on_tick: called from the flush thread after each flush (heartbeats).
        json_rows: batches of at most this many points are spooled as JSON, for the shipper to
            encode (0: always Parquet).
    """

    def __init__(self, spool_dir: str, writer_id: str, *, ship: Callable[[], int] | None,
                 interval: float, on_tick: Callable[[], None] | None = None,
                 json_rows: int = 0):
        self.spool_dir, self.writer_id = spool_dir, writer_id
        self.interval = interval
        self.json_rows = json_rows
        self._ship, self._on_tick = ship, on_tick
        self.buffer: deque = deque()
        self.append = self.buffer.append          # the hot path: one C call
        self._seq = 0
        self._batch_no = 0
        self._summary: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        os.makedirs(spool_dir, exist_ok=True)
        self._thread = threading.Thread(target=self._loop, name=f"runyard-writer-{writer_id}",
                                        daemon=True)
        self._thread.start()
        _LIVE_WRITERS.add(self)

    # -------------------------------------------------------------- flushing
    def _loop(self) -> None:
        while not self._stopped:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopped:
                break
            try:
                self.flush_now()
                if self._on_tick:
                    self._on_tick()
            except Exception:  # noqa: BLE001 - the flush thread must never die
                _log().exception("runyard: metric flush failed; will retry")

    def flush_now(self) -> int:
        """Spool what is buffered (batch by batch, shipping each), return files still pending.

        Works on the length seen at entry, so a caller logging flat out cannot keep the flush
        thread chasing it forever; what arrives meanwhile goes with the next flush.
        """
        with self._lock:
            remaining = len(self.buffer)
            pending = 0
            while True:
                taken = self._spool_batch(min(remaining, MAX_ROWS_PER_BATCH))
                remaining -= taken
                pending = self._ship() if self._ship else 0
                if remaining <= 0:
                    return pending

    def _spool_batch(self, n: int) -> int:
        """Encode the oldest ``n`` records into one spool file (atomic) and fold the summary."""
        if n <= 0:
            return 0
        popleft = self.buffer.popleft
        records = [popleft() for _ in range(n)]
        stem = f"{self.writer_id}-{self._batch_no:010d}"
        if n <= self.json_rows:
            _atomic_write(os.path.join(self.spool_dir, f"{stem}.points.json"),
                          encode_json_batch(records, self._seq))
            self._summary = summarize_records(records, self._summary)
        else:
            from .metrics import encode_batch, summarize, to_parquet_bytes
            table = encode_batch(records, self._seq)
            _atomic_write(os.path.join(self.spool_dir, f"{stem}.parquet"), to_parquet_bytes(table))
            self._summary = summarize(table, self._summary)
        self._seq += n
        self._batch_no += 1
        _atomic_write(os.path.join(self.spool_dir, f"{_SUMMARY_PREFIX}{self.writer_id}.json"),
                      json.dumps(self._summary, allow_nan=True).encode())
        return n

    def flush(self, timeout: float | None = None) -> None:
        """Write and (interactive) ship everything logged so far.

        Raises:
            MetricDeliveryError: files still undelivered when ``timeout`` expires.
        """
        deadline = time.monotonic() + (timeout if timeout is not None else 60.0)
        pending = self.flush_now()
        while pending and time.monotonic() < deadline:
            time.sleep(0.2)
            with self._lock:
                pending = self._ship() if self._ship else 0
        if pending:
            raise MetricDeliveryError(
                f"{pending} metric file(s) not delivered to the store within the timeout; they are "
                f"kept in {self.spool_dir} and shipped on the next flush",
                pending_files=sorted(os.listdir(self.spool_dir)))

    def close(self, timeout: float | None = None) -> None:
        """Final flush and stop the thread (idempotent)."""
        if self._stopped:
            return
        try:
            self.flush(timeout)
        finally:
            self._stopped = True
            self._wake.set()
            _LIVE_WRITERS.discard(self)
        if self._ship and not os.listdir(self.spool_dir):
            import shutil
            shutil.rmtree(self.spool_dir, ignore_errors=True)

    @property
    def summary(self) -> dict[str, dict]:
        return self._summary


def _log():
    """The writer's logger (logging is imported on the first message: job scripts start lighter)."""
    import logging
    return logging.getLogger("runyard.writer")


def _atomic_write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


_LIVE_WRITERS: "weakref.WeakSet[MetricWriter]" = weakref.WeakSet()


@atexit.register
def _drain_at_exit() -> None:
    """Interpreter exit drains every writer; undelivered files are reported, not lost."""
    for writer in list(_LIVE_WRITERS):
        try:
            writer.close(timeout=30)
        except MetricDeliveryError as exc:
            _log().error("runyard: %s", exc)
        except Exception as exc:  # noqa: BLE001
            _log().error("runyard: could not drain metrics at exit: %s", exc)
