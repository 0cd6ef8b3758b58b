"""DockerTarget: the launcher runs as the entrypoint of a container built from the Environment.

submit = connect to the engine, find or build the job image (status Preparing, build output in
the run's logs), start one container labelled ``runyard.run-id=<id>`` that removes itself when
it ends. Everything else (snapshot, logs, heartbeats, metrics, final status) is the launcher's
job inside the container, through the store, exactly as on the local target.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
import time
from typing import Any, Literal, Mapping

import docker
import requests
from docker.errors import APIError, DockerException, NotFound
from docker.types import DeviceRequest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tracking import config
from tracking.errors import ConfigurationError, ImageBuildError, StoreError, TargetUnavailableError
from tracking.records import RunRecords
from tracking.status import RunStatus
from tracking.store import Store

from ..base import JobSpec
from ..launch import ENV_NODE_INFO
from ..logstream import LogStreamer
from .image import DEFAULT_BASE_IMAGE, ImageBuilder

LABEL_RUN_ID = "runyard.run-id"
LABEL_EXPERIMENT = "runyard.experiment"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"  # docker-py's default without DOCKER_HOST
# runyard tunables that follow the job into the container (the rest of os.environ does not)
FORWARDED_ENV = (config.ENV_FLUSH_INTERVAL, config.ENV_HEARTBEAT_TIMEOUT,
                 config.ENV_HEARTBEAT_INTERVAL, config.ENV_CANCEL_GRACE)


class DockerSettings(BaseModel):
    """``DockerTarget``'s arguments, validated once; recorded on runs so any process can rebuild it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    image: str | None = None
    base_url: str | None = None
    shm_size: str | int | None = "2g"
    gpus: Literal["all"] | int | str | None = None
    mem_limit: str | int | None = None
    cpus: float | None = Field(default=None, gt=0)
    network: str = "host"
    volumes: dict[str, Any] | list[str] | None = None
    user: str | int | None = None


class DockerTarget:
    """Run jobs in containers on a Docker engine.

    Args:
        image: base image when the Environment names none (``environment.docker.base_image``
            wins); default ``python:3.11-slim``. It needs ``python3`` with the venv module.
        base_url: engine address (``unix:///var/run/docker.sock``, ``tcp://host:2376``); default
            ``DOCKER_HOST`` / docker-py's default socket.
        shm_size, mem_limit: Docker sizes (``"2g"``, ``"512m"`` or bytes). Swap is capped at
            ``mem_limit`` too, so a job over its limit is OOM-killed (the run ends Failed, reason
            "out of memory") instead of swapping.
        gpus: ``"all"``, a count, or device ids ``"0,1"`` (NVIDIA device requests).
        cpus: CPU quota (``1.5``). network: Docker network mode, default ``"host"``.
        volumes: extra mounts in docker-py form (``{"/data": {"bind": "/data", "mode": "ro"}}`` or
            ``["/data:/data:ro"]``). A file:// store is always mounted at its own path.
        user: ``"uid:gid"`` inside the container; default root, or the submitting user's ids
            when a non-root user submits to a file:// store (its files stay theirs).

    Example::

        run = exp.submit(ScriptRunConfig(".", "train.py", compute_target=DockerTarget(mem_limit="4g"),
                                         environment=Environment.from_pip_requirements("sk", "req.txt")))

    Raises (from ``submit``):
        TargetUnavailableError: the engine does not answer (the error names the address).
        ConfigurationError: a ``memory://`` store (a container cannot reach this process's memory).
    An image that fails to build does not raise: the run ends Failed with pip's error.
    """

    name = "docker"

    def __init__(self, image: str | None = None, base_url: str | None = None,
                 shm_size: str | int | None = "2g", gpus: str | int | None = None,
                 mem_limit: str | int | None = None, cpus: float | None = None,
                 network: str = "host", volumes: dict | list | None = None,
                 user: str | int | None = None):
        try:
            self._settings = DockerSettings(image=image, base_url=base_url, shm_size=shm_size,
                                            gpus=gpus, mem_limit=mem_limit, cpus=cpus,
                                            network=network, volumes=volumes, user=user)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid DockerTarget settings: {exc}") from None
        self.settings: dict[str, Any] = self._settings.model_dump()
        self._client: docker.DockerClient | None = None

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.settings.items()
                          if v != DockerSettings.model_fields[k].default)
        return f"DockerTarget({shown})"

    @property
    def address(self) -> str:
        return self._settings.base_url or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST

    # ------------------------------------------------------------------ engine
    def client(self) -> docker.DockerClient:
        """The engine connection (made once).

        Raises:
            TargetUnavailableError: nothing answers at :attr:`address`.
        """
        if self._client is None:
            try:
                if self._settings.base_url:
                    client = docker.DockerClient(base_url=self._settings.base_url, version="auto")
                else:
                    client = docker.from_env(version="auto")
                client.ping()
            except (DockerException, requests.RequestException) as exc:
                raise TargetUnavailableError(
                    f"cannot reach the Docker engine at {self.address}: {exc}. Start dockerd, or "
                    "point DOCKER_HOST / DockerTarget(base_url=...) at a running engine",
                    address=self.address) from exc
            self._client = client
        return self._client

    # ------------------------------------------------------------------ submit
    def submit(self, job: JobSpec) -> dict[str, Any]:
        records = RunRecords(Store(job.store_url, **dict(job.storage_options)))
        try:
            client = self.client()
            store_path = _local_store_path(job.store_url)
        except (TargetUnavailableError, ConfigurationError) as exc:
            _record_failure(records, job.run_id, type(exc).__name__, str(exc))
            raise
        records.write_status(job.run_id, RunStatus.PREPARING, {"stage": "image"})
        log = _BuildLog(LogStreamer(records, job.run_id, echo=False))
        base = job.docker_image or self._settings.image or DEFAULT_BASE_IMAGE
        requirements = () if job.user_managed else job.python_requirements
        try:
            with _heartbeats(records, job.run_id):
                image = ImageBuilder(client).resolve(base, requirements, log)
        except (ImageBuildError, DockerException, requests.RequestException) as exc:
            message = str(exc).split("\n--- build log tail ---")[0]
            log.write(f"runyard: building the job image failed: {message}\n".encode())
            log.close()
            _record_failure(records, job.run_id, "ImageBuildFailed",
                            f"image build failed: {message}", getattr(exc, "log_tail", ""))
            return {"container_id": None, "error": "image build failed"}
        log.close()
        user = self._settings.user
        if user is None and store_path and os.getuid() != 0:
            user = f"{os.getuid()}:{os.getgid()}"
        options = container_options(job, self._settings, image.tag, docker_host=self.address,
                                    store_path=store_path, user=user,
                                    forwarded={k: os.environ[k] for k in FORWARDED_ENV if k in os.environ})
        try:
            container = client.containers.run(**options)
        except (DockerException, requests.RequestException) as exc:
            _record_failure(records, job.run_id, "ContainerStartFailed",
                            f"the container did not start: {getattr(exc, 'explanation', None) or exc}")
            return {"container_id": None, "error": "container did not start"}
        return {"container_id": container.id, "container_name": options["name"],
                "image": image.tag, "image_built": image.built,
                "image_seconds": round(image.seconds, 3), "docker_host": self.address}

    # ---------------------------------------------------------- poll / cancel
    def poll(self, handle: Mapping[str, Any]) -> str:
        if not handle.get("container_id"):
            return "exited"
        try:
            state = self.client().api.inspect_container(handle["container_id"])["State"]
        except NotFound:
            return "exited"  # auto-removed after it ended
        except (DockerException, requests.RequestException, TargetUnavailableError):
            return "unknown"
        return "exited" if state.get("Status") in ("exited", "dead", "removing") else "running"

    def cancel(self, handle: Mapping[str, Any], grace_seconds: float = 10.0) -> None:
        """Stop the container (SIGTERM, ``grace_seconds``, SIGKILL) and wait until it is gone."""
        cid = handle.get("container_id")
        if not cid:
            return
        api = self.client().api
        try:
            api.stop(cid, timeout=max(0, math.ceil(grace_seconds)))
        except NotFound:
            return
        except APIError:
            pass  # e.g. already stopping; removal below still applies
        try:
            api.remove_container(cid, force=True)
        except APIError:  # NotFound, or auto-removal already in progress
            pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                api.inspect_container(cid)
            except NotFound:
                return
            time.sleep(0.05)

    def logs(self, handle: Mapping[str, Any]) -> str:
        if not handle.get("container_id"):
            return ""
        try:
            return self.client().api.logs(handle["container_id"]).decode("utf-8", "replace")
        except (DockerException, requests.RequestException):
            return ""


def container_options(job: JobSpec, settings: DockerSettings, image: str, *, docker_host: str,
                      store_path: str | None, user: str | int | None,
                      forwarded: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.run`` (pure: unit tests call it directly).

    Credentials reach the job only here, through the container's environment
    (``RUNYARD_STORAGE_OPTIONS``); the image and the run record never hold them.
    """
    name = f"runyard-{job.run_id}"
    env = {**dict(forwarded or {}), **job.environment(),
           ENV_NODE_INFO: json.dumps({"container_name": name, "docker_host": docker_host})}
    if user is not None:
        env["HOME"] = "/tmp"  # an arbitrary uid has no home directory in the image
    options: dict[str, Any] = {
        "image": image, "command": ["--run-id", job.run_id], "name": name, "detach": True,
        "labels": {LABEL_RUN_ID: job.run_id, LABEL_EXPERIMENT: job.experiment},
        "environment": env, "init": True, "auto_remove": True,
        "network_mode": settings.network, "volumes": _volumes(settings.volumes, store_path),
    }
    if settings.shm_size is not None:
        options["shm_size"] = settings.shm_size
    if settings.mem_limit is not None:
        options["mem_limit"] = options["memswap_limit"] = settings.mem_limit
    if settings.cpus is not None:
        options["nano_cpus"] = int(settings.cpus * 1e9)
    if settings.gpus is not None:
        options["device_requests"] = [gpu_request(settings.gpus)]
    if user is not None:
        options["user"] = str(user)
    return options


def gpu_request(gpus: str | int) -> DeviceRequest:
    """``gpus="all"`` -> every GPU, ``2`` -> two GPUs, ``"0,1"`` -> those device ids."""
    if gpus == "all":
        return DeviceRequest(count=-1, capabilities=[["gpu"]])
    if isinstance(gpus, int) or str(gpus).isdigit():
        return DeviceRequest(count=int(gpus), capabilities=[["gpu"]])
    return DeviceRequest(device_ids=[g.strip() for g in str(gpus).split(",") if g.strip()],
                         capabilities=[["gpu"]])


def _volumes(extra: dict | list | None, store_path: str | None) -> list[str]:
    mounts = []
    if isinstance(extra, dict):
        for source, spec in extra.items():
            if isinstance(spec, str):
                mounts.append(f"{source}:{spec}:rw")
            else:
                mounts.append(f"{source}:{spec['bind']}:{spec.get('mode', 'rw')}")
    elif extra:
        mounts.extend(extra)
    if store_path:
        mounts.append(f"{store_path}:{store_path}:rw")
    return mounts


def _local_store_path(url: str) -> str | None:
    """The folder to bind-mount for a file:// store; None for a remote store."""
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    if scheme == "memory":
        raise ConfigurationError(f"store {url} lives in this process's memory; a container "
                                 "cannot reach it. Use a file:// folder or an s3:// bucket")
    if scheme not in ("file", "local"):
        return None
    path = url.split("://", 1)[1] if "://" in url else url
    os.makedirs(path, exist_ok=True)
    return os.path.abspath(path)


def _record_failure(records: RunRecords, run_id: str, code: str, message: str,
                    tail: str = "") -> None:
    records.write_status(run_id, RunStatus.FAILED,
                         {"error": {"message": message, "code": code, "stderr_tail": tail}})


@contextlib.contextmanager
def _heartbeats(records: RunRecords, run_id: str):
    """Heartbeat for the run while its image builds (minutes, sometimes): until the launcher
    runs and takes over, readers would otherwise see NotResponding, then Failed."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(config.heartbeat_interval()):
            try:
                records.write_heartbeat(run_id, {"stage": "image build"})
            except StoreError:
                pass

    thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{run_id}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


class _BuildLog:
    """The run's log stream during Preparing; runyard's own notices also go to stderr."""

    def __init__(self, stream: LogStreamer):
        self.stream = stream

    def write(self, data: bytes, is_err: bool = False) -> None:
        self.stream.write(data, is_err)
        if data.startswith(b"runyard: ") and not config.quiet():
            sys.stderr.write(data.decode("utf-8", "replace"))

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()
