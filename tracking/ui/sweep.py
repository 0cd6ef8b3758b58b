"""What a sweep (HyperDrive) parent shows: trials ranked by the primary metric, decisions.

Contract with the sweep runner: the parent's record has ``kind == "sweep"`` and
``record["hyperdrive"] = {"primary_metric_name", "primary_metric_goal": "MINIMIZE"|"MAXIMIZE"}``;
trials are its children, each with ``record["hyperparameters"]``; early-termination decisions
are ``log_row("early_termination", trial=, interval=, metric=, threshold=, reason=)`` rows on the
parent. A trial's primary value is its best reported value (min or max by the goal), as Azure's
``get_best_run_by_primary_metric`` ranks them.

Used by the web UI and by the notebook widget; no web framework here.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..metric_store import get_metrics
from ..records import RunRecords
from .index import RunRow, _try_load


def is_sweep(record: dict[str, Any]) -> bool:
    return record.get("kind") == "sweep" or isinstance(record.get("hyperdrive"), dict)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def sweep_view(records: RunRecords, run_id: str, record: dict[str, Any],
               pool: ThreadPoolExecutor | None = None) -> dict[str, Any]:
    """JSON-ready sweep data: settings, ranked trials, parallel-coordinate axes, decisions."""
    settings = record.get("hyperdrive") or {}
    metric = str(settings.get("primary_metric_name") or "")
    goal = str(settings.get("primary_metric_goal") or "MINIMIZE").upper()
    entries = records.list_children(run_id)
    ids = [e["run_id"] for e in entries]
    if pool is None:
        rows = [_try_load(records, r) for r in ids]
    else:
        rows = list(pool.map(lambda r: _try_load(records, r), ids))
    params = _trial_records(records, ids, pool)
    summaries = _best_values(records, ids, metric, goal, pool)
    # launch order: the controller's trial_number, else creation time
    launched = sorted(zip(ids, rows), key=lambda p: (params[p[0]][1] is None, params[p[0]][1] or 0,
                                                     p[1].created if p[1] else 0.0))
    trials = [_trial(order, rid, row, params[rid][0], summaries.get(rid))
              for order, (rid, row) in enumerate(launched, start=1)]
    better_first = goal != "MAXIMIZE"
    ranked = sorted((t for t in trials if t["primary"] is not None),
                    key=lambda t: t["primary"], reverse=not better_first)
    ranked += [t for t in trials if t["primary"] is None]
    for rank, trial in enumerate(ranked, start=1):
        trial["rank"] = rank if trial["primary"] is not None else None
    return {"run_id": run_id, "primary_metric": metric, "goal": goal,
            "settings": {k: v for k, v in settings.items() if not isinstance(v, (dict, list))},
            "trials": ranked, "by_order": sorted(trials, key=lambda t: t["order"]),
            "parameters": sorted({k for t in trials for k in t["hyperparameters"]}),
            "decisions": _decisions(records, run_id)}


def _trial_records(records: RunRecords, ids: list[str], pool) -> dict[str, tuple[dict, Any]]:
    """run id -> (hyperparameters, trial_number or None)."""
    def read(rid: str) -> tuple[str, tuple[dict, Any]]:
        try:
            record = records.read_run(rid)
        except Exception:  # noqa: BLE001 - a half-written trial shows without parameters
            return rid, ({}, None)
        number = record.get("trial_number")
        return rid, (dict(record.get("hyperparameters") or {}),
                     number if isinstance(number, (int, float)) else None)
    pairs = pool.map(read, ids) if pool else map(read, ids)
    return dict(pairs)


def _best_values(records: RunRecords, ids: list[str], metric: str, goal: str, pool) -> dict:
    from ..metric_store import read_summary

    def best(rid: str) -> tuple[str, dict | None]:
        entry = read_summary(records, rid).get(metric)
        if not entry:
            return rid, None
        value = entry.get("max") if goal == "MAXIMIZE" else entry.get("min")
        return rid, {"best": _number(value), "last": _number(entry.get("last")),
                     "count": entry.get("count")}
    pairs = pool.map(best, ids) if pool else map(best, ids)
    return dict(pairs)


def _trial(order: int, run_id: str, row: RunRow | None, params: dict, values: dict | None) -> dict:
    return {"order": order, "run_id": run_id,
            "status": row.status if row else "NotStarted",
            "duration": row.duration if row else None,
            "hyperparameters": {str(k): v for k, v in params.items()},
            "primary": values["best"] if values else None,
            "last": values["last"] if values else None,
            "reports": values["count"] if values else 0}


def _decisions(records: RunRecords, run_id: str) -> list[dict[str, Any]]:
    columns = get_metrics(records, run_id, "early_termination").get("early_termination")
    if not isinstance(columns, dict):
        return []
    width = max((len(v) for v in columns.values() if isinstance(v, list)), default=0)
    return [{k: (v[i] if isinstance(v, list) and i < len(v) else None) for k, v in columns.items()}
            for i in range(width)]


def parallel_axes(view: dict[str, Any]) -> list[dict[str, Any]]:
    """Axes for a parallel-coordinates chart: numeric parameters as is, categorical ones as
    indices with tick labels, the primary metric last. Trials without a value are left out."""
    trials = [t for t in view["by_order"] if t["primary"] is not None]
    axes = []
    for name in view["parameters"]:
        values = [t["hyperparameters"].get(name) for t in trials]
        if all(_number(v) is not None for v in values):
            axes.append({"label": name, "values": [float(v) for v in values]})
        else:
            labels = sorted({str(v) for v in values})
            axes.append({"label": name, "values": [labels.index(str(v)) for v in values],
                         "ticktext": labels, "tickvals": list(range(len(labels)))})
    axes.append({"label": view["primary_metric"], "values": [t["primary"] for t in trials]})
    return axes
