"""``experiment.submit(config)``: validate, snapshot, record (Queued), dispatch to a target.

The cross-cutting work happens here, once, around the target call: validation, the snapshot,
the run record (arguments, environment, python version, installed packages, git state), the
target handle. Targets only start the launcher.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from importlib import metadata
from typing import Any

from targets.base import JobSpec, describe_target, resolve_target
from tracking import config as tconfig
from tracking.errors import ConfigurationError, RunStateError
from tracking.records import RunRecords
from tracking.run import Run
from tracking.status import RunStatus

from .config import ScriptRunConfig, convert_arguments
from .snapshot import take_snapshot


class ScriptRun(Run):
    """A submitted run (azureml.core.script_run.ScriptRun): cancel reaches its processes."""

    def _target_handle(self) -> tuple[str | None, dict]:
        for event in reversed(self._records.read_events(self.id)):
            if "target_handle" in event:
                return event.get("target_spec") or event.get("target_name"), event["target_handle"]
        return None, {}

    def cancel(self, wait: bool = True, timeout: float | None = None) -> None:
        """Ask the launcher to stop the job (SIGTERM, grace, SIGKILL) and wait for Canceled.

        If the launcher is gone, its processes are stopped here and Canceled is recorded.

        Raises:
            RunStateError: the run already ended.
        """
        status = RunStatus(self._records.recorded_status(self.id)[0])
        if status.is_terminal():
            raise RunStateError(f"run {self.id} is already {status.value}; nothing to cancel")
        self._records.request_cancel(self.id)
        self._records.write_status(self.id, RunStatus.CANCEL_REQUESTED)
        if not wait:
            return
        grace = tconfig.cancel_grace()
        deadline = time.monotonic() + (timeout or grace + 15)
        name, handle = self._target_handle()
        target = _target_for(name, self.experiment) if name else None
        while time.monotonic() < deadline:
            if RunStatus(self._records.recorded_status(self.id)[0]).is_terminal():
                if target is not None and handle:  # the launcher stopped: let the target clean
                    target.cancel(handle, grace_seconds=grace)  # up (a container is removed)
                return
            if target is not None and handle and target.poll(handle) == "exited":
                break
            time.sleep(0.1)
        if RunStatus(self._records.recorded_status(self.id)[0]).is_terminal():
            return
        if target is not None and handle:
            target.cancel(handle, grace_seconds=0)
        _kill_recorded_group(self._records, self.id)
        self._records.write_status(self.id, RunStatus.CANCELED,
                                   {"reason": "canceled; the launcher did not answer, stopped by the submitter"})


def _target_for(name: Any, experiment: Any):
    try:
        return resolve_target(name, getattr(experiment.workspace, "compute_targets", None))
    except Exception:  # noqa: BLE001 - cancel must still work without the target's extras
        return None


def _kill_recorded_group(records: RunRecords, run_id: str) -> None:
    """Kill the script's process group recorded at Running, if it lives on this machine."""
    for event in reversed(records.status_events(run_id)):
        if event.status is RunStatus.RUNNING:
            info = records.status_details(event)
            node = info.get("node") or {}
            if info.get("pgid") and node.get("host") == socket.gethostname():
                try:
                    os.killpg(int(info["pgid"]), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            return


def submit(experiment: Any, config: Any, tags: dict | None = None, **kwargs: Any) -> Run:
    """Submit a ScriptRunConfig (or a HyperDriveConfig) to its compute target."""
    if type(config).__name__ == "HyperDriveConfig":
        from .hyperdrive.controller import submit_sweep
        return submit_sweep(experiment, config, tags=tags, **kwargs)
    if not isinstance(config, ScriptRunConfig):
        raise ConfigurationError(f"experiment.submit takes a ScriptRunConfig or HyperDriveConfig, "
                                 f"not {type(config).__name__}")
    config.validate_for_submit()
    return submit_script(experiment, config, tags=tags, **kwargs)


def submit_script(experiment: Any, config: ScriptRunConfig, *, tags: dict | None = None,
                  parent: Run | None = None, extra_record: dict | None = None,
                  snapshot_id: str | None = None, quiet: bool | None = None,
                  run_id: str | None = None, kind: str = "script") -> ScriptRun:
    """Record and dispatch one script run (also used by sweeps for their trials)."""
    ws = experiment.workspace
    target = resolve_target(config.effective_target, ws.compute_targets)
    quiet = tconfig.quiet() if quiet is None else quiet
    if snapshot_id is None:
        snap = take_snapshot(ws.store, config.source_directory)
        snapshot_id = snap.snapshot_id
        if not quiet:
            print(snap.report(), file=sys.stderr)
    record = build_record(config, target_name=target.name, snapshot_id=snapshot_id)
    record["tags"] = dict(tags or {})
    record.update(extra_record or {})
    run_class = ScriptRun
    if kind == "sweep":
        from .hyperdrive.run import HyperDriveRun
        run_class = HyperDriveRun
    run = run_class._create(experiment, kind=kind, parent=parent, owner=False, extra=record,
                            status=RunStatus.QUEUED, run_id=run_id)
    job = job_spec(run, ws, config)
    try:
        handle = target.submit(job)
    except Exception as exc:  # unreachable cluster...: the run must not read Queued forever
        run._records.write_status(run.id, RunStatus.FAILED, {"error": {  # noqa: SLF001
            "message": f"could not start the job on target {target.name}: {exc}", "code": "SubmitFailed"}})
        raise
    run._records.write_event(run.id, "submitter", {  # noqa: SLF001
        "target_name": target.name, "target_spec": describe_target(target), "target_handle": handle})
    return run


def job_spec(run: Run, ws: Any, config: ScriptRunConfig) -> JobSpec:
    env = config.effective_environment
    variables = {**env.environment_variables, **config.run_config.environment_variables}
    return JobSpec(run_id=run.id, experiment=run.experiment.name, store_url=ws.store.url,
                   storage_options=ws.store.storage_options, environment_variables=variables,
                   python_requirements=tuple(env.python.pip_requirements),
                   user_managed=env.python.user_managed_dependencies,
                   interpreter_path=env.python.interpreter_path, docker_image=env.docker.base_image,
                   max_run_duration_seconds=config.max_run_duration_seconds)


def build_record(config: ScriptRunConfig, *, target_name: str, snapshot_id: str) -> dict[str, Any]:
    env = config.effective_environment
    environment = env.spec()
    environment["environment_variables"] = {**env.environment_variables,
                                            **config.run_config.environment_variables}
    return {"target": target_name, "script": config.script or config.run_config.script,
            "command": config.command or config.run_config.command,
            "arguments": convert_arguments(config.arguments or config.run_config.arguments),
            "environment": environment, "snapshot_id": snapshot_id,
            "source_directory": os.path.abspath(config.source_directory),
            "max_run_duration_seconds": config.max_run_duration_seconds,
            "python_version": sys.version.split()[0], "pip_freeze": installed_packages(),
            "git": git_state(config.source_directory)}


def installed_packages() -> list[str]:
    """``pip freeze`` of the submitting interpreter, without spawning pip.

    Reading every distribution's metadata costs ~0.5 s with a few hundred packages, which a
    sweep controller would pay per trial: cached until ``sys.path`` or a folder on it changes
    (a ``pip install`` in the notebook touches its site-packages folder).
    """
    key = tuple((p, _mtime(p)) for p in sys.path)
    if _FREEZE_CACHE.get("key") != key:
        seen = {}
        for dist in metadata.distributions():
            name = dist.metadata.get("Name")
            if name and name.lower() not in seen:
                seen[name.lower()] = f"{name}=={dist.version}"
        _FREEZE_CACHE.update(key=key, value=sorted(seen.values(), key=str.lower))
    return list(_FREEZE_CACHE["value"])


_FREEZE_CACHE: dict[str, Any] = {}


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path or ".").st_mtime_ns
    except OSError:
        return None


def git_state(folder: str) -> dict[str, Any] | None:
    """Commit and dirty flag when the source folder is inside a git work tree."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True,
                                 timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = git("status", "--porcelain", "--untracked-files=no", ".")
    return {"commit": commit, "dirty": bool(status), "branch": git("rev-parse", "--abbrev-ref", "HEAD")}


def rerun(experiment: Any, run_id: str, target: Any = None) -> ScriptRun:
    """Submit a recorded run again: same snapshot, same config, new run."""
    old = RunRecords(experiment.workspace.store).read_run(run_id)
    if old.get("kind") != "script":
        raise ConfigurationError(f"run {run_id} is a {old.get('kind')} run; only submitted runs can be rerun")
    env = old.get("environment") or {}
    from .config import Environment
    config = ScriptRunConfig(source_directory=".", script=old.get("script"),
                             arguments=old.get("arguments"), command=old.get("command"),
                             compute_target=target or old.get("target"),
                             environment=Environment.model_validate(env) if env else None,
                             max_run_duration_seconds=old.get("max_run_duration_seconds") or 2592000)
    return submit_script(experiment, config, snapshot_id=old["snapshot_id"],
                         extra_record={"rerun_of": run_id, "source_directory": old.get("source_directory")})
