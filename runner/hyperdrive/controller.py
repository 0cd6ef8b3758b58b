"""The sweep controller: a supervised job that samples, launches trials and stops bad ones.

``experiment.submit(hyperdrive_config)`` records the sweep (parent) run and submits the
controller as that run's job, to the same compute target as the trials (a detached process on
the local target, a task on a Ray node), so closing the notebook does not stop the sweep. The
controller (``python -m runner.hyperdrive.controller``) then:

* keeps at most ``max_concurrent_runs`` trials running, stops after ``max_total_runs`` trials or
  ``max_duration_minutes``;
* reads each running trial's primary metric from the store and evaluates the policy; every
  decision is logged on the parent as a row of the ``early_termination`` table (trial,
  interval, metric, threshold, reason) and the trial is canceled;
* on SIGTERM (the parent was canceled) cancels its running trials and exits, so the launcher
  records the parent Canceled.
"""
from __future__ import annotations

import math
import signal
import sys
import time
from typing import Any

from targets.base import describe_target
from tracking import config as tconfig
from tracking.metric_store import read_metrics_table
from tracking.metrics import sort_series
from tracking.records import RunRecords
from tracking.status import RunStatus

from ..config import Environment, ScriptRunConfig, convert_arguments
from . import HyperDriveConfig, PolicyState, PrimaryMetricGoal, to_arguments

DECISIONS_METRIC = "early_termination"
CONTROLLER_MODULE = "runner.hyperdrive.controller"
ENV_POLL = "RUNYARD_SWEEP_POLL_SECONDS"


def submit_sweep(experiment: Any, config: HyperDriveConfig, tags: dict | None = None,
                 **kwargs: Any):
    """Record the sweep run and start its controller as a job; returns a HyperDriveRun."""
    from ..snapshot import take_snapshot
    from ..submission import submit_script
    trial = config.run_config
    if not isinstance(trial, ScriptRunConfig):
        raise TypeError("HyperDriveConfig(run_config=...) must be a ScriptRunConfig")
    trial.validate_for_submit()
    snap = take_snapshot(experiment.workspace.store, trial.source_directory)
    if not tconfig.quiet():
        print(snap.report(), file=sys.stderr)
    controller = ScriptRunConfig(source_directory=trial.source_directory,
                                 compute_target=trial.compute_target,
                                 run_config=trial.run_config, environment=trial.environment)
    controller.run_config = controller.run_config.model_copy(update={"script": None})
    record = {"module": CONTROLLER_MODULE, "script": None, "arguments": [],
              "hyperdrive": {**config.spec_dict(), "trial": _trial_spec(trial)}}
    return submit_script(experiment, controller, tags=tags, snapshot_id=snap.snapshot_id,
                         extra_record=record, kind="sweep", quiet=True)


def _trial_spec(trial: ScriptRunConfig) -> dict[str, Any]:
    return {"script": trial.script or trial.run_config.script,
            "command": trial.command or trial.run_config.command,
            "arguments": convert_arguments(trial.arguments or trial.run_config.arguments),
            "environment": trial.effective_environment.spec(),
            "target": describe_target(trial.effective_target),
            "max_run_duration_seconds": trial.max_run_duration_seconds}


def _trial_config(spec: dict[str, Any], params: dict[str, Any]) -> ScriptRunConfig:
    return ScriptRunConfig(source_directory=".", script=spec["script"], command=spec["command"],
                           arguments=[*spec["arguments"], *to_arguments(params)],
                           compute_target=spec["target"],
                           environment=Environment.model_validate(spec["environment"]),
                           max_run_duration_seconds=spec["max_run_duration_seconds"])


class SweepController:
    """Runs one sweep to the end from inside its parent run's job."""

    def __init__(self, experiment: Any, parent: Any, poll_seconds: float = 1.0):
        self.experiment, self.parent = experiment, parent
        self.records = RunRecords(experiment.workspace.store)
        record = self.records.read_run(parent.id)
        self.spec = record["hyperdrive"]
        self.snapshot_id = record["snapshot_id"]
        self.config = HyperDriveConfig.from_spec_dict(self.spec, run_config=object())
        self.goal: PrimaryMetricGoal = self.config.primary_metric_goal
        self.metric = self.config.primary_metric_name
        seed = self.config.hyperparameter_sampling.properties.get("seed")
        self.sampler = self.config.create_sampler(seed)
        self.state = PolicyState()
        self.poll_seconds = poll_seconds
        self.active: dict[str, dict] = {}     # run id -> hyperparameters
        self.reports: dict[str, list[float]] = {}
        self.report_times: dict[str, list[float]] = {}
        self.launched_at: dict[str, float] = {}
        self.finished: dict[str, str] = {}    # run id -> final status
        self.launched = 0
        self.stopping = False

    def run(self) -> int:
        limit = self.config.effective_total_runs
        concurrent = self.config.max_concurrent_runs or limit
        deadline = time.monotonic() + self.config.max_duration_minutes * 60
        while True:
            self._refresh()
            if self.stopping or time.monotonic() > deadline:
                self._cancel_all("sweep canceled" if self.stopping else "max_duration_minutes reached")
                break
            self._apply_policy()
            while (len(self.active) < concurrent and self.launched < limit
                   and not self.sampler.exhausted):
                suggestion = self.sampler.suggest(1)
                if not suggestion:
                    break
                self._launch(suggestion[0])
            if not self.active and (self.launched >= limit or self.sampler.exhausted):
                break
            time.sleep(self.poll_seconds)
        self.parent.flush()
        ok = [s for s in self.finished.values() if s in ("Completed", "Canceled")]
        return 0 if ok or not self.finished else 1

    def _launch(self, params: dict[str, Any]) -> None:
        from ..submission import submit_script
        run_id = f"{self.parent.id}_{self.launched}"
        submit_script(self.experiment, _trial_config(self.spec["trial"], params), parent=self.parent,
                      snapshot_id=self.snapshot_id, run_id=run_id, quiet=True,
                      extra_record={"hyperparameters": params, "trial_number": self.launched})
        self.active[run_id] = params
        self.launched_at[run_id] = time.time()
        self.launched += 1
        print(f"trial {run_id}: {params}", flush=True)

    def _refresh(self) -> None:
        from tracking.run import Run
        for run_id, params in list(self.active.items()):
            status = Run(self.experiment, run_id).get_status()
            self.reports[run_id], self.report_times[run_id] = self._primary_series(run_id)
            if RunStatus(status).is_terminal():
                del self.active[run_id]
                self.finished[run_id] = status
                values = [v for v in self.reports[run_id] if not math.isnan(v)]
                self.sampler.observe(params, self.goal.best(values) if values else None)
                print(f"trial {run_id}: {status}, best {self.metric} = "
                      f"{self.goal.best(values) if values else None}", flush=True)

    def _primary_series(self, run_id: str) -> tuple[list[float], list[float]]:
        table = read_metrics_table(self.records, run_id)
        if table.num_rows == 0:
            return [], []
        import pyarrow.compute as pc
        table = sort_series(table.filter(pc.equal(table.column("name"), self.metric)))
        values = [float(v) if v is not None else math.nan for v in table.column("value").to_pylist()]
        return values, table.column("time").to_pylist()

    def _ready_reports(self) -> dict[str, list[float]]:
        """Reports cut so that interval k of a running trial is judged only once every trial
        that was already running when it reported k has reported k too (or ended).

        Without this, a fast trial would be compared with a pool that lacks its slower peers
        and the verdict would depend on polling times.
        """
        ready = {}
        for run_id, values in self.reports.items():
            if run_id not in self.active:
                ready[run_id] = values
                continue
            times, k = self.report_times.get(run_id, []), 0
            while k < len(values):
                peers_behind = [p for p in self.active if p != run_id and
                                self.launched_at[p] <= times[k] and len(self.reports.get(p, [])) <= k]
                if peers_behind:
                    break
                k += 1
            ready[run_id] = values[:k]
        return ready

    def _apply_policy(self) -> None:
        decisions = self.config.policy.evaluate(self._ready_reports(), self.goal, self.state,
                                                metric_name=self.metric)
        for d in decisions:
            if d.trial_id not in self.active:
                continue  # already finished: nothing to stop
            self.parent.log_row(DECISIONS_METRIC, trial=str(d.trial_id), interval=d.interval,
                                metric=d.metric_value, threshold=d.threshold, reason=d.reason)
            print(f"early termination: {d.trial_id} at interval {d.interval}: {d.reason}", flush=True)
            self._cancel(str(d.trial_id))
        if decisions:
            self.parent.flush()

    def _cancel(self, run_id: str) -> None:
        from ..submission import ScriptRun
        try:
            ScriptRun(self.experiment, run_id).cancel(wait=False)
        except Exception as exc:  # noqa: BLE001 - a trial that just ended cannot be canceled
            print(f"could not cancel {run_id}: {exc}", flush=True)

    def _cancel_all(self, why: str) -> None:
        print(f"{why}: canceling {len(self.active)} running trial(s)", flush=True)
        for run_id in list(self.active):
            self._cancel(run_id)


def main() -> int:
    import os
    from tracking.run import Run
    from ..workspace import Experiment, Workspace
    parent = Run.get_context(allow_offline=False)
    experiment = Experiment(Workspace(), parent.experiment.name)
    controller = SweepController(experiment, parent, float(os.environ.get(ENV_POLL, "1.0")))

    def stop(_signo: int, _frame: Any) -> None:
        controller.stopping = True

    signal.signal(signal.SIGTERM, stop)
    return controller.run()


if __name__ == "__main__":
    sys.exit(main())
