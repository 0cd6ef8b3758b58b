"""The Ray target: each run's launcher runs as a Ray task on a node with the requested resources.

    ws = Workspace(store="s3://bucket/runyard", key=..., secret=...)   # no shared filesystem
    run = exp.submit(ScriptRunConfig(..., compute_target=RayTarget(address="ray-head:6379",
                                                                    num_cpus=2, max_retries=1)))

Shape (targets/README.md says why, and why not the Ray Jobs API):

* One named, detached **dispatcher** actor per cluster (namespace ``runyard``, pinned to the head
  node, no CPU) submits the tasks and so owns them: a run outlives the notebook that submitted it.
  ``poll``, ``cancel`` and ``logs`` go through it by run id, from any process.
* The task (``_launch_run``) runs the launcher (``targets.launch.Launcher``) inside the Ray
  worker, with the Ray node id and address as its node info, and returns its exit code plus the
  output's tail. The launcher talks only to the store, exactly as on the local target; the script
  is its child, started with PR_SET_PDEATHSIG so it dies with the worker. Ray reuses workers, so
  a run costs one new process (the script), not two interpreters importing runyard.
* If the task dies with its node (after ``max_retries`` Ray retries, each a new launcher attempt
  recorded on the run) or the launcher exits without a final status, the dispatcher records
  Failed at once; if the dispatcher is gone too, readers derive Failed from the heartbeat timeout.

Store credentials travel in the task's arguments (``job.environment()``), never in the handle or
the target settings.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping

import ray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tracking.errors import ConfigurationError, TargetError, TargetUnavailableError

from .base import JobSpec

NAMESPACE = "runyard"
# Versioned: a detached actor outlives upgrades; a new runyard must not talk to an old one.
DISPATCHER_NAME = "runyard-dispatcher-v1"
HEAD_NODE_RESOURCE = "node:__internal_head__"  # every Ray >= 2.4 head has it (amount 1)
CONNECT_TIMEOUT_S = 5.0       # TCP probe of the GCS before ray.init, which can hang much longer
CALL_TIMEOUT_S = 60.0         # one dispatcher call
OUTPUT_TAIL_BYTES = 64 * 1024  # launcher output kept for logs(), per run
KEEP_FINISHED_RUNS = 10_000    # finished runs the dispatcher still answers poll/logs for
FORCE_KILL_AFTER_S = 5.0       # cancel: wait this long for the task to stop before force=True


class RaySettings(BaseModel):
    """Validated settings of :class:`RayTarget` (its constructor arguments, JSON-able)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    address: str = "auto"
    num_cpus: float = Field(1, ge=0)
    num_gpus: float = Field(0, ge=0)
    memory: int | None = Field(None, gt=0)
    resources: dict[str, float] | None = None
    max_retries: int = Field(0, ge=-1)
    runtime_env: dict[str, Any] | None = None


class RayTarget:
    """Run jobs as Ray tasks on a Ray cluster.

    Args:
        address: the cluster: ``"auto"`` (``RAY_ADDRESS`` or the cluster started on this
            machine), ``"host:port"`` of the head's GCS, or ``"ray://host:10001"`` (Ray Client).
        num_cpus, num_gpus, memory, resources: what one run reserves on its node (Ray's logical
            resources; ``memory`` in bytes). Runs queue in Ray until a node has them.
        max_retries: times Ray restarts a run whose node or worker died (each restart is a new
            attempt on the same run, see ``run.get_details()["attempts"]``); -1 means forever.
            A script that exits non-zero is never retried.
        runtime_env: Ray runtime environment for the task (``pip``, ``env_vars``, ...).

    Raises:
        ConfigurationError: invalid settings.
        TargetUnavailableError: (from submit/poll/cancel/logs) the cluster cannot be reached;
            carries the address tried.

    Every node needs runyard installed (the task imports ``targets.ray``, the launcher
    ``targets.launch``) and must reach the store; no filesystem is shared.
    """

    name = "ray"

    def __init__(self, address: str = "auto", num_cpus: float = 1, num_gpus: float = 0,
                 memory: int | None = None, resources: Mapping[str, float] | None = None,
                 max_retries: int = 0, runtime_env: Mapping[str, Any] | None = None):
        try:
            self._settings = RaySettings(
                address=address, num_cpus=num_cpus, num_gpus=num_gpus, memory=memory,
                resources=dict(resources) if resources else None, max_retries=max_retries,
                runtime_env=dict(runtime_env) if runtime_env else None)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid RayTarget settings: {exc}") from None

    @property
    def settings(self) -> dict[str, Any]:
        """Constructor arguments, JSON-able: a sweep controller rebuilds the target from them."""
        return self._settings.model_dump()

    @property
    def address(self) -> str:
        return self._settings.address

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings.items() if v is not None)
        return f"RayTarget({args})"

    # ------------------------------------------------------------------ contract
    def submit(self, job: JobSpec) -> dict[str, Any]:
        task_id = self._call("submit", job.run_id, job.environment(), self._task_options(job))
        return {"address": self.address, "namespace": NAMESPACE, "dispatcher": DISPATCHER_NAME,
                "run_id": job.run_id, "task_id": task_id}

    def poll(self, handle: Mapping[str, Any]) -> str:
        return self._call("poll", handle["run_id"])

    def cancel(self, handle: Mapping[str, Any], grace_seconds: float = 10.0) -> None:
        """Stop the run's task: interrupt it (it kills the launcher's process tree), then force."""
        self._call("cancel", handle["run_id"], float(grace_seconds),
                   timeout=CALL_TIMEOUT_S + grace_seconds + FORCE_KILL_AFTER_S)

    def logs(self, handle: Mapping[str, Any]) -> str:
        return self._call("logs", handle["run_id"])

    # ------------------------------------------------------------------ helpers
    def _task_options(self, job: JobSpec) -> dict[str, Any]:
        s = self._settings
        options: dict[str, Any] = {
            "num_cpus": s.num_cpus, "num_gpus": s.num_gpus, "max_retries": s.max_retries,
            "retry_exceptions": False, "scheduling_strategy": "SPREAD",
            "name": f"runyard:{job.run_id}"}
        if s.memory:
            options["memory"] = s.memory
        if s.resources:
            options["resources"] = dict(s.resources)
        if s.runtime_env:
            options["runtime_env"] = dict(s.runtime_env)
        return options

    def _call(self, method: str, *args: Any, timeout: float = CALL_TIMEOUT_S) -> Any:
        dispatcher = _dispatcher(self.address)
        try:
            return ray.get(getattr(dispatcher, method).remote(*args), timeout=timeout)
        except ray.exceptions.GetTimeoutError as exc:
            raise TargetUnavailableError(f"the runyard dispatcher on Ray cluster {self.address} "
                                         f"did not answer {method} in {timeout:.0f} s",
                                         address=self.address) from exc
        except ray.exceptions.RayActorError as exc:
            _forget_dispatcher()
            raise TargetUnavailableError(f"the runyard dispatcher on Ray cluster {self.address} "
                                         f"died during {method}: {exc}", address=self.address) from exc
        except ray.exceptions.RayError as exc:
            raise TargetError(f"Ray target {method} failed on {self.address}: {exc}") from exc


# ---------------------------------------------------------------------- connection
_DISPATCHER: dict[str, Any] = {}  # {"job": (GCS address, job id), "actor": handle}, this process


def _connect(address: str) -> None:
    """``ray.init`` once per process, lazily; probe the GCS first so a dead address fails fast."""
    if ray.is_initialized():  # one cluster per process is a Ray rule; a user's init is reused
        _check_same_cluster(address)
        return
    probe = _probe_address(address)
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 - ray raises ConnectionError/RuntimeError/...
        raise TargetUnavailableError(f"cannot connect to Ray cluster {address}{probe}: {exc}",
                                     address=address) from exc


def _check_same_cluster(address: str) -> None:
    """A process connected to cluster A cannot submit to B: say so instead of using A."""
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    try:
        connected = ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001 - Ray Client sessions have no GCS address
        return
    if _canonical(connected) != _canonical(address):
        raise TargetError(f"this process is connected to the Ray cluster at {connected}; "
                          f"RayTarget(address={address!r}) needs another one (Ray allows one "
                          "cluster per process: call ray.shutdown() first)")


def _canonical(address: str) -> tuple[str, str]:
    host, _, port = address.rpartition(":")
    try:
        host = socket.gethostbyname(host.strip("[]"))
    except OSError:
        pass
    return host, port


def _probe_address(address: str) -> str:
    """Resolve ``auto`` like ray.init does and TCP-probe the GCS; returns " (host:port)"."""
    if address == "local":
        return ""
    target = address.removeprefix("ray://")
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address
            target = canonicalize_bootstrap_address(address) or ""
        except Exception as exc:  # noqa: BLE001 - "no cluster found" and friends
            raise TargetUnavailableError(f"no Ray cluster found for address 'auto' (RAY_ADDRESS "
                                         f"unset and no local cluster): {exc}", address=address) from exc
        if not target:
            raise TargetUnavailableError("no Ray cluster found for address 'auto' (RAY_ADDRESS "
                                         "unset and no local cluster)", address=address)
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise TargetUnavailableError(f"Ray address {address!r} is not host:port, ray://host:port "
                                     "or 'auto'", address=address)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise TargetUnavailableError(f"Ray cluster {address} unreachable: {host}:{port}: {exc}",
                                     address=address) from exc
    return f" ({target})" if target != address else ""


def _dispatcher(address: str):
    _connect(address)
    ctx = ray.get_runtime_context()
    job = (getattr(ctx, "gcs_address", None), ctx.get_job_id())  # job ids repeat across clusters
    if _DISPATCHER.get("job") != job:  # first call, or ray was shut down and re-initialised
        try:
            actor = ray.remote(RunDispatcher).options(
                name=DISPATCHER_NAME, namespace=NAMESPACE, lifetime="detached",
                get_if_exists=True, num_cpus=0, resources={HEAD_NODE_RESOURCE: 0.001},
                max_restarts=-1, max_concurrency=1000).remote()
        except Exception as exc:  # noqa: BLE001
            raise TargetUnavailableError(f"cannot start the runyard dispatcher on Ray cluster "
                                         f"{address}: {exc}", address=address) from exc
        _DISPATCHER.update(job=job, actor=actor)
    return _DISPATCHER["actor"]


def _forget_dispatcher() -> None:
    _DISPATCHER.clear()


# ---------------------------------------------------------------------- dispatcher
@dataclass
class _Entry:
    ref: Any
    env: dict[str, str]
    done: asyncio.Event = field(default_factory=asyncio.Event)
    output: str = ""
    canceled: bool = False


class RunDispatcher:
    """Detached actor that owns the runs' tasks (async: calls never wait on each other)."""

    def __init__(self) -> None:
        self._runs: OrderedDict[str, _Entry] = OrderedDict()

    async def submit(self, run_id: str, env: dict[str, str], options: dict[str, Any]) -> str:
        entry = self._runs.get(run_id)
        if entry is not None and not entry.done.is_set():
            return entry.ref.task_id().hex()  # a resubmission of a live run is the same run
        ref = _launch_task().options(**options).remote(run_id, env)
        entry = self._runs[run_id] = _Entry(ref=ref, env=env)
        asyncio.get_running_loop().create_task(self._watch(run_id, entry))
        return ref.task_id().hex()

    async def poll(self, run_id: str) -> str:
        entry = self._runs.get(run_id)
        if entry is None:
            return "unknown"
        return "exited" if entry.done.is_set() else "running"

    async def cancel(self, run_id: str, grace_seconds: float) -> None:
        entry = self._runs.get(run_id)
        if entry is None or entry.done.is_set():
            return
        entry.canceled = True
        if await _ended(entry, grace_seconds):  # the launcher honoured the store's request
            return
        ray.cancel(entry.ref)  # KeyboardInterrupt in the task: it kills the launcher's tree
        if not await _ended(entry, FORCE_KILL_AFTER_S):
            ray.cancel(entry.ref, force=True)  # kills the worker; the launcher has PDEATHSIG
            await _ended(entry, FORCE_KILL_AFTER_S)

    async def logs(self, run_id: str) -> str:
        entry = self._runs.get(run_id)
        if entry is None:
            return ""
        if not entry.done.is_set():
            return "(the launcher is running; its output goes to the store: run.get_log_text())\n"
        return entry.output

    async def _watch(self, run_id: str, entry: _Entry) -> None:
        failure = None
        try:
            code, entry.output = await entry.ref
            if code != 0:
                failure = {"message": f"the launcher exited with code {code} without recording a "
                           "final status", "code": "LauncherExited", "stderr_tail": entry.output[-4000:]}
        except ray.exceptions.TaskCancelledError:
            entry.output = "(canceled)\n"
        except ray.exceptions.RayError as exc:  # node died, worker crashed, retries used up...
            entry.output = f"(the task failed: {type(exc).__name__}: {exc})\n"
            failure = {"message": f"the Ray task running the job failed: {type(exc).__name__}: "
                       f"{str(exc)[:2000]}", "code": _failure_code(exc)}
        finally:
            entry.done.set()
            self._trim()
        if failure and not entry.canceled:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._record_failure, run_id, entry.env, failure)

    def _record_failure(self, run_id: str, env: dict[str, str], error: dict[str, Any]) -> None:
        """Failed, unless the launcher recorded a final status itself (first terminal wins)."""
        from tracking.records import RunRecords
        from tracking.status import RunStatus
        try:
            records = RunRecords(store_for_env(env))
            status, events = records.recorded_status(run_id)
            if status.is_terminal():
                return
            last = records.status_details(events[-1]) if events else {}
            where = {k: last[k] for k in ("node", "attempt") if k in last}  # where it was lost
            records.write_status(run_id, RunStatus.FAILED, {"error": error, **where,
                                                            "reason": "lost by the Ray target"})
        except Exception as exc:  # noqa: BLE001 - readers still derive Failed from heartbeats
            print(f"runyard dispatcher: could not record {run_id} Failed: {exc}", file=sys.stderr)

    def _trim(self) -> None:
        finished = [k for k, e in self._runs.items() if e.done.is_set()]
        for run_id in finished[:max(0, len(finished) - KEEP_FINISHED_RUNS)]:
            del self._runs[run_id]


async def _ended(entry: _Entry, seconds: float) -> bool:
    try:
        await asyncio.wait_for(entry.done.wait(), timeout=max(seconds, 0.001))
        return True
    except asyncio.TimeoutError:
        return False


def _failure_code(exc: Exception) -> str:
    if isinstance(exc, ray.exceptions.NodeDiedError):
        return "NodeDied"
    if isinstance(exc, ray.exceptions.WorkerCrashedError):
        return "WorkerCrashed"
    if isinstance(exc, ray.exceptions.OutOfMemoryError):
        return "OutOfMemory"
    return "TaskFailed"


# ---------------------------------------------------------------------- the task
_LAUNCH_TASK: list[Any] = []


def _launch_task():
    """``ray.remote(_launch_run)``, made once per process (each new one is exported again)."""
    if not _LAUNCH_TASK:
        _LAUNCH_TASK.append(ray.remote(_launch_run))
    return _LAUNCH_TASK[0]


def _launch_run(run_id: str, env: dict[str, str]) -> tuple[int, str]:
    """Runs on the chosen node, in the Ray worker itself: supervise the run, return (exit code,
    output tail). The worker is long-lived, so runyard and pyarrow are imported once per worker,
    not once per run; the script is the only process a run starts."""
    from tracking.errors import StoreError
    from tracking.records import RunRecords

    from .launch import Launcher, _with_store_retries
    ctx = ray.get_runtime_context()
    node = {"ray_node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
            "ray_task_id": ctx.get_task_id(), "ray_worker_pid": os.getpid()}
    records = RunRecords(store_for_env(env))
    launcher = _with_store_retries(lambda: Launcher(
        records, run_id, extra_env={"RAY_ADDRESS": ctx.gcs_address, **env}, node_info=node,
        echo=False))
    try:
        code = launcher.run()
    except KeyboardInterrupt:  # ray.cancel: stop the script, record Canceled, end the task
        try:
            launcher.abort()
        except (StoreError, OSError) as exc:
            print(f"runyard: cancel of {run_id}: {exc}", file=sys.stderr)
        raise
    except BaseException:  # a launcher error, or the worker is going away: nothing may outlive
        launcher.kill()      # this task in the (reused) worker, neither the script nor a thread
        raise
    return code, launcher.logs.full_text()[-OUTPUT_TAIL_BYTES:].decode("utf-8", "replace")


_STORES: dict[str, Any] = {}  # stores opened by this process (a worker, the dispatcher)


def store_for_env(env: Mapping[str, str]):
    """The store a job's environment names (``RUNYARD_STORE`` + options), opened once per process."""
    from tracking import config
    settings = config.resolve_store(env=env)
    key = f"{settings.url}\n{json.dumps(settings.storage_options, sort_keys=True)}"
    if key not in _STORES:
        _STORES[key] = settings.open()
    return _STORES[key]
