"""The compute-target contract and the registry that picks a target by name.

A target only has to start the launcher (``python -m targets.launch``) somewhere with the job's
environment, and to stop it on request. Everything else (status, logs, metrics, outputs) is the
launcher's job and goes through the store, so every target behaves the same. Recording status,
snapshotting and timing happen once in ``runner.submission`` around the target call.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

from tracking import config
from tracking.errors import UnknownTargetError


@dataclass(frozen=True)
class JobSpec:
    """Everything a target needs to start one job; frozen once the submission is recorded.

    ``storage_options`` may hold credentials: targets pass them to the job through its
    environment only (see :meth:`environment`), never into images, records or logs.
    """

    run_id: str
    experiment: str
    store_url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    python_requirements: tuple[str, ...] = ()
    user_managed: bool = True
    interpreter_path: str | None = None
    docker_image: str | None = None
    max_run_duration_seconds: int | None = None

    def environment(self) -> dict[str, str]:
        """Variables the launcher needs to find its run (plus the user's own)."""
        env = {k: str(v) for k, v in self.environment_variables.items()}
        env.update(config.job_identity_env(self.run_id, self.experiment, self.store_url,
                                           self.storage_options))
        return env

    def launcher_args(self, python: str = "python3") -> list[str]:
        return [python, "-m", "targets.launch", "--run-id", self.run_id]


@runtime_checkable
class ComputeTarget(Protocol):
    """What every compute target implements.

    ``submit`` starts the launcher for ``job`` and returns a JSON-able handle (recorded on the
    run, so any process can cancel later). ``poll`` says whether the job's process/container/
    task still exists (``"running"``, ``"exited"``, ``"unknown"``). ``cancel`` force-stops it
    (the launcher has already been asked through the store). ``logs`` returns the target's own
    view of the launcher output, for debugging a launcher that could not reach the store.
    """

    name: str

    def submit(self, job: JobSpec) -> dict[str, Any]: ...

    def poll(self, handle: Mapping[str, Any]) -> str: ...

    def cancel(self, handle: Mapping[str, Any], grace_seconds: float = 10.0) -> None: ...

    def logs(self, handle: Mapping[str, Any]) -> str: ...


# name -> (dotted path, install hint). One dispatch mechanism for every target.
KNOWN_TARGETS: dict[str, tuple[str, str | None]] = {
    "local": ("targets.local:LocalTarget", None),
    "inline": ("targets.inline:InlineTarget", None),
    "docker": ("targets.docker:DockerTarget", "pip install 'runyard[docker]'"),
    "ray": ("targets.ray:RayTarget", "pip install 'runyard[ray]'"),
    "k8s": ("targets.k8s:KubernetesTarget", "pip install 'runyard[k8s]'"),
}


def target_class(name: str) -> type:
    try:
        dotted, hint = KNOWN_TARGETS[name]
    except KeyError:
        raise UnknownTargetError(
            f"unknown compute target {name!r}; known: {', '.join(sorted(KNOWN_TARGETS))}, "
            "a target object, or a name defined in the workspace's compute_targets") from None
    module_name, _, attr = dotted.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name == module_name:
            raise UnknownTargetError(f"compute target {name!r} is not available in this "
                                     "version of runyard") from None
        raise UnknownTargetError(f"compute target {name!r} needs {exc.name}: {hint}") from exc
    return getattr(module, attr)


def describe_target(target: Any) -> Any:
    """JSON form of a target choice, so another process (a sweep controller) can rebuild it."""
    if target is None or isinstance(target, str):
        return target or "local"
    return {"type": target.name, **dict(getattr(target, "settings", None) or {})}


def resolve_target(target: Any, defined: Mapping[str, Mapping[str, Any]] | None = None) -> ComputeTarget:
    """A target object as is; a workspace-defined name with its settings; or a registry name."""
    if target is None:
        target = "local"
    if isinstance(target, Mapping):
        settings = dict(target)
        return target_class(settings.pop("type"))(**settings)
    if not isinstance(target, str):
        if not isinstance(target, ComputeTarget):
            raise UnknownTargetError(f"{target!r} is not a compute target (it needs submit/poll/"
                                     "cancel/logs and a name)")
        return target
    settings = dict((defined or {}).get(target, {}))
    kind = settings.pop("type", target)
    return target_class(kind)(**settings)
