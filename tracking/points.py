"""Metric points without pyarrow: validation at the call, the JSON spool format, summaries.

Everything a job script needs to record points lives here and imports only the standard library,
so ``from tracking import Run; Run.get_context().log(...)`` starts in a few tens of milliseconds.
Columnar encoding (Parquet, :mod:`tracking.metrics`) happens where pyarrow is already loaded: in
the launcher, or in a writer whose batches are large enough to repay the import.

A point is a tuple: ``run.log`` appends ``(name, value, step, time)`` (kind ``scalar``); every
other call appends ``(name, value, step, time, kind, description)``.

A JSON spool batch is one object ``{"seq": <first seq>, "records": [[...], ...]}``, written with
``allow_nan`` so NaN and +/-inf survive, and ints of any size stay exact.
"""
from __future__ import annotations

import json
import math
import numbers
from typing import Any, Iterable

from .errors import InvalidMetricValueError

FLOAT, INT, BOOL, STR, JSON, BIGINT = 0, 1, 2, 3, 4, 5
SCALAR, LIST, ROW, TABLE, IMAGE = "scalar", "list", "row", "table", "image"
JSON_KINDS = ("confusion_matrix", "accuracy_table", "predictions", "residuals")
NO_LAST_KINDS = (ROW, TABLE, *JSON_KINDS)  # large payloads: a summary keeps only scalars
MAX_STR_VALUE = 1 << 20           # 1 MiB per string metric value
MAX_JSON_PAYLOAD = 16 << 20       # 16 MiB per JSON payload (confusion matrix, table...)
F64_EXACT = 2 ** 53


# ------------------------------------------------------------------------------ validation
def normalize_value(name: str, value: Any) -> Any:
    """Return a storable scalar (float, int, bool, str) or raise a clear error.

    numpy scalars become Python scalars; NaN and +/-inf are kept.
    """
    t = type(value)
    if t is float or t is int or t is bool:
        return value
    if t is str:
        if len(value) > MAX_STR_VALUE:
            raise InvalidMetricValueError(
                f"metric {name!r}: string value of {len(value):,} characters exceeds the "
                f"{MAX_STR_VALUE:,} limit; upload it as a file with run.upload_file instead")
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)  # 0-d numpy arrays, torch scalars
    if callable(item) and getattr(value, "ndim", getattr(value, "dim", lambda: 1)) in (0, None):
        return normalize_value(name, item())
    if callable(item) and getattr(value, "shape", None) == ():
        return normalize_value(name, item())
    raise InvalidMetricValueError(
        f"metric {name!r}: cannot log a value of type {t.__name__} ({_short(value)}); "
        "log an int, float, bool or str, use log_list for sequences, log_table for columns, "
        "or upload_file for objects")


def check_json_payload(name: str, value: Any) -> str:
    """Serialise a JSON payload (dict or JSON string) or raise a clear error."""
    try:
        text = value if isinstance(value, str) else json.dumps(value, allow_nan=True,
                                                                 default=_json_default)
        json.loads(text)
    except (TypeError, ValueError) as exc:
        raise InvalidMetricValueError(
            f"metric {name!r}: value is not JSON-serialisable ({exc}); pass a dict of lists "
            "of numbers/strings") from None
    if len(text) > MAX_JSON_PAYLOAD:
        raise InvalidMetricValueError(
            f"metric {name!r}: payload of {len(text):,} bytes exceeds {MAX_JSON_PAYLOAD:,}")
    return text


def _json_default(obj: Any) -> Any:
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    item = getattr(obj, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


# ------------------------------------------------------------------------------ columns
def split_value(value: Any, kind: str) -> tuple[float | None, str | None, int]:
    """A point's stored columns: (``value`` float or None, ``text`` or None, ``vtype``)."""
    if kind in (ROW, TABLE) or kind in JSON_KINDS:
        return None, value, JSON          # already serialised at the call
    if kind == IMAGE:
        return None, value, STR
    t = type(value)
    if t is bool:
        return float(value), None, BOOL
    if t is int:
        if abs(value) >= F64_EXACT:
            approx = float(value) if abs(value) < 1e308 else (math.inf if value > 0 else -math.inf)
            return approx, str(value), BIGINT
        return float(value), None, INT
    if t is float:
        return value, None, FLOAT
    return None, value, STR


def row_value(row: dict) -> Any:
    """The value a stored row gives back (inverse of :func:`split_value`)."""
    vtype = row["vtype"]
    if vtype == FLOAT:
        return row["value"]
    if vtype == INT:
        return int(row["value"])
    if vtype == BOOL:
        return bool(row["value"])
    if vtype == BIGINT:
        return int(row["text"])
    if vtype == JSON:
        return json.loads(row["text"])
    return row["text"]


# ------------------------------------------------------------------------------ JSON spool
def encode_json_batch(records: list[tuple], seq_start: int) -> bytes:
    return json.dumps({"seq": seq_start, "records": records}, allow_nan=True,
                      separators=(",", ":")).encode()


def decode_json_batch(data: bytes) -> tuple[list[tuple], int]:
    """(records, first seq) of a JSON spool batch."""
    doc = json.loads(data)
    return [tuple(r) for r in doc["records"]], int(doc["seq"])


# ------------------------------------------------------------------------------ summary
def summarize_records(records: list[tuple], previous: dict[str, dict] | None = None,
                      ) -> dict[str, dict]:
    """Fold a batch of points into a per-name summary, as :func:`tracking.metrics.summarize`
    does for an encoded batch (same fields and rules: NaN only when every value is NaN, step and
    time are the batch's maxima, ``last`` is the last point's value)."""
    summary = {k: dict(v) for k, v in (previous or {}).items()}
    batch: dict[str, dict] = {}
    for rec in records:
        name, value, step, t = rec[0], rec[1], rec[2], rec[3]
        kind = rec[4] if len(rec) == 6 else SCALAR
        num = split_value(value, kind)[0]
        b = batch.get(name)
        if b is None:
            b = batch[name] = {"count": 0, "nums": [], "nan": False, "step": None, "time": None}
        b["count"] += 1
        b["kind"], b["last"] = kind, value
        if num is not None:
            if num != num:
                b["nan"] = True
            else:
                b["nums"].append(num)
        if step is not None and (b["step"] is None or step > b["step"]):
            b["step"] = step
        if t is not None and (b["time"] is None or t > b["time"]):
            b["time"] = t
    for name, b in batch.items():
        lo, hi = (min(b["nums"]), max(b["nums"])) if b["nums"] else \
            ((math.nan, math.nan) if b["nan"] else (None, None))
        entry = summary.setdefault(name, {"count": 0, "min": None, "max": None})
        entry["kind"] = b["kind"]
        entry["count"] += b["count"]
        entry["min"] = fold(min, entry["min"], lo)
        entry["max"] = fold(max, entry["max"], hi)
        entry["last"] = None if b["kind"] in NO_LAST_KINDS else b["last"]
        entry["last_step"] = b["step"]
        entry["last_time"] = b["time"]
    return summary


def fold(fn, a, b):
    """min/max of two summary values where None and NaN mean "nothing yet"."""
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return a
    return fn(a, b)


def merge_summaries(parts: Iterable[dict[str, dict]]) -> dict[str, dict]:
    """Merge per-writer summaries: counts add, min/max fold, last is the latest in time."""
    merged: dict[str, dict] = {}
    for part in parts:
        for name, entry in part.items():
            cur = merged.get(name)
            if cur is None:
                merged[name] = dict(entry)
                continue
            cur["count"] = cur.get("count", 0) + entry.get("count", 0)
            cur["min"] = fold(min, cur.get("min"), entry.get("min"))
            cur["max"] = fold(max, cur.get("max"), entry.get("max"))
            if (entry.get("last_time") or 0) >= (cur.get("last_time") or 0):
                for key in ("last", "last_step", "last_time", "kind"):
                    cur[key] = entry.get(key)
    return merged
