"""Job images: base image + the Environment's pip requirements + runyard's runtime.

The tag is a hash of exactly those inputs (base image id, sorted requirements, runtime content
hash), so an unchanged environment is found with two engine look-ups and never rebuilt.

Nothing is downloaded inside ``docker build`` (its RUN steps get no network): wheels for the
image's Python and platform are prepared on the submitting machine (``wheelhouse.py``) and
installed with ``pip install --no-index --find-links``; the same works against an air-gapped
engine. Three layers, the most often changed last: runyard's dependencies (shared by every
environment on a base), the environment's requirements, runyard itself.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Iterable

import docker
from docker.errors import APIError, ContainerError, ImageNotFound

from targets.environments import requirements_hash
from tracking import config
from tracking.errors import ImageBuildError

from .runtime import Runtime, current_runtime, runtime_wheel
from .wheelhouse import BuildLog, environment_wheelhouse, error_lines, runtime_wheelhouse

DEFAULT_BASE_IMAGE = "python:3.11-slim"
IMAGE_REPOSITORY = "runyard-job"
FILES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docker_files")
BUILD_TIMEOUT = 3600
_FORMAT = 1  # bump when the image layout changes in a way the inputs do not show

_PROBE = ("import json, platform, sys; print(json.dumps({'python': '%d.%d' % sys.version_info[:2],"
          " 'full': platform.python_version(), 'executable': sys.executable,"
          " 'libc': platform.libc_ver(), 'machine': platform.machine()}))")


@dataclass(frozen=True)
class ImagePlan:
    tag: str
    base_image: str
    base_id: str
    requirements: tuple[str, ...]
    runtime: Runtime


@dataclass(frozen=True)
class ResolvedImage:
    tag: str
    built: bool
    seconds: float


def normalize_requirements(requirements: Iterable[str]) -> tuple[str, ...]:
    """Order does not matter; the launcher compares the same form (requirements_hash)."""
    return tuple(sorted(r.strip() for r in requirements if r.strip()))


def image_tag(base_id: str, requirements: tuple[str, ...], runtime_hash: str) -> str:
    inputs = {"base": base_id, "requirements": list(requirements), "runtime": runtime_hash,
              "format": _FORMAT}
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    return f"{IMAGE_REPOSITORY}:{digest[:24]}"


class ImageBuilder:
    """Finds or builds the job image for (base image, requirements) on one engine."""

    def __init__(self, client: docker.DockerClient):
        self.client = client

    def resolve(self, base_image: str, requirements: Iterable[str], log: BuildLog,
                nocache: bool = False) -> ResolvedImage:
        """The image tag, built first if the engine does not have it (or ``nocache``).

        Raises:
            ImageBuildError: pulling the base, ``pip download`` or ``docker build`` failed; the
                message carries pip's ERROR lines, ``log_tail`` the end of the output.
        """
        started = time.monotonic()
        plan = self.plan(base_image, requirements, log)
        if not nocache and self._has_image(plan.tag):
            _say(log, f"runyard: image {plan.tag} is up to date (base {base_image}, "
                      f"{len(plan.requirements)} requirement(s), runyard {plan.runtime.version})\n")
            return ResolvedImage(plan.tag, False, time.monotonic() - started)
        _say(log, f"runyard: building image {plan.tag} from {base_image} + "
                  f"{len(plan.requirements)} requirement(s) + runyard {plan.runtime.version}\n")
        self.build(plan, log, nocache=nocache)
        seconds = time.monotonic() - started
        _say(log, f"runyard: built image {plan.tag} in {seconds:.1f} s\n")
        return ResolvedImage(plan.tag, True, seconds)

    def plan(self, base_image: str, requirements: Iterable[str], log: BuildLog) -> ImagePlan:
        runtime = current_runtime()
        base_id = self._base_image_id(base_image, log)
        reqs = normalize_requirements(requirements)
        return ImagePlan(image_tag(base_id, reqs, runtime.content_hash), base_image, base_id,
                         reqs, runtime)

    def build(self, plan: ImagePlan, log: BuildLog, nocache: bool = False) -> None:
        probe = self._probe(plan)
        runtime_wheels = runtime_wheelhouse(plan.runtime.requirements, probe, log)
        env_wheels = (environment_wheelhouse(plan.requirements, runtime_wheels, probe, log)
                      if plan.requirements else None)
        dockerfile = render_dockerfile(plan, probe)
        with tempfile.TemporaryFile() as context:
            write_context(context, dockerfile, runtime_wheels, env_wheels,
                          runtime_wheel(plan.runtime))
            context.seek(0)
            self._docker_build(context, plan, log, nocache)

    # ----------------------------------------------------------------- engine look-ups
    def _has_image(self, tag: str) -> bool:
        try:
            self.client.images.get(tag)
            return True
        except ImageNotFound:
            return False

    def _base_image_id(self, name: str, log: BuildLog) -> str:
        try:
            return self.client.images.get(name).id
        except ImageNotFound:
            pass
        _say(log, f"runyard: base image {name} is not on the engine; pulling it\n")
        try:
            self.client.images.pull(name)
            return self.client.images.get(name).id
        except (APIError, ImageNotFound) as exc:
            raise ImageBuildError(f"base image {name!r} is not on the Docker engine and could not "
                                  f"be pulled: {getattr(exc, 'explanation', None) or exc}") from exc

    def _probe(self, plan: ImagePlan) -> dict[str, Any]:
        """Python version and platform of the base image (cached per image id)."""
        path = os.path.join(config.cache_dir("docker", "probes"), plan.base_id.replace(":", "-") + ".json")
        try:
            with open(path) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            pass
        try:
            out = self.client.containers.run(plan.base_id, entrypoint=["python3", "-c", _PROBE],
                                             network_mode="none", remove=True)
            probe = json.loads(out.decode().strip().splitlines()[-1])
        except (APIError, ContainerError, ValueError, IndexError) as exc:
            raise ImageBuildError(f"base image {plan.base_image!r} has no working `python3` to "
                                  f"run runyard's launcher: {exc}") from exc
        with open(path, "w") as fh:
            json.dump(probe, fh)
        return probe

    def _docker_build(self, context, plan: ImagePlan, log: BuildLog, nocache: bool) -> None:
        labels = {"runyard.image": "job", "runyard.base-image": plan.base_image,
                  "runyard.runtime": f"{plan.runtime.version}+{plan.runtime.content_hash[:12]}",
                  "runyard.requirements": json.dumps(list(plan.requirements))[:4000]}
        lines: list[str] = []
        error = None
        last_flush = time.monotonic()
        try:
            # network_mode="none": the build is offline by design; every wheel is in the context
            stream = self.client.api.build(fileobj=context, custom_context=True, tag=plan.tag,
                                           rm=True, forcerm=True, pull=False, nocache=nocache,
                                           network_mode="none", labels=labels, decode=True,
                                           timeout=BUILD_TIMEOUT)
            for chunk in stream:
                text = chunk.get("stream") or ""
                if chunk.get("error"):
                    error = chunk["error"]
                    text += chunk["error"] + "\n"
                if text:
                    lines.append(text)
                    log.write(text.encode())
                if time.monotonic() - last_flush > 0.5:
                    log.flush()
                    last_flush = time.monotonic()
        except APIError as exc:
            error = f"{exc.explanation or exc}"
        log.flush()
        if error is not None:
            raise ImageBuildError(f"docker build failed: {error_lines(lines) or error}",
                                  log_tail="".join(lines[-40:]))


def render_dockerfile(plan: ImagePlan, probe: dict[str, Any]) -> str:
    with open(os.path.join(FILES_DIR, "Dockerfile.template")) as fh:
        template = fh.read()
    return template.format(base_image=plan.base_image, python=probe["executable"],
                           requirements_hash=requirements_hash(list(plan.requirements), "image"))


def write_context(fileobj, dockerfile: str, runtime_wheels: str, env_wheels: str | None,
                  wheel: str) -> None:
    """The build context as a tar with fixed metadata, so unchanged inputs hit Docker's cache."""
    def add(tar: tarfile.TarFile, name: str, data: bytes | None = None, path: str | None = None) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data) if data is not None else os.path.getsize(path)
        info.mode, info.mtime = 0o644, 0
        if data is not None:
            tar.addfile(info, io.BytesIO(data))
        else:
            with open(path, "rb") as fh:
                tar.addfile(info, fh)

    runtime_names = set(os.listdir(runtime_wheels))
    with tarfile.open(fileobj=fileobj, mode="w") as tar:
        add(tar, "Dockerfile", dockerfile.encode())
        add(tar, "entrypoint.py", path=os.path.join(FILES_DIR, "entrypoint.py"))
        for name in sorted(runtime_names):
            add(tar, f"wheels/runtime/{name}", path=os.path.join(runtime_wheels, name))
        if env_wheels is None:
            add(tar, "wheels/env/requirements.txt", b"")
        else:
            for name in sorted(os.listdir(env_wheels)):
                if name == "requirements.txt" or name not in runtime_names:
                    add(tar, f"wheels/env/{name}", path=os.path.join(env_wheels, name))
        add(tar, f"dist/{os.path.basename(wheel)}", path=wheel)


def _say(log: BuildLog, text: str) -> None:
    log.write(text.encode())
