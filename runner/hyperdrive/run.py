"""``HyperDriveRun``: the sweep's parent run, with azureml v1's query methods."""
from __future__ import annotations

import math
from typing import Any

from tracking.metric_store import get_metrics as read_metrics
from tracking.metric_store import read_summary
from tracking.run import Run

from ..submission import ScriptRun
from .controller import DECISIONS_METRIC
from .policies import PrimaryMetricGoal


class HyperDriveRun(ScriptRun):
    """A sweep. ``cancel()`` stops the controller, which cancels its running trials.

    Example::

        sweep = experiment.submit(hyperdrive_config)
        sweep.wait_for_completion()
        best = sweep.get_best_run_by_primary_metric()
    """

    @property
    def hyperdrive_spec(self) -> dict[str, Any]:
        return self._record.get("hyperdrive") or {}

    @property
    def primary_metric_name(self) -> str:
        return self.hyperdrive_spec["primary_metric_name"]

    @property
    def primary_metric_goal(self) -> PrimaryMetricGoal:
        return PrimaryMetricGoal.parse(self.hyperdrive_spec["primary_metric_goal"])

    def _trial_best(self, run: Run) -> float | None:
        entry = read_summary(self._records, run.id).get(self.primary_metric_name)
        if not entry:
            return None
        value = entry["max"] if self.primary_metric_goal is PrimaryMetricGoal.MAXIMIZE else entry["min"]
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

    def get_children_sorted_by_primary_metric(self, top: int = 0, reverse: bool = False,
                                              discard_no_metric: bool = False) -> list[dict[str, Any]]:
        """Trials best first: ``[{run_id, hyperparameters, best_primary_metric, status}]``."""
        rows = []
        for child in self.get_children():
            best = self._trial_best(child)
            if best is None and discard_no_metric:
                continue
            rows.append({"run_id": child.id, "hyperparameters": child._record.get("hyperparameters", {}),  # noqa: SLF001
                         "best_primary_metric": best, "status": child.get_status()})
        sign = -1 if self.primary_metric_goal is PrimaryMetricGoal.MAXIMIZE else 1
        with_metric = sorted((r for r in rows if r["best_primary_metric"] is not None),
                             key=lambda r: sign * r["best_primary_metric"])
        ordered = with_metric + [r for r in rows if r["best_primary_metric"] is None]
        if reverse:
            ordered.reverse()
        return ordered[:top] if top else ordered

    def get_best_run_by_primary_metric(self, include_failed: bool = True,
                                       include_canceled: bool = True,
                                       include_resume_from_runs: bool = True) -> Run | None:
        """The trial with the best value of the primary metric (None if none reported it)."""
        for row in self.get_children_sorted_by_primary_metric(discard_no_metric=True):
            if (row["status"] == "Failed" and not include_failed) or \
                    (row["status"] == "Canceled" and not include_canceled):
                continue
            return ScriptRun(self.experiment, row["run_id"])
        return None

    def get_hyperparameters(self) -> dict[str, dict[str, Any]]:
        return {c.id: c._record.get("hyperparameters", {}) for c in self.get_children()}  # noqa: SLF001

    def get_metrics(self, name: str | None = None, recursive: bool = False,
                    run_type: str | None = None, populate: bool = False) -> dict[str, Any]:
        """Metrics of every trial, keyed by run id (as azureml's HyperDriveRun)."""
        return {c.id: read_metrics(self._records, c.id, name) for c in self.get_children()}

    def get_decisions(self) -> list[dict[str, Any]]:
        """Every early-termination decision: trial, interval, metric, threshold, reason."""
        table = read_metrics(self._records, self.id, DECISIONS_METRIC).get(DECISIONS_METRIC)
        if not table:
            return []
        keys = list(table)
        return [dict(zip(keys, values)) for values in zip(*(table[k] for k in keys))]
