"""runyard targets: where a job runs, behind one contract (see base.py), plus the launcher.

Target classes load lazily through the registry, so ``from targets import DockerTarget`` needs
the docker extra only when used.
"""
from __future__ import annotations

from typing import Any

__all__ = ["DockerTarget", "InlineTarget", "KubernetesTarget", "LocalTarget", "RayTarget"]

_BY_CLASS = {"LocalTarget": "local", "InlineTarget": "inline", "DockerTarget": "docker",
             "RayTarget": "ray", "KubernetesTarget": "k8s"}


def __getattr__(name: str) -> Any:
    if name in _BY_CLASS:
        from .base import target_class
        return target_class(_BY_CLASS[name])
    raise AttributeError(f"module 'targets' has no attribute {name!r}")
