"""Availability checks for the real services integration tests use.

The rule, everywhere: a missing service **skips** the test on a developer machine and **fails**
it in CI (``CI=true``), where ``scripts/test.sh`` guarantees every service; a CI run that silently
skipped the Docker tests would report green while testing nothing.

Every check runs inside a function, when a fixture calls it, never at import time, so collecting
the suite costs nothing and needs no service.

``scripts/test.sh`` provides, inside its private network namespace:

* ``DOCKER_HOST=unix:///run/runyard-test/docker.sock`` (its own dockerd; ``--network host``
  containers share the namespace's loopback, so they reach servers tests start on 127.0.0.1),
* ``RUNYARD_TEST_BASE_IMAGE`` (``runyard/python-base:bookworm``: Debian, ``python3`` only),
* ``RUNYARD_TEST_CHROMIUM`` (``/usr/bin/chromium``),
* ``RUNYARD_TEST_NETNS=1`` (127.0.0.1 is the only address; Ray can use it as node IP).

Example::

    from tests.support import services

    @pytest.fixture
    def docker_engine():
        client = services.docker_client()
        yield client
        client.close()
"""

from __future__ import annotations

import os
import shutil
from typing import Any, NoReturn

import pytest

DEFAULT_BASE_IMAGE = "runyard/python-base:bookworm"
DEFAULT_CHROMIUM = "/usr/bin/chromium"

# tests/conftest.py clears RUNYARD_* around every test so no test sees a developer's settings.
# The harness's RUNYARD_TEST_* values are therefore also captured when this module is first
# imported (collection time, before any fixture runs). Reading them is not an availability check.
_HARNESS_ENV = {k: v for k, v in os.environ.items() if k.startswith("RUNYARD_TEST_")}


def harness_setting(name: str) -> str | None:
    """A ``RUNYARD_TEST_*`` value set by ``scripts/test.sh``, even after a fixture cleared it."""
    return os.environ.get(name) or _HARNESS_ENV.get(name)


def in_ci() -> bool:
    """True when running under CI (``CI`` set to a true-ish value), where nothing may skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def in_private_netns() -> bool:
    """True inside ``scripts/test.sh``'s network namespace (loopback is the whole network)."""
    return harness_setting("RUNYARD_TEST_NETNS") == "1"


def unavailable(service: str, reason: str) -> NoReturn:
    """Skip the calling test locally, fail it in CI, with one message saying what is missing."""
    message = f"{service} unavailable: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: services are required; run `bash scripts/test.sh`)",
                    pytrace=False)
    pytest.skip(f"{message} (run `bash scripts/test.sh` to get it)")


def require(service: str, reason: str | None = None, *, available: bool = False) -> None:
    """Apply the "skip locally, fail in CI" rule to any service.

    ``require("kubectl", "no kubeconfig", available=bool(os.environ.get("KUBECONFIG")))``
    returns when ``available`` is true; otherwise skips (locally) or fails (CI) with ``reason``.
    Calling ``require(service, reason)`` alone always skips/fails: use it after your own check.
    """
    if not available:
        unavailable(service, reason or "not found")


def docker_client() -> Any:
    """A docker-py ``DockerClient`` for ``DOCKER_HOST`` (or docker-py's default socket), pinged.

    Skips locally / fails in CI when docker-py is missing or the engine does not answer. The API
    version is negotiated ("auto"): Debian's engine speaks an older API than docker-py's default.
    """
    try:
        import docker
    except ImportError as exc:
        unavailable("docker", f"docker-py not installed ({exc}); pip install -e '.[dev]'")
    try:
        client = docker.from_env(version="auto", timeout=60)
        client.ping()
    except Exception as exc:  # any failure to reach the engine means "no Docker" here
        where = os.environ.get("DOCKER_HOST", "the default socket")
        unavailable("docker", f"no engine answering on {where}: {exc}")
    return client


def base_image() -> str:
    """Name of the offline Python base image (``RUNYARD_TEST_BASE_IMAGE``), checked to exist.

    The image has ``python3`` (no ``python``) and no entrypoint: run ``python3 ...`` explicitly.
    """
    name = harness_setting("RUNYARD_TEST_BASE_IMAGE")
    if not name:
        unavailable("base image", "RUNYARD_TEST_BASE_IMAGE is not set "
                    f"(docker/build-base-image.sh builds {DEFAULT_BASE_IMAGE})")
    client = docker_client()
    try:
        client.images.get(name)
    except Exception as exc:
        unavailable("base image", f"{name} not in the engine: {exc}")
    finally:
        client.close()
    return name


def chromium_path() -> str:
    """Path of Debian's chromium (``RUNYARD_TEST_CHROMIUM``, else ``/usr/bin/chromium``).

    Launch it headless with ``--no-sandbox`` (tests run as root); never download a browser.
    """
    path = harness_setting("RUNYARD_TEST_CHROMIUM") or DEFAULT_CHROMIUM
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        found = shutil.which("chromium")
        if not found:
            unavailable("chromium", f"{path} not found (apt-get install chromium)")
        path = found
    return path
