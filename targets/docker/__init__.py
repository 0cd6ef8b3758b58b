"""The Docker compute target (``compute_target="docker"``); needs ``pip install 'runyard[docker]'``.

| module | what |
| --- | --- |
| ``target.py`` | ``DockerTarget`` (submit / poll / cancel / logs) and ``container_options``, the pure builder of the container's run arguments |
| ``image.py`` | ``ImageBuilder``: job image = base + requirements + runyard, tag = hash of those inputs, built offline from a host wheelhouse |
| ``runtime.py`` | runyard's own runtime as a reproducible wheel, cached by content hash |
| ``../docker_files/`` | the Dockerfile template and the container entrypoint (stands in for a killed launcher) |
"""
from .target import DockerTarget, container_options

__all__ = ["DockerTarget", "container_options"]
