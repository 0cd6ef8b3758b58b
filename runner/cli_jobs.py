"""CLI commands that submit and control jobs: submit, logs, cancel, rerun, snapshot."""
from __future__ import annotations

import sys
import time

import click

from tracking.status import RunStatus

from .cli import EXIT_FAILED, _workspace, main, store_option


@main.command(context_settings={"ignore_unknown_options": True})
@store_option
@click.option("--target", "-t", default="local", show_default=True, help="Compute target name")
@click.option("--experiment", "-e", default="default", show_default=True)
@click.option("--source", "source_directory", default=".", show_default=True,
              type=click.Path(file_okay=False), help="Source folder to snapshot")
@click.option("--requirements", "-r", default=None, type=click.Path(dir_okay=False),
              help="pip requirements file for the job's environment")
@click.option("--wait/--no-wait", default=False, help="Stream output until the run ends")
@click.option("--tag", "tags", multiple=True, help="key=value, repeatable")
@click.argument("script")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def submit(store, target, experiment, source_directory, requirements, wait, tags, script, args):
    """Submit SCRIPT (relative to --source) with ARGS (after --)."""
    from .config import Environment, ScriptRunConfig
    from .workspace import Experiment
    ws = _workspace(store)
    env = Environment.from_pip_requirements("cli", requirements) if requirements else None
    config = ScriptRunConfig(source_directory=source_directory, script=script, arguments=list(args),
                             compute_target=target, environment=env)
    tag_map = dict(t.split("=", 1) if "=" in t else (t, "") for t in tags)
    run = Experiment(ws, experiment).submit(config, tags=tag_map)
    click.echo(f"submitted {run.id} to {target}; follow with `runyard logs {run.id} --follow`")
    if wait:
        details = run.wait_for_completion(show_output=True, raise_on_error=False)
        sys.exit(0 if details["status"] == RunStatus.COMPLETED.value else EXIT_FAILED)


@main.command()
@store_option
@click.argument("run_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the run ends")
def logs(store, run_id, follow):
    """Print a run's output (stdout and stderr, as the job printed them)."""
    run = _workspace(store).get_run(run_id)
    seen = 0
    while True:
        for seen, text in run.iter_log_chunks(seen):
            click.echo(text, nl=False)
        status = RunStatus(run.get_status())
        if not follow or status.is_terminal():
            break
        time.sleep(0.5)
    for seen, text in run.iter_log_chunks(seen):
        click.echo(text, nl=False)
    if follow and status in (RunStatus.FAILED, RunStatus.CANCELED):
        sys.exit(EXIT_FAILED)


@main.command()
@store_option
@click.argument("run_id")
def cancel(store, run_id):
    """Cancel a run; returns when it is Canceled."""
    run = _workspace(store).get_run(run_id)
    run.cancel()
    click.echo(f"{run_id}: {run.get_status()}")


@main.command()
@store_option
@click.argument("run_id")
@click.option("--target", "-t", default=None, help="Another compute target (default: the same)")
@click.option("--wait/--no-wait", default=False)
def rerun(store, run_id, target, wait):
    """Submit RUN_ID again: same snapshot and configuration, new run."""
    from .submission import rerun as do_rerun
    from .workspace import Experiment
    ws = _workspace(store)
    old = ws.get_run(run_id)
    run = do_rerun(Experiment(ws, old.experiment.name), run_id, target=target)
    click.echo(f"submitted {run.id} (rerun of {run_id})")
    if wait:
        details = run.wait_for_completion(show_output=True, raise_on_error=False)
        sys.exit(0 if details["status"] == RunStatus.COMPLETED.value else EXIT_FAILED)


@main.group()
def snapshot():
    """Work with run snapshots."""


@snapshot.command("download")
@store_option
@click.argument("run_id")
@click.argument("directory", type=click.Path(file_okay=False))
def snapshot_download(store, run_id, directory):
    """Restore RUN_ID's source snapshot into DIRECTORY (byte-identical, modes kept)."""
    run = _workspace(store).get_run(run_id)
    click.echo(run.restore_snapshot(path=directory))


@main.command()
@store_option
@click.argument("run_id")
@click.option("--top", default=0, help="Only the best N trials")
@click.option("--json", "as_json", is_flag=True)
def sweep(store, run_id, top, as_json):
    """A sweep's trials sorted by the primary metric, and its early-termination decisions."""
    import json as _json
    from .cli import _emit
    from .hyperdrive.run import HyperDriveRun
    from tracking.errors import ConfigurationError
    run = _workspace(store).get_run(run_id)
    if not isinstance(run, HyperDriveRun):
        raise ConfigurationError(f"run {run_id} is not a sweep (it is a {run.type} run)")
    trials = run.get_children_sorted_by_primary_metric(top=top)
    decisions = run.get_decisions()
    if as_json:
        click.echo(_json.dumps({"status": run.get_status(), "primary_metric": run.primary_metric_name,
                                "goal": run.primary_metric_goal.value, "trials": trials,
                                "decisions": decisions}, indent=2, default=str))
        return
    click.echo(f"sweep {run_id}: {run.get_status()}; primary metric {run.primary_metric_name} "
               f"({run.primary_metric_goal.value})\n")
    rows = [{"rank": i + 1, "run_id": t["run_id"], "status": t["status"],
             run.primary_metric_name: t["best_primary_metric"],
             "hyperparameters": " ".join(f"{k}={v}" for k, v in t["hyperparameters"].items())}
            for i, t in enumerate(trials)]
    _emit(rows, ["rank", "run_id", "status", run.primary_metric_name, "hyperparameters"], False)
    click.echo("\nearly termination decisions:")
    if not decisions:
        click.echo("  (none)")
    for d in decisions:
        click.echo(f"  {d['trial']} at interval {d['interval']}: {d['reason']}")
