"""Metric methods of Run: log, log_list, log_row, log_table, log_image, JSON payloads, reads.

``run.log`` is the hot path: a type check, a set lookup and one deque append. Everything else
(validation of unusual values, encoding, shipping) happens off that path.
"""
from __future__ import annotations

import io
import os
import time
from typing import Any, Iterable

from . import config
from .errors import InvalidMetricValueError
from .points import IMAGE, JSON_KINDS, LIST, ROW, TABLE, check_json_payload, normalize_value
from .names import check_metric_name
from .writer import JOB_JSON_ROWS, MetricWriter, SpoolShipper

_time = time.time
# Points held in memory before run.log itself spools a batch. Bounds memory (~100 MB per million
# points) and what a SIGKILL can lose when a loop logs faster than the flush thread encodes.
MAX_BUFFERED_POINTS = 1_000_000


class RunMetrics:
    """Mixin for Run: the metric writer is created on first use, one per process and run."""

    id: str
    def _ensure_writer(self) -> MetricWriter:
        if self._writer is None or self._writer._stopped:  # noqa: SLF001
            interval = config.flush_interval()
            spool_env = os.environ.get(config.ENV_SPOOL_DIR)
            if self._in_job and spool_env:
                self._writer = MetricWriter(spool_env, self._writer_id, ship=None,
                                            interval=interval, json_rows=JOB_JSON_ROWS)
            else:
                import tempfile
                spool = tempfile.mkdtemp(prefix=f"runyard-spool-{self.id}-")
                shipper = SpoolShipper(spool, self._records, self.id)
                self._writer = MetricWriter(spool, self._writer_id, ship=shipper.ship,
                                            interval=interval, on_tick=self._heartbeat)
        return self._writer

    def _heartbeat(self, force: bool = False) -> None:
        if not self._owner:
            return
        now = _time()
        if force or now - self._last_heartbeat >= config.heartbeat_interval():
            self._last_heartbeat = now
            try:
                self._records.write_heartbeat(self.id, {"pid": os.getpid()})
            except Exception:  # noqa: BLE001 - a missed heartbeat is not fatal
                pass

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log a scalar (int, float, bool or str). Repeated calls build a series.

        Raises:
            InvalidMetricValueError: the value cannot be stored (object, 1 MiB+ string).
            InvalidNameError: the name is empty, too long or has control characters.
        """
        t = type(value)
        if (t is not float and t is not int) or description or (step is not None and type(step) is not int):
            return self._log_slow(name, value, description, step)
        if name not in self._names:
            self._names.add(check_metric_name(name))
        writer = self._writer or self._ensure_writer()
        buffer = writer.buffer
        buffer.append((name, value, step, _time()))
        if len(buffer) > MAX_BUFFERED_POINTS:
            writer.flush_now()  # back-pressure: a caller outpacing the flush thread helps it

    def _log_slow(self, name: str, value: Any, description: str, step: Any) -> None:
        check_metric_name(name)
        self._names.add(name)
        value = normalize_value(name, value)
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, int) and not hasattr(step, "__index__"):
                raise InvalidMetricValueError(f"metric {name!r}: step must be an int, got {step!r}")
            step = int(step)
        self._ensure_writer().append((name, value, step, _time(), "scalar", description or None))

    def log_list(self, name: str, value: Iterable[Any], description: str = "") -> None:
        """Log a list of numbers or strings (returned as a list by get_metrics)."""
        check_metric_name(name)
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise InvalidMetricValueError(f"log_list {name!r}: value must be a list, got {type(value).__name__}")
        values = [normalize_value(name, v) for v in value]
        now, writer = _time(), self._ensure_writer()
        for i, v in enumerate(values):
            writer.append((name, v, i, now, LIST, description or None))

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Log one row of a table; repeated calls build the table (dict of column lists)."""
        check_metric_name(name)
        row = {k: normalize_value(name, v) for k, v in kwargs.items()}
        self._ensure_writer().append((name, check_json_payload(name, row), None, _time(), ROW,
                                      description or None))

    def log_table(self, name: str, value: dict, description: str = "") -> None:
        """Log a table given as a dict of equal-length column lists."""
        check_metric_name(name)
        if not isinstance(value, dict):
            raise InvalidMetricValueError(f"log_table {name!r}: value must be a dict of column lists")
        columns = {k: [normalize_value(name, x) for x in (v if isinstance(v, (list, tuple)) else list(v))]
                   for k, v in value.items()}
        if len({len(c) for c in columns.values()}) > 1:
            raise InvalidMetricValueError(f"log_table {name!r}: columns have different lengths")
        self._ensure_writer().append((name, check_json_payload(name, columns), None, _time(),
                                      TABLE, description or None))

    def _log_json(self, kind: str, name: str, value: Any, description: str) -> None:
        check_metric_name(name)
        self._ensure_writer().append((name, check_json_payload(name, value), None, _time(), kind,
                                      description or None))

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        self._log_json(JSON_KINDS[0], name, value, description)

    def log_accuracy_table(self, name: str, value: Any, description: str = "") -> None:
        self._log_json(JSON_KINDS[1], name, value, description)

    def log_predictions(self, name: str, value: Any, description: str = "") -> None:
        self._log_json(JSON_KINDS[2], name, value, description)

    def log_residuals(self, name: str, value: Any, description: str = "") -> None:
        self._log_json(JSON_KINDS[3], name, value, description)

    def log_image(self, name: str, path: str | None = None, plot: Any = None,
                  description: str = "") -> None:
        """Log an image file or a matplotlib figure / pyplot module; stored under images/."""
        check_metric_name(name)
        if (path is None) == (plot is None):
            raise InvalidMetricValueError("log_image: give exactly one of path= or plot=")
        if plot is not None:
            buf = io.BytesIO()
            figure = plot.gcf() if hasattr(plot, "gcf") else plot
            if not hasattr(figure, "savefig"):
                raise InvalidMetricValueError("log_image: plot must be a matplotlib Figure or pyplot")
            figure.savefig(buf, format="png")
            data, ext = buf.getvalue(), ".png"
        else:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"log_image {name!r}: no image file at {path!r}")
            with open(path, "rb") as fh:
                data = fh.read()
            ext = os.path.splitext(path)[1].lower() or ".png"
        stored = self._image_file_name(name, ext)
        self._store.put_bytes(self._records.file_key(self.id, stored), data)
        self._ensure_writer().append((name, stored, None, _time(), IMAGE, description or None))

    def _image_file_name(self, name: str, ext: str) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "image"
        return f"images/{safe}_{time.time_ns()}{ext}"

    def flush(self, timeout_seconds: float = 300) -> None:
        """Deliver every metric logged so far (in a job: to the launcher's spool).

        Raises:
            MetricDeliveryError: some batches are still undelivered after the timeout.
        """
        if self._writer is not None:
            self._writer.flush(timeout_seconds)

    def get_metrics(self, name: str | None = None, recursive: bool = False,
                    run_type: str | None = None, populate: bool = False) -> dict[str, Any]:
        """Metrics in Azure's shapes; ``recursive=True`` gives ``{run_id: metrics}`` with children."""
        if self._writer is not None and (self._writer.buffer or not self._in_job):
            self._writer.flush_now()
        from .metric_store import get_metrics as _read_metrics  # pyarrow: only readers pay
        if not recursive:
            return _read_metrics(self._records, self.id, name)
        out = {self.id: _read_metrics(self._records, self.id, name)}
        for child in self.get_children(recursive=True):
            out[child.id] = _read_metrics(self._records, child.id, name)
        return out

    def get_metrics_summary(self) -> dict[str, dict]:
        """Last/min/max/count per metric from the per-run summary (no series read)."""
        if self._writer is not None and not self._in_job:
            self._writer.flush_now()
        from .metric_store import read_summary
        return read_summary(self._records, self.id)
