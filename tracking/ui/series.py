"""Chart data for a run's metrics, built server-side from the Arrow metrics table.

Each metric becomes one JSON-ready chart spec, chosen by how it was logged (the seed's table of
chart kinds):

* ``run.log`` repeated -> ``line`` over step (or call order when no step was given);
  logged once -> ``single`` (a value in the single-values table); strings -> ``values``
* ``run.log_list`` -> ``line`` over the list index
* ``log_row`` / ``log_table`` with two or more numeric columns -> ``xy`` (first numeric column as x),
  always with the ``columns`` for the table view; otherwise ``table``
* ``log_image`` -> ``images`` (stored file names); ``log_confusion_matrix`` -> ``matrix``;
  residuals / predictions with bins -> ``bars``; anything else JSON -> ``json``

Long series are downsampled to about ``max_points`` points keeping, per bucket, the minimum and
the maximum (the envelope), plus the first and last point, so spikes never disappear.
"""
from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..metric_store import read_metrics_table
from ..metrics import shape_metrics, sort_series
from ..points import BIGINT, IMAGE, JSON_KINDS, LIST, ROW, STR, TABLE
from ..records import RunRecords

DEFAULT_POINTS = 2000
MAX_TABLE_ROWS = 1000
MAX_IMAGES = 50


def finite(values: Any) -> list:
    """JSON has no NaN/inf: they become ``None`` (a gap in the line)."""
    arr = np.asarray(values, dtype=float)
    out = arr.astype(object)
    out[~np.isfinite(arr)] = None
    return out.tolist()


def envelope_indices(y: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of the points to keep: per bucket its min and max, plus both ends, in order."""
    n = len(y)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, (max_points - 2) // 2)
    size = math.ceil(n / buckets)
    padded = np.full(buckets * size, np.nan)
    padded[:n] = y
    grid = padded.reshape(buckets, size)
    offsets = np.arange(buckets) * size
    lows = np.where(np.isnan(grid), np.inf, grid).argmin(axis=1) + offsets
    highs = np.where(np.isnan(grid), -np.inf, grid).argmax(axis=1) + offsets
    keep = np.concatenate([lows, highs, [0, n - 1]])
    return np.unique(keep[keep < n])


def line_spec(x: np.ndarray, y: np.ndarray, max_points: int, xlabel: str) -> dict[str, Any]:
    idx = envelope_indices(y, max_points)
    return {"chart": "line", "x": finite(x[idx]), "y": finite(y[idx]), "xlabel": xlabel,
            "total": int(len(y)), "downsampled": bool(len(idx) < len(y))}


def _by_name(table: pa.Table) -> dict[str, pa.Table]:
    """Split the table per metric name (in first-logged order)."""
    if table.num_rows == 0:
        return {}
    names = table.column("name")
    if pa.types.is_dictionary(names.type):
        names = names.cast(pa.string())
    unique = pc.unique(names).to_pylist()
    if len(unique) == 1:
        return {unique[0]: table}
    return {name: table.filter(pc.equal(names, name)) for name in unique}


def metric_spec(name: str, part: pa.Table, max_points: int = DEFAULT_POINTS) -> dict[str, Any]:
    """The chart spec of one metric's rows."""
    kind = part.column("kind")[part.num_rows - 1].as_py()
    spec: dict[str, Any] = {"name": name, "kind": kind, "count": part.num_rows}
    if kind in (ROW, TABLE):
        spec.update(_table_spec(_ordered_columns(part, shape_metrics(part)[name]), max_points))
    elif kind in JSON_KINDS:
        value = shape_metrics(part)[name]
        spec.update(_json_spec(kind, value[-1] if part.num_rows > 1 else value))
    elif kind == IMAGE:
        ordered = part.take(pc.sort_indices(part, [("time", "ascending"), ("seq", "ascending")]))
        spec.update(chart="images", files=ordered.column("text").to_pylist()[-MAX_IMAGES:])
    else:
        spec.update(_scalar_spec(part, kind, max_points))
    return spec


def _scalar_spec(part: pa.Table, kind: str, max_points: int) -> dict[str, Any]:
    if kind != LIST and part.num_rows == 1:
        value = shape_metrics(part)
        return {"chart": "single", "value": json_safe(next(iter(value.values())))}
    vtypes = part.column("vtype").to_numpy(zero_copy_only=False)
    if np.any((vtypes == STR) | (vtypes == BIGINT)):
        return _values_spec(part if kind == LIST else sort_series(part))
    # numeric: order with numpy on the needed columns only (a 1,000,000-point table stays put)
    y = part.column("value").to_numpy(zero_copy_only=False).astype(float)
    times = part.column("time").to_numpy(zero_copy_only=False)
    seqs = part.column("seq").to_numpy(zero_copy_only=False)
    steps = part.column("step")
    if kind == LIST:
        order = np.lexsort((seqs, times))
        return line_spec(np.arange(len(y), dtype=float), y[order], max_points, "index")
    if steps.null_count == 0:
        x = steps.to_numpy().astype(float)
        if not np.all(x[1:] >= x[:-1]):
            order = np.lexsort((seqs, times, x))
            x, y = x[order], y[order]
        return line_spec(x, y, max_points, "step")
    # some or all points without a step: logged order (stepped points first, as get_metrics)
    keys = steps.to_numpy(zero_copy_only=False).astype(float)
    order = np.lexsort((seqs, times, np.where(np.isnan(keys), np.inf, keys)))
    return line_spec(np.arange(len(y), dtype=float), y[order], max_points, "index")


def _values_spec(part: pa.Table) -> dict[str, Any]:
    """Strings (or exact big integers): a table of the last values."""
    items = next(iter(shape_metrics(part).values()))
    items = items if isinstance(items, list) else [items]
    steps = part.column("step").to_pylist()
    rows = [[s if s is not None else i, str(v)] for i, (s, v) in enumerate(zip(steps, items))]
    return {"chart": "values", "values": rows[-MAX_TABLE_ROWS:], "total": len(rows)}


def _ordered_columns(part: pa.Table, columns: dict[str, list]) -> dict[str, list]:
    """Columns in the order the user logged them (the first is the x axis)."""
    order: dict[str, None] = {}
    for text in part.column("text").to_pylist():
        try:
            order.update(dict.fromkeys(json.loads(text)))
        except (TypeError, ValueError):
            continue
        if len(order) >= len(columns):
            break
    return {k: columns[k] for k in [*order, *columns] if k in columns}


def _numeric(column: list) -> bool:
    present = [v for v in column if v is not None]
    return bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                 for v in present)


def _table_spec(columns: dict[str, list], max_points: int) -> dict[str, Any]:
    numeric = [k for k, v in columns.items() if _numeric(v)]
    shown = {k: [json_safe(x) for x in v[:MAX_TABLE_ROWS]] for k, v in columns.items()}
    rows = max((len(v) for v in columns.values()), default=0)
    spec: dict[str, Any] = {"chart": "table", "columns": shown, "rows": rows}
    if len(numeric) >= 2:
        x_name = numeric[0]
        x = np.array([np.nan if v is None else v for v in columns[x_name]], dtype=float)
        series = []
        for col in numeric[1:]:
            y = np.array([np.nan if v is None else v for v in columns[col]], dtype=float)
            idx = envelope_indices(y, max_points)
            series.append({"name": col, "x": finite(x[idx]), "y": finite(y[idx])})
        spec.update(chart="xy", x_name=x_name, series=series)
    return spec


def _json_spec(kind: str, value: Any) -> dict[str, Any]:
    data = value.get("data", value) if isinstance(value, dict) else None
    if isinstance(data, dict):
        matrix = data.get("matrix")
        if kind == "confusion_matrix" and isinstance(matrix, list) and all(isinstance(r, list) for r in matrix):
            labels = data.get("class_labels") or data.get("labels") or list(range(len(matrix)))
            return {"chart": "matrix", "labels": [str(l) for l in labels],
                    "matrix": [[json_safe(c) for c in row] for row in matrix]}
        edges, counts = data.get("bin_edges"), data.get("bin_counts")
        if isinstance(edges, list) and isinstance(counts, list) and counts:
            centers = [(_num(edges[i]) + _num(edges[i + 1])) / 2 if i + 1 < len(edges) else i
                       for i in range(len(counts))]
            return {"chart": "bars", "x": finite(centers), "y": finite([_num(c) for c in counts])}
    return {"chart": "json", "value": json_safe(value)}


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def run_charts(table: pa.Table, max_points: int = DEFAULT_POINTS,
               names: list[str] | None = None) -> list[dict[str, Any]]:
    """Chart specs for every metric of a run's table (or only ``names``)."""
    parts = _by_name(table)
    return [metric_spec(name, part, max_points) for name, part in parts.items()
            if names is None or name in names]


class MetricsCache:
    """Arrow tables of recently viewed runs, re-read only when the run's metric files change.

    A 1,000,000-point run's table is read once; the next chart request costs one listing.
    """

    def __init__(self, records: RunRecords, size: int = 4):
        self.records = records
        self.size = size
        self._tables: OrderedDict[str, tuple[tuple[str, ...], pa.Table]] = OrderedDict()
        self._lock = threading.Lock()

    def table(self, run_id: str) -> pa.Table:
        listing = tuple(self.records.store.list(self.records.run_key(run_id, "metrics")))
        with self._lock:
            cached = self._tables.get(run_id)
            if cached and cached[0] == listing:
                self._tables.move_to_end(run_id)
                return cached[1]
        table = read_metrics_table(self.records, run_id)
        with self._lock:
            self._tables[run_id] = (listing, table)
            self._tables.move_to_end(run_id)
            while len(self._tables) > self.size:
                self._tables.popitem(last=False)
        return table
