"""Which Python runs the script: the user's interpreter, or a cached virtualenv.

An environment that is not user-managed and lists pip requirements gets a virtualenv built
from them, keyed by a hash of (requirements, base interpreter), so the second run reuses it.
The venv sees the launcher's site-packages (``--system-site-packages``) so that the script can
import runyard's ``tracking`` and what is already installed.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from typing import Any, Mapping, Protocol

from tracking import config


# Set by image-building targets (Docker) in the job image: requirements_hash(reqs, "image") of
# the requirements installed into the image's interpreter, so no venv is built at run time.
ENV_IMAGE_REQUIREMENTS = "RUNYARD_IMAGE_REQUIREMENTS"


class _Log(Protocol):
    def write(self, data: bytes, is_err: bool = False) -> None: ...


def requirements_hash(requirements: list[str], base_python: str) -> str:
    text = "\n".join(sorted(r.strip() for r in requirements if r.strip())) + "\n" + base_python
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resolve_interpreter(environment: Mapping[str, Any], log: _Log | None = None) -> str:
    python = environment.get("python") or {}
    if python.get("interpreter_path"):
        path = python["interpreter_path"]
        if not os.path.exists(path):
            raise FileNotFoundError(f"environment.python.interpreter_path {path!r} does not exist")
        return path
    requirements = list(python.get("pip_requirements") or [])
    if python.get("user_managed_dependencies", True) or not requirements:
        return sys.executable
    if os.environ.get(ENV_IMAGE_REQUIREMENTS) == requirements_hash(requirements, "image"):
        _say(log, "runyard: requirements are installed in the job image\n")
        return sys.executable
    return ensure_venv(requirements, sys.executable, log)


def ensure_venv(requirements: list[str], base_python: str, log: _Log | None = None) -> str:
    """Build (once) and return the interpreter of a venv holding ``requirements``."""
    key = requirements_hash(requirements, base_python)
    root = os.path.join(config.cache_dir("envs"), key)
    python = os.path.join(root, "bin", "python")
    if os.path.exists(os.path.join(root, ".runyard-ready")):
        _say(log, f"runyard: reusing environment {key} ({len(requirements)} requirement(s))\n")
        return python
    _say(log, f"runyard: building environment {key} from {len(requirements)} requirement(s)\n")
    tmp = f"{root}.tmp-{os.getpid()}"
    _run([base_python, "-m", "venv", "--system-site-packages", tmp], log)
    _inherit_site_packages(tmp)
    req_file = os.path.join(tmp, "requirements.txt")
    with open(req_file, "w") as fh:
        fh.write("\n".join(requirements) + "\n")
    extra = os.environ.get("RUNYARD_PIP_ARGS", "").split()
    _run([os.path.join(tmp, "bin", "python"), "-m", "pip", "install", "--disable-pip-version-check",
          "-r", req_file, *extra], log)
    with open(os.path.join(tmp, ".runyard-ready"), "w") as fh:
        fh.write(key)
    try:
        os.rename(tmp, root)
    except OSError:  # another job built it first
        pass
    return python


def _inherit_site_packages(venv: str) -> None:
    """Append the launcher's own site-packages (runyard's dependencies) after the venv's.

    ``--system-site-packages`` alone is not enough when the launcher itself runs in a venv.
    """
    import site
    import sysconfig
    purelib = sysconfig.get_path("purelib", vars={"base": venv, "platbase": venv})
    os.makedirs(purelib, exist_ok=True)
    with open(os.path.join(purelib, "_runyard_parent.pth"), "w") as fh:
        fh.write("\n".join(site.getsitepackages()) + "\n")


def _run(argv: list[str], log: _Log | None) -> None:
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if log is not None:
        log.write(proc.stdout)
    if proc.returncode != 0:
        tail = proc.stdout.decode("utf-8", "replace")[-2000:]
        raise RuntimeError(f"{' '.join(argv[:4])}... failed with exit code {proc.returncode}:\n{tail}")


def _say(log: _Log | None, text: str) -> None:
    if log is not None:
        log.write(text.encode())
