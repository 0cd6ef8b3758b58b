"""Workspace and Experiment (azureml.core names): where runs are recorded and how they group."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tracking import config
from tracking.errors import ConfigurationError
from tracking.names import check_experiment_name
from tracking.records import RunRecords
from tracking.run import Run
from tracking.store import Store


class Workspace:
    """A store URL (plus its options) that holds experiments and runs.

    ``Workspace()`` uses ``RUNYARD_STORE`` or the embedded default ``./.runyard``;
    ``Workspace(store="s3://bucket/prefix", client_kwargs={...})`` any fsspec URL.
    Storage options (credentials) stay in memory and in job environments, never in the store.

    Example::

        ws = Workspace(store="file:///data/runyard")
        ws.write_config()              # .runyard/config.json for Workspace.from_config()
    """

    def __init__(self, store: str | None = None, name: str = "default",
                 compute_targets: dict[str, dict] | None = None, **storage_options: Any):
        settings = config.resolve_store(store, storage_options)
        self.name = name
        self.store = settings.open()
        self.store_source = settings.source
        self.compute_targets = dict(compute_targets or {})

    def __repr__(self) -> str:
        return f"Workspace(name={self.name!r}, store={self.store.url!r})"

    @property
    def url(self) -> str:
        return self.store.url

    @property
    def storage_options(self) -> dict[str, Any]:
        return dict(self.store.storage_options)

    @classmethod
    def from_config(cls, path: str | None = None, _file_name: str | None = None,
                    **storage_options: Any) -> "Workspace":
        """Load ``.runyard/config.json`` from ``path`` or the nearest parent folder of the cwd.

        Raises:
            ConfigurationError: no config file found, or it is not valid.
        """
        found = config.find_config_file(path)
        if found is None:
            raise ConfigurationError(
                f"no {config.CONFIG_DIR}/{config.CONFIG_FILE} found from {path or os.getcwd()} "
                "upwards; create one with Workspace(store=...).write_config()")
        try:
            data = json.loads(found.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"{found} is not valid JSON: {exc}") from None
        if "store" not in data:
            raise ConfigurationError(f"{found} has no 'store' key (e.g. \"file:///data/runyard\")")
        options = {**data.get("storage_options", {}), **storage_options}
        store = data["store"]
        if "://" not in store:  # relative paths are relative to the config's project folder
            store = str((found.parent.parent / store).resolve())
        return cls(store=store, name=data.get("name", "default"),
                   compute_targets=data.get("compute_targets"), **options)

    def write_config(self, path: str | None = None, file_name: str | None = None) -> str:
        """Write ``.runyard/config.json`` (store URL, targets; never credentials)."""
        folder = Path(path or os.getcwd()) / config.CONFIG_DIR
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (file_name or config.CONFIG_FILE)
        target.write_text(json.dumps({"store": self.store.url, "name": self.name,
                                      "compute_targets": self.compute_targets}, indent=2))
        return str(target)

    @property
    def experiments(self) -> dict[str, "Experiment"]:
        return {name: Experiment(self, name) for name in RunRecords(self.store).list_experiments()}

    def get_run(self, run_id: str) -> Run:
        """Any run of this workspace by id (no scan).

        Raises:
            RunNotFoundError: no such run.
        """
        record = RunRecords(self.store).read_run(run_id)
        return _run_class(record)(Experiment(self, record["experiment"]), run_id, _record=record)


def _run_class(record: dict):
    """Submitted runs come back as ScriptRun / HyperDriveRun when those are installed."""
    kind = record.get("kind")
    try:
        if kind == "script":
            from .submission import ScriptRun
            return ScriptRun
        if kind == "sweep":
            from .hyperdrive.run import HyperDriveRun
            return HyperDriveRun
    except ImportError:
        pass
    return Run


class Experiment:
    """A named group of runs in a workspace (azureml.core.Experiment).

    Example::

        exp = Experiment(workspace=ws, name="train-in-notebook")
        run = exp.start_logging(); run.log("alpha", 0.03); run.complete()
    """

    def __init__(self, workspace: Workspace, name: str, _skip_name_validation: bool = False,
                 **kwargs: Any):
        self.workspace = workspace
        self.name = check_experiment_name(name)

    def __repr__(self) -> str:
        return f"Experiment(Name: {self.name}, Workspace: {self.workspace.name})"

    @property
    def _store(self) -> Store:
        return self.workspace.store

    def start_logging(self, *args: Any, snapshot_directory: str | None = None,
                      outputs: str | None = None, display_name: str | None = None,
                      tags: dict | None = None, **kwargs: Any) -> Run:
        """Start an interactive run in this process (status Running until complete())."""
        extra: dict[str, Any] = {"display_name": display_name, "tags": dict(tags or {})}
        if snapshot_directory is not None:
            from .snapshot import take_snapshot
            snap = take_snapshot(self._store, snapshot_directory)
            extra["snapshot_id"] = snap.snapshot_id
        return Run._create(self, kind="interactive", outputs=outputs, extra=extra)

    def submit(self, config: Any, tags: dict | None = None, **kwargs: Any) -> Run:
        """Submit a ScriptRunConfig or HyperDriveConfig; returns the run (status Queued)."""
        from .submission import submit
        return submit(self, config, tags=tags, **kwargs)

    def get_runs(self, type: str | None = None, tags: Any = None, properties: Any = None,
                 include_children: bool = False, status: str | None = None) -> list[Run]:
        """Runs of this experiment, newest first."""
        records = RunRecords(self._store)
        entries = sorted(records.list_experiment_runs(self.name),
                         key=lambda e: e.get("created") or 0, reverse=True)
        from tracking.run import _matches
        runs = []
        for entry in entries:
            if entry.get("parent_run_id") and not include_children:
                continue
            run = _run_class(entry)(self, entry["run_id"])
            if _matches(run, tags, properties, type, status):
                runs.append(run)
        return runs

    @staticmethod
    def list(workspace: Workspace, experiment_name: str | None = None, **kwargs: Any) -> list["Experiment"]:
        names = RunRecords(workspace.store).list_experiments()
        return [Experiment(workspace, n) for n in names if experiment_name in (None, n)]

    @property
    def id(self) -> str:
        return self.name
