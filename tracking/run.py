"""``tracking.Run``: the azureml-core v1 Run surface, recording into the store.

Three ways to hold a Run:

* **interactive** (``experiment.start_logging()``, ``Run.get_context()`` outside a job): this
  process owns the run: it records Running, heartbeats, ships its own metrics and sets the final
  status (``complete()``, ``fail()``, the context manager, or Completed at interpreter exit).
* **in a job** (``Run.get_context()`` under the launcher): metrics go to the launcher's spool;
  the launcher owns the status, which it sets from the script's exit code.
* **re-attached** (``Run(experiment, run_id)``, ``ws.get_run(id)``): any process may read, log
  and tag; each process writes its own batches, so nothing is overwritten.

Example::

    run = experiment.start_logging()
    run.log("alpha", 0.03)
    run.upload_file("outputs/model.pkl", "./model.pkl")
    run.complete()
    Run(experiment, run.id).get_metrics()   # {'alpha': 0.03}
"""
from __future__ import annotations

import atexit
import os
import sys
import time
import weakref
from typing import Any, Iterable

from . import config
from .errors import ImmutablePropertyError, NoRunContextError, RunStateError
from .names import check_tag
from .records import RunRecords, new_run_id, new_writer_id
from .run_files import RunFiles
from .run_metrics import RunMetrics
from .run_status import RunStatusView
from .status import RunStatus
from .store import Store
from .writer import MetricWriter

_time = time.time


class _ExperimentRef:
    """What a Run needs of an experiment: a name and a store (runner.Experiment fits).

    Given store settings instead of a store, the store is opened on first use: a job script that
    only logs (into the launcher's spool) never imports fsspec.
    """

    def __init__(self, name: str, store: Store | None = None,
                 settings: config.StoreSettings | None = None):
        self.name = name
        self._opened = store
        self._settings = settings
        self.workspace = _WorkspaceRef(self)

    @property
    def _store(self) -> Store:
        if self._opened is None:
            self._opened = self._settings.open()
        return self._opened

    def __repr__(self) -> str:
        url = self._opened.url if self._opened is not None else self._settings.url
        return f"Experiment(name={self.name!r}, store={url!r})"


class _WorkspaceRef:
    def __init__(self, experiment: _ExperimentRef):
        self._experiment = experiment

    @property
    def store(self) -> Store:
        return self._experiment._store  # noqa: SLF001


def _store_of(experiment: Any) -> Store:
    store = getattr(experiment, "_store", None)
    return store if store is not None else experiment.workspace.store


class Run(RunMetrics, RunFiles, RunStatusView):
    """A run of an experiment (azureml.core.Run).

    Args:
        experiment: the experiment holding the run.
        run_id: id of an existing run (re-attach from any process).

    Raises:
        RunNotFoundError: no run with this id in the experiment's store.
    """

    _context: "Run | None" = None

    def __init__(self, experiment: Any, run_id: str, outputs: str | None = None, **kwargs: Any):
        self.experiment = experiment
        self._records_cache: RunRecords | None = None
        self._id = run_id
        self._owner = bool(kwargs.pop("_owner", False))
        self._in_job = bool(kwargs.pop("_in_job", False))
        self._record_cache: dict | None = kwargs.pop("_record", None)
        if self._record_cache is None and not self._in_job:
            self._record_cache = self._records.read_run(run_id)  # RunNotFoundError right here
        self._outputs = outputs
        self._writer: MetricWriter | None = None
        self._writer_id = new_writer_id()
        self._names: set[str] = set()
        self._last_heartbeat = 0.0
        if self._owner:
            _OWNED_RUNS.add(self)

    @property
    def _store(self) -> Store:
        return self._records.store

    @property
    def _records(self) -> RunRecords:
        """Store access, opened on first use (a job that only logs never opens the store)."""
        if self._records_cache is None:
            self._records_cache = RunRecords(_store_of(self.experiment))
        return self._records_cache

    # ----------------------------------------------------------- creation
    @classmethod
    def _create(cls, experiment: Any, *, kind: str = "interactive", parent: "Run | None" = None,
                run_id: str | None = None, outputs: str | None = None, owner: bool = True,
                extra: dict | None = None, status: RunStatus = RunStatus.RUNNING) -> "Run":
        """Record a new run (used by start_logging, child_run and submissions)."""
        store = _store_of(experiment)
        records = RunRecords(store)
        run_id = run_id or new_run_id(experiment.name)
        record = {"run_id": run_id, "experiment": experiment.name, "created": _time(),
                  "kind": kind, "parent_run_id": parent.id if parent else None,
                  "target": "local", "properties": {}, "display_name": None,
                  "python_version": sys.version.split()[0], **(extra or {})}
        records.create_run(record)
        records.write_status(run_id, RunStatus.NOT_STARTED if status is RunStatus.QUEUED else status)
        if status is RunStatus.QUEUED:
            records.write_status(run_id, RunStatus.QUEUED)
        run = cls(experiment, run_id, outputs=outputs, _record=record, _owner=owner)
        if owner and status is RunStatus.RUNNING:
            run._ensure_writer()
            run._heartbeat(force=True)
        return run

    @classmethod
    def get_context(cls, allow_offline: bool = True, used_for_context_manager: bool = False,
                    **kwargs: Any) -> "Run":
        """The run this code executes in.

        In a submitted job, the job's run (from the launcher's environment variables). Outside,
        an offline run that records into the default store and says where, once.

        Raises:
            NoRunContextError: outside a job when ``allow_offline=False``.
        """
        if cls._context is not None:
            return cls._context
        run_id = os.environ.get(config.ENV_RUN_ID)
        if run_id:
            experiment = _ExperimentRef(os.environ.get(config.ENV_EXPERIMENT, "default"),
                                        settings=config.resolve_store())
            cls._context = cls(experiment, run_id, _in_job=True)
        elif not allow_offline:
            raise NoRunContextError(
                "Run.get_context(allow_offline=False) was called outside a submitted job. Submit "
                "the script with experiment.submit(ScriptRunConfig(...)) or `runyard submit "
                "script.py`, or use experiment.start_logging() for an interactive run.")
        else:
            settings = config.resolve_store()
            store = settings.open()
            experiment = _ExperimentRef(os.environ.get(config.ENV_EXPERIMENT, "offline"), store)
            cls._context = cls._create(experiment, kind="offline")
            if not config.quiet():
                print(f"runyard: offline run {cls._context.id} recording into {store.url} "
                      f"(experiment {experiment.name!r}); see `runyard show {cls._context.id}`",
                      file=sys.stderr)
        return cls._context

    # ------------------------------------------------------------ identity
    @property
    def _record(self) -> dict:
        """The run's creation record; a job reads it only when asked, so that a script whose
        store is briefly unreachable still starts and logs (into the launcher's spool)."""
        if self._record_cache is None:
            self._record_cache = self._records.read_run(self.id)
        return self._record_cache

    @property
    def id(self) -> str:
        return self._id

    @property
    def parent(self) -> "Run | None":
        parent_id = self._record.get("parent_run_id")
        return Run(self.experiment, parent_id) if parent_id else None

    @property
    def type(self) -> str:
        return self._record.get("kind", "interactive")

    @property
    def name(self) -> str:
        return self.display_name or self.id

    def __repr__(self) -> str:
        return (f"Run(Experiment: {self.experiment.name}, Id: {self.id}, Type: {self.type}, "
                f"Status: {self.get_status()})")

    def _repr_html_(self) -> str:
        from .widgets import run_summary_html
        return run_summary_html(self)

    def get_portal_url(self) -> str:
        return f"http://127.0.0.1:{config.ui_port()}/runs/{self.id}"

    # ------------------------------------------------------------- metrics
    def restore_snapshot(self, snapshot_id: str | None = None, path: str | None = None) -> str:
        """Write the run's source snapshot (byte-identical, modes kept) into ``path``.

        Default path: ``./<run id>-snapshot``. Returns the folder.

        Raises:
            SnapshotError: the run has no snapshot.
        """
        from .errors import SnapshotError
        from .snapshots import restore
        snapshot_id = snapshot_id or self._record.get("snapshot_id")
        if not snapshot_id:
            raise SnapshotError(f"run {self.id} has no snapshot (interactive runs get one with "
                                "start_logging(snapshot_directory=...))")
        return restore(self._store, snapshot_id, path or os.path.join(os.getcwd(), f"{self.id}-snapshot"))

    # ---------------------------------------------------------- tags, props
    def _event(self, **event: Any) -> None:
        self._records.write_event(self.id, self._writer_id, event)

    def _state(self) -> dict[str, Any]:
        tags: dict[str, Any] = dict(self._record.get("tags") or {})
        props: dict[str, Any] = dict(self._record.get("properties") or {})
        state = {"display_name": self._record.get("display_name"),
                 "description": self._record.get("description")}
        for event in self._records.read_events(self.id):
            tags.update(event.get("tags") or {})
            for key in event.get("remove_tags") or []:
                tags.pop(key, None)
            props.update(event.get("properties") or {})
            for key in ("display_name", "description", "script_failed"):
                if key in event:
                    state[key] = event[key]
        state.update(tags=tags, properties=props)
        return state

    def tag(self, key: str, value: Any = None) -> None:
        key, text = check_tag(key, value)
        self._event(tags={key: "" if text is None else text})

    def set_tags(self, tags: dict | list | str) -> None:
        if isinstance(tags, str):
            tags = {tags: ""}
        elif isinstance(tags, (list, tuple)):
            tags = {t: "" for t in tags}
        checked = dict(check_tag(k, v) for k, v in tags.items())
        self._event(tags={k: "" if v is None else v for k, v in checked.items()})

    def remove_tags(self, tags: Iterable[str] | str) -> None:
        self._event(remove_tags=[tags] if isinstance(tags, str) else list(tags))

    def get_tags(self) -> dict[str, str]:
        return self._state()["tags"]

    @property
    def tags(self) -> dict[str, str]:
        return self.get_tags()

    def add_properties(self, properties: dict[str, Any]) -> None:
        """Add immutable properties; changing an existing value raises ImmutablePropertyError."""
        current = self.get_properties()
        for key, value in properties.items():
            check_tag(key, value)
            if key in current and current[key] != str(value):
                raise ImmutablePropertyError(
                    f"property {key!r} is already {current[key]!r}; properties cannot change "
                    "(use a tag for mutable values)")
        self._event(properties={k: str(v) for k, v in properties.items()})

    def get_properties(self) -> dict[str, str]:
        return self._state()["properties"]

    @property
    def properties(self) -> dict[str, str]:
        return self.get_properties()

    @property
    def display_name(self) -> str | None:
        return self._state()["display_name"]

    @display_name.setter
    def display_name(self, value: str) -> None:
        check_tag("display_name", value)
        self._event(display_name=value)

    @property
    def description(self) -> str | None:
        return self._state()["description"]

    @description.setter
    def description(self, value: str) -> None:
        check_tag("description", value)
        self._event(description=value)

    # ------------------------------------------------------------ children
    def child_run(self, name: str | None = None, run_id: str | None = None,
                  outputs: str | None = None) -> "Run":
        """Create and start a child run (recorded under this run)."""
        child = Run._create(self.experiment, kind="child", parent=self, run_id=run_id,
                            outputs=outputs, extra={"display_name": name})
        return child

    def get_children(self, recursive: bool = False, tags: Any = None, properties: Any = None,
                     type: str | None = None, status: str | None = None) -> list["Run"]:
        out = []
        for entry in self._records.list_children(self.id):
            child = Run(self.experiment, entry["run_id"])
            if _matches(child, tags, properties, type, status):
                out.append(child)
            if recursive:
                out.extend(child.get_children(recursive=True, tags=tags, properties=properties,
                                              type=type, status=status))
        return out

    # ---------------------------------------------------------- lifecycle
    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.get_status() in (RunStatus.COMPLETED.value, RunStatus.FAILED.value,
                                 RunStatus.CANCELED.value):
            return False
        if exc is None:
            self.complete()
        else:
            import traceback
            self.fail(error_details={"message": f"{exc_type.__name__}: {exc}",
                                     "traceback": "".join(traceback.format_exception(exc_type, exc, tb))})
        return False

    def _finish(self, status: RunStatus, details: dict | None = None) -> None:
        if self._in_job:
            # the launcher owns a job's status; record the script's wish and flush
            self.flush()
            if status is RunStatus.FAILED:
                self._event(script_failed=details or {"message": "run.fail() called by the script"})
            return
        current = RunStatus(self._records.recorded_status(self.id)[0])
        current.check_transition(RunStatus.FINALIZING if not status.is_terminal() else status, self.id)
        if self._writer is not None:
            self._writer.close(timeout=60)
        if self._outputs and os.path.isdir(self._outputs) and status is RunStatus.COMPLETED:
            self.upload_folder("outputs", self._outputs)
        from .metric_store import compact_metrics
        compact_metrics(self._records, self.id)
        self._records.write_status(self.id, status, details)
        _OWNED_RUNS.discard(self)

    def complete(self, _set_status: bool = True) -> None:
        """Mark the run Completed (uploads the ``outputs`` folder of start_logging)."""
        self._finish(RunStatus.COMPLETED)

    def fail(self, error_details: Any = None, error_code: str | None = None,
             _set_status: bool = True) -> None:
        """Mark the run Failed with error details (a message, an exception or a dict)."""
        if isinstance(error_details, BaseException):
            details = {"message": f"{type(error_details).__name__}: {error_details}"}
        elif isinstance(error_details, dict):
            details = dict(error_details)
        else:
            details = {"message": str(error_details) if error_details else "run.fail() called"}
        if error_code:
            details["code"] = error_code
        self._finish(RunStatus.FAILED, {"error": details})

    def cancel(self) -> None:
        """Cancel the run. A job's launcher stops its processes and records Canceled."""
        status = RunStatus(self._records.recorded_status(self.id)[0])
        if status.is_terminal():
            raise RunStateError(f"run {self.id} is already {status.value}; nothing to cancel")
        if self.type in ("interactive", "offline", "child") and not self._in_job:
            if self._writer is not None:
                self._writer.close(timeout=60)
            self._records.write_status(self.id, RunStatus.CANCELED)
            return
        self._records.request_cancel(self.id)
        self._records.write_status(self.id, RunStatus.CANCEL_REQUESTED)


def _matches(run: Run, tags: Any, properties: Any, type_: str | None, status: str | None) -> bool:
    if type_ and run.type != type_:
        return False
    if status and run.get_status() != status:
        return False
    for wanted, have in ((tags, None), (properties, None)):
        if not wanted:
            continue
        have = run.get_tags() if wanted is tags else run.get_properties()
        items = wanted.items() if isinstance(wanted, dict) else ((w, None) for w in
                                                                  ([wanted] if isinstance(wanted, str) else wanted))
        for key, value in items:
            if key not in have or (value is not None and have[key] != value):
                return False
    return True


_OWNED_RUNS: "weakref.WeakSet[Run]" = weakref.WeakSet()


@atexit.register
def _complete_owned_runs() -> None:
    """An interactive run still Running when the interpreter exits is Completed (as MLflow does)."""
    for run in list(_OWNED_RUNS):
        try:
            if RunStatus(run._records.recorded_status(run.id)[0]) in (RunStatus.RUNNING,):  # noqa: SLF001
                run.complete()
        except Exception as exc:  # noqa: BLE001
            print(f"runyard: could not complete run {run.id} at exit: {exc}", file=sys.stderr)
