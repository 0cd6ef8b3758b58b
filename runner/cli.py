"""The ``runyard`` command line.

Exit codes: 0 ok; 1 the run failed / was canceled (``submit --wait``, ``logs --follow``);
2 bad usage or input; 3 not found; 4 store unreachable; 5 compute target unavailable.
"""
from __future__ import annotations

import csv
import json
import sys
from typing import Any, Callable

import click

from tracking.errors import (RecordNotFoundError, RunFailedError, StoreUnavailableError,
                             TargetError, UserInputError)

EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_STORE, EXIT_TARGET = 1, 2, 3, 4, 5


class _Cli(click.Group):
    """Maps runyard's error tree to exit codes and one readable line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RecordNotFoundError as exc:
            _die(exc, EXIT_NOT_FOUND)
        except StoreUnavailableError as exc:
            _die(exc, EXIT_STORE)
        except TargetError as exc:
            _die(exc, EXIT_TARGET)
        except (UserInputError, FileNotFoundError) as exc:
            _die(exc, EXIT_USAGE)
        except RunFailedError as exc:
            _die(exc, EXIT_FAILED)


def _die(exc: BaseException, code: int) -> None:
    click.echo(f"runyard: error: {exc}", err=True)
    sys.exit(code)


store_option = click.option("--store", envvar="RUNYARD_STORE", default=None,
                            help="Store URL (default: RUNYARD_STORE, .runyard/config.json, ./.runyard)")


def _workspace(store: str | None):
    from .workspace import Workspace
    from tracking import config
    if store:
        return Workspace(store=store)
    if config.find_config_file() is not None:
        return Workspace.from_config()
    return Workspace()


def _table(rows: list[dict], columns: list[str]) -> str:
    """A plain aligned text table (no dependency)."""
    cells = [[str(r.get(c, "") if r.get(c) is not None else "") for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _emit(rows: list[dict], columns: list[str], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    elif rows:
        click.echo(_table(rows, columns))
    else:
        click.echo("(none)")


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="runyard")
def main() -> None:
    """runyard: Azure-ML-v1-style experiments on infrastructure you own."""


@main.command()
@store_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output")
def experiments(store: str | None, as_json: bool) -> None:
    """List experiments and their run counts."""
    ws = _workspace(store)
    from tracking.records import RunRecords
    records = RunRecords(ws.store)
    rows = [{"experiment": n, "runs": len(records.list_experiment_runs(n))}
            for n in records.list_experiments()]
    _emit(rows, ["experiment", "runs"], as_json)


def _run_row(run) -> dict:
    details = run.get_details()
    summary = run.get_metrics_summary()
    metrics = ", ".join(f"{k}={_fmt(v.get('last'))}" for k, v in list(summary.items())[:4]
                        if v.get("kind") == "scalar")
    return {"run_id": run.id, "experiment": run.experiment.name, "status": details["status"],
            "type": details.get("type"), "target": details.get("target"),
            "started": (details.get("startTimeUtc") or "")[:19], "metrics": metrics,
            "tags": details.get("tags")}


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@main.command()
@store_option
@click.option("--experiment", "-e", default=None, help="Only this experiment")
@click.option("--status", "-s", default=None, help="Only runs in this status (e.g. Failed)")
@click.option("--children", is_flag=True, help="Include child runs")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output")
def runs(store: str | None, experiment: str | None, status: str | None, children: bool,
         as_json: bool) -> None:
    """List runs, newest first."""
    from .workspace import Experiment
    ws = _workspace(store)
    names = [experiment] if experiment else list(ws.experiments)
    rows = []
    for name in names:
        for run in Experiment(ws, name).get_runs(status=status, include_children=children):
            rows.append(_run_row(run))
    _emit(rows, ["run_id", "experiment", "status", "target", "started", "metrics"], as_json)


@main.command()
@store_option
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
def show(store: str | None, run_id: str, as_json: bool) -> None:
    """Details of one run: status, times, tags, metrics summary, files."""
    run = _workspace(store).get_run(run_id)
    details = run.get_details()
    details["metrics_summary"] = run.get_metrics_summary()
    details["files"] = run.get_file_names()
    if as_json:
        click.echo(json.dumps(details, indent=2, default=str))
        return
    for key in ("runId", "experiment", "status", "type", "target", "startTimeUtc", "endTimeUtc",
                "snapshotId", "parentRunId", "exit_code", "node"):
        if details.get(key) is not None:
            click.echo(f"{key:>14}: {details[key]}")
    for key in ("tags", "properties"):
        if details.get(key):
            click.echo(f"{key:>14}: {json.dumps(details[key])}")
    if details.get("error"):
        click.echo(f"{'error':>14}: {json.dumps(details['error']['error'], indent=2)}")
    rows = [{"metric": k, "kind": v.get("kind"), "count": v.get("count"), "last": _fmt(v.get("last")),
             "min": _fmt(v.get("min")), "max": _fmt(v.get("max"))}
            for k, v in details["metrics_summary"].items()]
    if rows:
        click.echo("\n" + _table(rows, ["metric", "kind", "count", "last", "min", "max"]))
    if details["files"]:
        click.echo("\nfiles:\n  " + "\n  ".join(details["files"]))
    click.echo(f"\nweb: {run.get_portal_url()}  (start it with `runyard ui`)")


@main.command()
@store_option
@click.argument("run_id")
@click.option("--name", "-n", default=None, help="Only this metric")
@click.option("--csv", "as_csv", is_flag=True, help="Long CSV: name,step,time,value")
@click.option("--json", "as_json", is_flag=True)
def metrics(store: str | None, run_id: str, name: str | None, as_csv: bool, as_json: bool) -> None:
    """Print a run's metrics (Azure shapes as JSON, or every point as CSV)."""
    run = _workspace(store).get_run(run_id)
    if as_csv:
        from tracking.metric_store import read_metrics_table
        table = read_metrics_table(run._records, run.id)  # noqa: SLF001
        writer = csv.writer(sys.stdout)
        writer.writerow(["name", "kind", "step", "time", "value"])
        for row in table.to_pylist():
            if name and row["name"] != name:
                continue
            value = row["value"] if row["text"] is None else row["text"]
            writer.writerow([row["name"], row["kind"], row["step"], row["time"], value])
        return
    data = run.get_metrics(name=name)
    if name and name not in data:
        raise RecordNotFoundError(f"run {run_id} has no metric {name!r}; it has: "
                                  f"{', '.join(run.get_metrics()) or 'none'}")
    click.echo(json.dumps(data, indent=None if not as_json else 2, default=str))


@main.command()
@store_option
@click.argument("run_id")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--prefix", "-p", default=None, help="Only files under this prefix (e.g. outputs/)")
def download(store: str | None, run_id: str, directory: str, prefix: str | None) -> None:
    """Download a run's files into DIRECTORY."""
    run = _workspace(store).get_run(run_id)
    written = run.download_files(prefix=prefix, output_directory=directory)
    for path in written:
        click.echo(path)
    if not written:
        click.echo(f"run {run_id} has no files{' under ' + prefix if prefix else ''}", err=True)


@main.command()
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind")
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--token", envvar="RUNYARD_UI_TOKEN", default=None,
              help="Required on every request; mandatory when --host is not loopback")
def ui(store: str | None, host: str, port: int, token: str | None) -> None:
    """Serve the web UI for a store (runs, charts, logs, files, sweeps)."""
    try:
        from tracking.ui.server import serve
    except ImportError as exc:
        raise click.ClickException(f"the web UI needs extra packages ({exc}); "
                                   "pip install 'runyard[ui]'") from None
    ws = _workspace(store)
    serve(ws.store, host=host, port=port, token=token)


def register(command: Callable) -> Callable:
    """Let other runner modules add commands (submission, sweeps, UI) without circular imports."""
    main.add_command(command)
    return command


def _load_plugins() -> None:
    for module in ("runner.cli_jobs", "runner.demo"):
        try:
            __import__(module)
        except ImportError as exc:
            if exc.name and module.startswith(exc.name):  # that plugin is not built/installed
                continue
            raise


_load_plugins()

if __name__ == "__main__":  # pragma: no cover - `python -m runner` is the supported spelling
    from runner.cli import main as _main
    _main()
