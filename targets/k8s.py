"""The Kubernetes target: one ``batch/v1`` Job per run, the launcher as its container command.

Manifests come from pure functions (:func:`build_job_manifest`, :func:`build_credentials_secret`)
that unit tests validate without a cluster; :class:`KubernetesTarget` only sends them. The
``kubernetes`` client is imported and configured inside methods, never at import.

Credentials (``storage_options``) travel in one Secret per run, referenced by env
(``secretKeyRef``), never in the Job manifest, handle, settings or run record. The Secret is owned
by the Job once it exists, so deleting the Job (``cancel``, ``ttlSecondsAfterFinished``) deletes it.
Everything carries the labels ``runyard.run-id``, ``runyard.experiment`` and
``app.kubernetes.io/managed-by=runyard``; status, logs and cleanup select by them.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import posixpath
import re
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tracking import config
from tracking.errors import ConfigurationError, TargetUnavailableError

from .base import JobSpec
from .launch import ENV_NODE_INFO

LABEL_RUN_ID = "runyard.run-id"
LABEL_EXPERIMENT = "runyard.experiment"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "runyard"
CONTAINER_NAME = "runyard"
# Kubernetes' deadline is a backstop: the launcher enforces max_run_duration_seconds itself (and
# records Failed/Timeout with logs); the margin covers snapshot restore, venv setup, finalizing.
DEADLINE_MARGIN_SECONDS = 600
REQUEST_TIMEOUT_SECONDS = 30
# What the submitter's identity needs; k8s/rbac.yaml grants exactly this (a unit test checks it).
SUBMITTER_PERMISSIONS: dict[tuple[str, str], frozenset[str]] = {
    ("batch", "jobs"): frozenset({"create", "get", "list", "delete"}),
    ("", "pods"): frozenset({"get", "list", "delete"}),
    ("", "pods/log"): frozenset({"get"}),
    # no get/list on secrets: "list" would let a submitter (and a sweep's pod) read them all
    ("", "secrets"): frozenset({"create", "patch", "delete"}),
}

_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class KubernetesSettings(BaseModel):
    """Validated settings of :class:`KubernetesTarget` (its constructor arguments)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    namespace: str = "default"
    image: str | None = None
    service_account: str | None = "runyard-job"
    cpu: str | int | float | None = None
    memory: str | int | None = None
    gpus: int = Field(0, ge=0)
    gpu_resource: str = "nvidia.com/gpu"
    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = None
    image_pull_secrets: list[str] | None = None
    volumes: dict[str, dict[str, Any]] | None = None  # mount path -> volume source (k8s form)
    kubeconfig: str | None = None
    context: str | None = None
    ttl_seconds_after_finished: int | None = Field(3600, ge=0)
    backoff_limit: int = Field(0, ge=0)
    python: str = "python3"  # the launcher's interpreter inside the image

    @model_validator(mode="after")
    def _check(self) -> "KubernetesSettings":
        if not _DNS_LABEL_RE.match(self.namespace):
            raise ValueError(f"namespace {self.namespace!r} is not a DNS-1123 label")
        for path in self.volumes or {}:
            if not path.startswith("/"):
                raise ValueError(f"volume mount path {path!r} must be absolute")
        return self


# ------------------------------------------------------------------ names and labels (pure)
def label_value(text: str) -> str:
    """``text`` if it is a valid label value, else a readable prefix plus a hash (<= 63 chars)."""
    if len(text) <= 63 and _LABEL_VALUE_RE.match(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    head = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:52].strip("-_.")
    return f"{head}-{digest}" if head else digest


def job_name(run_id: str) -> str:
    """A DNS-1123 label (<= 63 chars) unique per run id, readable when the id is short."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")[:44].strip("-")
    return f"runyard-{slug}-{digest}" if slug else f"runyard-{digest}"


def secret_name(run_id: str) -> str:
    return f"{job_name(run_id)}-store"


def run_labels(job: JobSpec) -> dict[str, str]:
    return {LABEL_RUN_ID: label_value(job.run_id), LABEL_EXPERIMENT: label_value(job.experiment),
            LABEL_MANAGED_BY: MANAGED_BY}


def run_selector(run_id: str) -> str:
    return f"{LABEL_RUN_ID}={label_value(run_id)},{LABEL_MANAGED_BY}={MANAGED_BY}"


def _metadata(job: JobSpec, name: str, namespace: str) -> dict[str, Any]:
    # Labels may be shortened (63 chars); annotations keep the exact ids.
    return {"name": name, "namespace": namespace, "labels": run_labels(job),
            "annotations": {LABEL_RUN_ID: job.run_id, LABEL_EXPERIMENT: job.experiment}}


# ------------------------------------------------------------------------- builders (pure)
def _settings(settings: KubernetesSettings | Mapping[str, Any] | None) -> KubernetesSettings:
    if isinstance(settings, KubernetesSettings):
        return settings
    try:
        return KubernetesSettings(**dict(settings or {}))
    except ValidationError as exc:
        raise ConfigurationError(f"invalid Kubernetes target settings: {exc}") from None


def _secret_env(job: JobSpec) -> dict[str, str]:
    """The job variables that must reach the pod through the Secret only."""
    env = job.environment()
    keys = [config.ENV_STORAGE_OPTIONS]
    if urlsplit(job.store_url).password:  # s3://key:secret@bucket style URLs carry a secret too
        keys.append(config.ENV_STORE)
    return {key: env[key] for key in keys if key in env}


def check_store_reachable(store_url: str, volumes: Mapping[str, Any] | None = None) -> None:
    """Refuse stores a pod cannot reach: memory://, and file:// unless a volume mounts it.

    Raises:
        ConfigurationError: with what to use instead.
    """
    parts = urlsplit(store_url)
    scheme = parts.scheme or "file"
    if scheme == "memory":
        raise ConfigurationError(f"store {store_url} lives in one process; a Kubernetes job "
                                 "cannot reach it: use an s3:// store")
    if scheme not in ("file", "local"):
        return
    path = posixpath.normpath(parts.path if parts.scheme else store_url)
    for mount in volumes or {}:
        mount = posixpath.normpath(mount)
        if path == mount or path.startswith(mount.rstrip("/") + "/"):
            return
    raise ConfigurationError(
        f"store {store_url} is a folder on this machine that pods cannot see: use an s3:// store "
        f"(or a shared volume via settings, e.g. KubernetesTarget(volumes={{'{path}': "
        "{'persistentVolumeClaim': {'claimName': 'runyard-store'}}}) mounted at the same path)")


def build_credentials_secret(job: JobSpec, namespace: str = "default") -> dict[str, Any] | None:
    """The per-run Secret holding the store credentials, or None when there are none."""
    data = _secret_env(job)
    if not data:
        return None
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": _metadata(job, secret_name(job.run_id), namespace),
            "type": "Opaque", "immutable": True, "stringData": data}


def _escape(value: str) -> str:
    # Kubernetes expands $(VAR) in env values; keep the user's values literal.
    return value.replace("$(", "$$(")


def _container_env(job: JobSpec, name: str) -> list[dict[str, Any]]:
    secret_keys = _secret_env(job)
    env: list[dict[str, Any]] = [{"name": k, "value": _escape(v)}
                                 for k, v in job.environment().items() if k not in secret_keys]
    env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": secret_name(job.run_id), "key": k}}}
            for k in secret_keys]
    for var, path in (("RUNYARD_POD_NAME", "metadata.name"),
                      ("RUNYARD_POD_NAMESPACE", "metadata.namespace"),
                      ("RUNYARD_NODE_NAME", "spec.nodeName")):
        env.append({"name": var, "valueFrom": {"fieldRef": {"fieldPath": path}}})
    # Expanded by Kubernetes from the downward-API variables above; the launcher adds it to the
    # run's node details.
    env.append({"name": ENV_NODE_INFO, "value": json.dumps(
        {"pod": "$(RUNYARD_POD_NAME)", "namespace": "$(RUNYARD_POD_NAMESPACE)",
         "node": "$(RUNYARD_NODE_NAME)", "job": name})})
    return env


def _resources(s: KubernetesSettings) -> dict[str, dict[str, str]]:
    # CPU is requested, not limited (limits throttle); memory request == limit (no surprise OOM).
    requests, limits = {}, {}
    if s.cpu is not None:
        requests["cpu"] = str(s.cpu)
    if s.memory is not None:
        requests["memory"] = limits["memory"] = str(s.memory)
    if s.gpus:
        limits[s.gpu_resource] = str(s.gpus)
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def _volumes(s: KubernetesSettings) -> tuple[list[dict], list[dict]]:
    volumes, mounts = [], []
    for i, (path, source) in enumerate(sorted((s.volumes or {}).items())):
        volumes.append({**source, "name": f"runyard-volume-{i}"})
        mounts.append({"name": f"runyard-volume-{i}", "mountPath": path})
    return volumes, mounts


def build_job_manifest(job: JobSpec, settings: KubernetesSettings | Mapping[str, Any] | None = None,
                       ) -> dict[str, Any]:
    """The ``batch/v1`` Job that runs ``job``'s launcher (pure: no cluster, no client).

    Raises:
        ConfigurationError: bad settings, no image, or a store the pod cannot reach.
    """
    s = _settings(settings)
    check_store_reachable(job.store_url, s.volumes)
    image = job.docker_image or s.image
    if not image:
        raise ConfigurationError(
            "the k8s target needs an image with runyard installed: KubernetesTarget(image=...) "
            "or Environment.from_docker_image(name, image)")
    name = job_name(job.run_id)
    volumes, mounts = _volumes(s)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME, "image": image, "imagePullPolicy": "IfNotPresent",
        "command": job.launcher_args(s.python), "env": _container_env(job, name)}
    container.update({k: v for k, v in (("resources", _resources(s)), ("volumeMounts", mounts)) if v})
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "enableServiceLinks": False,
                                "containers": [container]}
    optional = {"serviceAccountName": s.service_account, "nodeSelector": s.node_selector,
                "tolerations": s.tolerations, "volumes": volumes,
                "imagePullSecrets": [{"name": n} for n in s.image_pull_secrets or []]}
    pod_spec.update({key: value for key, value in optional.items() if value})
    metadata = _metadata(job, name, s.namespace)
    spec: dict[str, Any] = {
        "backoffLimit": s.backoff_limit,
        "template": {"metadata": {"labels": dict(metadata["labels"]),
                                  "annotations": dict(metadata["annotations"])},
                     "spec": pod_spec}}
    if job.max_run_duration_seconds:
        spec["activeDeadlineSeconds"] = int(job.max_run_duration_seconds) + DEADLINE_MARGIN_SECONDS
    if s.ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = s.ttl_seconds_after_finished
    # a deep copy: the manifest must not share dicts with the (frozen) settings
    return copy.deepcopy({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec})


def owner_reference_patch(job_name_: str, job_uid: str) -> list[dict[str, Any]]:
    """JSON patch making the Secret owned by its Job (garbage-collected with it)."""
    return [{"op": "add", "path": "/metadata/ownerReferences", "value": [
        {"apiVersion": "batch/v1", "kind": "Job", "name": job_name_, "uid": job_uid}]}]


def job_state(status: Any) -> str:
    """``"exited"`` once a Job has a true Complete/Failed condition, else ``"running"``."""
    for condition in getattr(status, "conditions", None) or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return "exited"
    return "running"


def pod_summary(pod: Any) -> str:
    """One line on why a pod has no log yet (image pull, missing secret, pending...)."""
    status = pod.status
    line = f"pod {pod.metadata.name}: {getattr(status, 'phase', None) or 'Unknown'}"
    for cs in getattr(status, "container_statuses", None) or []:
        waiting = cs.state.waiting if cs.state else None
        if waiting:
            line += f" ({waiting.reason}" + (f": {waiting.message})" if waiting.message else ")")
    return line


# ----------------------------------------------------------------------- the cluster (I/O)
@dataclass
class _Cluster:
    batch: Any
    core: Any
    address: str
    source: str


def connect(kubeconfig: str | None = None, context: str | None = None) -> _Cluster:
    """API clients from ``kubeconfig`` > $KUBECONFIG > ~/.kube/config > in-cluster config.

    Raises:
        TargetUnavailableError: no usable configuration (names what was tried).
    """
    try:
        from kubernetes import client
        from kubernetes import config as kconfig
    except ImportError as exc:
        raise TargetUnavailableError("the k8s target needs the kubernetes package: "
                                     "pip install 'runyard[k8s]'") from exc
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    in_cluster = (not kubeconfig and not os.environ.get("KUBECONFIG") and not os.path.exists(path)
                  and os.environ.get("KUBERNETES_SERVICE_HOST"))
    source = "in-cluster service account" if in_cluster else (
        f"kubeconfig {path}" + (f" (context {context})" if context else ""))
    try:
        if in_cluster:
            cfg = client.Configuration()
            kconfig.load_incluster_config(client_configuration=cfg)
            api = client.ApiClient(cfg)
        else:
            api = kconfig.new_client_from_config(config_file=path, context=context,
                                                 persist_config=False)
    except (kconfig.ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
        hint = "" if in_cluster else " (and no in-cluster service account)"
        raise TargetUnavailableError(f"cannot load the Kubernetes configuration from {source}"
                                     f"{hint}: {exc}", address=path) from exc
    return _Cluster(client.BatchV1Api(api), client.CoreV1Api(api),
                    api.configuration.host, source)


def _api_message(exc: Any) -> str:
    try:
        return json.loads(exc.body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(exc.body or "").strip()[:300]


class KubernetesTarget:
    """Run each job as a Kubernetes Job whose container runs the runyard launcher.

    The image must contain runyard (``python3 -m targets.launch``); the store must be reachable
    from pods (``s3://...``, or ``file://`` on a shared volume given in ``volumes``). Apply
    ``k8s/rbac.yaml`` first. Example::

        target = KubernetesTarget(namespace="ml", image="registry.local/runyard:0.1",
                                  cpu=2, memory="4Gi", gpus=1)
        run = exp.submit(ScriptRunConfig(source_directory=".", script="train.py",
                                         compute_target=target))

    Args: see :class:`KubernetesSettings`; ``volumes`` maps a mount path to a volume source
    (``{"/data/runyard": {"persistentVolumeClaim": {"claimName": "runyard-store"}}}``).

    Raises (from every method that calls the API): TargetUnavailableError naming the API server
    and the kubeconfig tried.
    """

    name = "k8s"

    def __init__(self, namespace: str = "default", image: str | None = None,
                 service_account: str | None = "runyard-job", cpu: str | float | None = None,
                 memory: str | int | None = None, gpus: int = 0,
                 node_selector: dict[str, str] | None = None,
                 tolerations: list[dict[str, Any]] | None = None,
                 image_pull_secrets: list[str] | None = None, kubeconfig: str | None = None,
                 context: str | None = None, ttl_seconds_after_finished: int | None = 3600,
                 backoff_limit: int = 0, volumes: dict[str, dict[str, Any]] | None = None,
                 gpu_resource: str = "nvidia.com/gpu", python: str = "python3"):
        self.config = _settings(dict(
            namespace=namespace, image=image, service_account=service_account, cpu=cpu,
            memory=memory, gpus=gpus, node_selector=node_selector, tolerations=tolerations,
            image_pull_secrets=image_pull_secrets, kubeconfig=kubeconfig, context=context,
            ttl_seconds_after_finished=ttl_seconds_after_finished, backoff_limit=backoff_limit,
            volumes=volumes, gpu_resource=gpu_resource, python=python))
        self._cluster: _Cluster | None = None

    @property
    def settings(self) -> dict[str, Any]:
        """Constructor arguments as JSON (recorded with each run; holds no credentials)."""
        return self.config.model_dump(mode="json")

    def __repr__(self) -> str:
        return f"KubernetesTarget(namespace={self.config.namespace!r}, image={self.config.image!r})"

    @contextmanager
    def _api(self, doing: str) -> Iterator[_Cluster]:
        if self._cluster is None:
            self._cluster = connect(self.config.kubeconfig, self.config.context)
        cluster = self._cluster
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError
        try:
            yield cluster
        except ApiException as exc:
            raise TargetUnavailableError(
                f"Kubernetes API {cluster.address} ({cluster.source}) refused to {doing}: "
                f"{exc.status} {exc.reason}: {_api_message(exc)}", address=cluster.address) from exc
        except (HTTPError, OSError) as exc:
            raise TargetUnavailableError(
                f"cannot reach the Kubernetes API server {cluster.address} ({cluster.source}) "
                f"to {doing}: {exc}", address=cluster.address) from exc

    def submit(self, job: JobSpec) -> dict[str, Any]:
        ns = self.config.namespace
        manifest = build_job_manifest(job, self.config)  # refuses bad input before any API call
        secret = build_credentials_secret(job, ns)
        name, t = manifest["metadata"]["name"], REQUEST_TIMEOUT_SECONDS
        with self._api(f"create job {name} for run {job.run_id} in namespace {ns}") as k:
            if secret:
                k.core.create_namespaced_secret(ns, secret, _request_timeout=t)
            try:
                created = k.batch.create_namespaced_job(ns, manifest, _request_timeout=t)
            except Exception:
                if secret:  # best effort: the Secret is labelled with the run id anyway
                    try:
                        _quietly(k.core.delete_namespaced_secret, secret_name(job.run_id), ns)
                    except Exception:  # noqa: BLE001 - report the creation error, not this one
                        pass
                raise
            uid = created.metadata.uid
        if secret:
            self._own_secret(secret_name(job.run_id), name, uid, job.run_id)
        return {"namespace": ns, "job": name, "uid": uid,
                "secret": secret_name(job.run_id) if secret else None,
                "selector": run_selector(job.run_id), "api_server": k.address}

    def _own_secret(self, secret: str, job: str, uid: str, run_id: str) -> None:
        try:
            with self._api(f"make secret {secret} owned by job {job}") as k:
                k.core.patch_namespaced_secret(secret, self.config.namespace,
                                               owner_reference_patch(job, uid),
                                               _request_timeout=REQUEST_TIMEOUT_SECONDS)
        except TargetUnavailableError as exc:  # the job runs anyway; the Secret stays labelled
            warnings.warn(f"{exc}; delete it after the run with: kubectl delete secret -n "
                          f"{self.config.namespace} -l {run_selector(run_id)}", stacklevel=3)

    def poll(self, handle: Mapping[str, Any]) -> str:
        """``"exited"`` also when the Job is gone (TTL, deleted); ``"unknown"`` when unreachable."""
        try:
            with self._api(f"read job {handle['job']}") as k:
                job = k.batch.read_namespaced_job_status(handle["job"], handle["namespace"],
                                                         _request_timeout=REQUEST_TIMEOUT_SECONDS)
        except TargetUnavailableError as exc:
            return "exited" if getattr(exc.__cause__, "status", None) == 404 else "unknown"
        return job_state(job.status)

    def cancel(self, handle: Mapping[str, Any], grace_seconds: float = 10.0) -> None:
        """Delete the Job (foreground: its pods first) unless it ends within ``grace_seconds``."""
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline and self.poll(handle) == "running":
            time.sleep(1.0)
        if self.poll(handle) == "exited":
            return  # finished or already gone; the TTL controller cleans up
        ns, grace = handle["namespace"], max(1, int(grace_seconds))
        with self._api(f"delete job {handle['job']}") as k:
            _quietly(k.batch.delete_namespaced_job, handle["job"], ns,
                     propagation_policy="Foreground", grace_period_seconds=grace)
            # Foreground deletion gives pods their own grace period; apply ours to them too.
            for pod in k.core.list_namespaced_pod(ns, label_selector=handle["selector"],
                                                  _request_timeout=REQUEST_TIMEOUT_SECONDS).items:
                _quietly(k.core.delete_namespaced_pod, pod.metadata.name, ns,
                         grace_period_seconds=grace)
            if handle.get("secret"):
                _quietly(k.core.delete_namespaced_secret, handle["secret"], ns)

    def logs(self, handle: Mapping[str, Any]) -> str:
        """The launcher's output from the Job's pod(s), or why a pod has none yet."""
        from kubernetes.client.exceptions import ApiException
        ns, parts = handle["namespace"], []
        with self._api(f"read the logs of job {handle['job']}") as k:
            pods = k.core.list_namespaced_pod(ns, label_selector=handle["selector"],
                                              _request_timeout=REQUEST_TIMEOUT_SECONDS).items
            pods.sort(key=lambda p: str(p.metadata.creation_timestamp))
            for pod in pods:
                try:
                    text = k.core.read_namespaced_pod_log(
                        pod.metadata.name, ns, container=CONTAINER_NAME,
                        _request_timeout=REQUEST_TIMEOUT_SECONDS)
                except ApiException as exc:
                    if exc.status not in (400, 404):  # 400: container not started yet
                        raise
                    text = pod_summary(pod) + "\n"
                parts.append(text if len(pods) == 1 else f"==> {pod.metadata.name} <==\n{text}")
        return "".join(parts)


def _quietly(delete: Any, name: str, namespace: str, **kwargs: Any) -> None:
    """Delete, treating "already gone" as done.

    The reply is not deserialized: servers answer a delete with the object itself (a Job being
    deleted in the foreground), which kubernetes>=35's typed client fails to read as V1Status.
    """
    from kubernetes.client.exceptions import ApiException
    try:
        reply = delete(name, namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS,
                       _preload_content=False, **kwargs)
    except ApiException as exc:
        if exc.status != 404:
            raise
    else:
        reply.read()
