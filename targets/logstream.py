"""Streams a job's stdout and stderr to the store as numbered chunks.

Both pipes are read by threads into one ordered buffer; ``flush()`` (called by the launcher
several times a second) writes what arrived as the next chunk object. A chunk that cannot be
written (store outage) stays in memory and goes out with the next flush. Output is also echoed
to the launcher's own stdout so ``docker logs`` / Ray logs show it.
"""
from __future__ import annotations

import os
import sys
import threading
from collections import deque
from typing import IO

from tracking.errors import StoreError
from tracking.records import RunRecords
from tracking.run_status import LOG_STREAM

STDERR_TAIL_BYTES = 8192


class LogStreamer:
    def __init__(self, records: RunRecords, run_id: str, echo: bool = True):
        self.records, self.run_id, self.echo = records, run_id, echo
        self._pending = bytearray()
        self._all = bytearray()
        self._stderr_tail: deque[bytes] = deque()
        self._stderr_size = 0
        self._seq = _next_sequence(records, run_id)
        self._lock = threading.Lock()
        self._readers: list[threading.Thread] = []
        self.arrived = threading.Event()  # set on new output, so the launcher can flush at once
        self.chunks_written = 0

    def attach(self, stdout: IO[bytes], stderr: IO[bytes]) -> None:
        for pipe, is_err in ((stdout, False), (stderr, True)):
            thread = threading.Thread(target=self._pump, args=(pipe, is_err), daemon=True)
            thread.start()
            self._readers.append(thread)

    def _pump(self, pipe: IO[bytes], is_err: bool) -> None:
        fd = pipe.fileno()
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            self.write(data, is_err)
        pipe.close()

    def write(self, data: bytes, is_err: bool = False) -> None:
        with self._lock:
            self._pending += data
            self._all += data
            self.arrived.set()
            if is_err:
                self._stderr_tail.append(data)
                self._stderr_size += len(data)
                while self._stderr_size - len(self._stderr_tail[0]) > STDERR_TAIL_BYTES:
                    self._stderr_size -= len(self._stderr_tail.popleft())
        if self.echo:
            try:
                (sys.stderr if is_err else sys.stdout).buffer.write(data)
                (sys.stderr if is_err else sys.stdout).flush()
            except (OSError, ValueError, AttributeError):
                pass

    def flush(self) -> None:
        with self._lock:
            if not self._pending:
                return
            data, seq = bytes(self._pending), self._seq
        try:
            self.records.put_log_chunk(self.run_id, LOG_STREAM, seq, data)
        except StoreError:
            return  # kept; the next flush retries with the same sequence number
        with self._lock:
            del self._pending[:len(data)]
            self._seq += 1
            self.chunks_written += 1

    def close(self, timeout: float = 10.0) -> None:
        for thread in self._readers:
            thread.join(timeout)
        self._readers = []
        self.flush()

    def stderr_tail(self) -> str:
        with self._lock:
            return b"".join(self._stderr_tail)[-STDERR_TAIL_BYTES:].decode("utf-8", "replace")

    def full_text(self) -> bytes:
        with self._lock:
            return bytes(self._all)


def _next_sequence(records: RunRecords, run_id: str) -> int:
    """Continue after chunks already written for the run (a target's image build output)."""
    try:
        return len(records.log_chunks(run_id, LOG_STREAM))
    except StoreError:
        return 0
