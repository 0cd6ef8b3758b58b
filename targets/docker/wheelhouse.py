"""Wheelhouses for job images, made on the submitting machine (nothing is fetched in the build).

* runyard's runtime (fsspec, pyarrow, pydantic, click, pathspec, s3fs and their dependencies):
  the versions installed next to this runyard, repacked as wheels from the installed files when
  their tags fit the image's Python and platform (else ``pip download``-ed at that version). The
  job therefore runs the same dependency versions as the notebook, and an air-gapped machine
  needs no index for them.
* the Environment's pip requirements: ``pip download`` for the image's Python and platform,
  constrained to the runtime's versions, with the runtime wheelhouse as extra ``--find-links``.

Both are cached under ``<cache>/docker/`` by their inputs. ``RUNYARD_PIP_ARGS`` adds arguments to
``pip download`` (e.g. ``--find-links /wheels``); pip's own ``PIP_*`` variables apply as usual.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from importlib import metadata
from typing import Any, Protocol

from tracking import config
from tracking.errors import ImageBuildError

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # pip vendors it
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

ENV_PIP_ARGS = "RUNYARD_PIP_ARGS"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_SKIP_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


class BuildLog(Protocol):
    def write(self, data: bytes, is_err: bool = False) -> None: ...

    def flush(self) -> None: ...


# ------------------------------------------------------------------ the image's platform
def platform_tags(probe: dict[str, Any]) -> list[str]:
    """Platform tags the image accepts, newest first (pip does not expand manylinux_2_36)."""
    machine = probe["machine"]
    libc, libc_version = (list(probe.get("libc") or []) + ["", ""])[:2]
    tags = []
    if libc == "glibc" and libc_version:
        major, minor = (int(x) for x in libc_version.split(".")[:2])
        tags += [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags += [f"{name}_{machine}" for m, name in legacy.items() if m <= minor]
    else:
        tags += [f"musllinux_1_{m}_{machine}" for m in (2, 1)]
    return tags + [f"linux_{machine}"]


def pip_platform_args(probe: dict[str, Any]) -> list[str]:
    """``pip download`` flags selecting wheels for the image's Python and platform."""
    python = probe["python"]
    args = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp",
            "--abi", "cp" + python.replace(".", ""), "--abi", "abi3", "--abi", "none"]
    for tag in platform_tags(probe):
        args += ["--platform", tag]
    return args


def supported_tags(probe: dict[str, Any]) -> set[str]:
    major, minor = (int(x) for x in probe["python"].split(".")[:2])
    cp = f"cp{major}{minor}"
    tags = {f"py{major}-none-any", f"{cp}-none-any"}
    tags |= {f"py{major}{m}-none-any" for m in range(minor + 1)}
    for plat in platform_tags(probe):
        tags |= {f"{cp}-{cp}-{plat}", f"{cp}-none-{plat}", f"py{major}-none-{plat}"}
        tags |= {f"cp{major}{m}-abi3-{plat}" for m in range(2, minor + 1)}
    return tags


def marker_environment(probe: dict[str, Any]) -> dict[str, str]:
    return {"python_version": probe["python"], "python_full_version": probe.get("full", probe["python"]),
            "implementation_name": "cpython", "implementation_version": probe.get("full", probe["python"]),
            "platform_python_implementation": "CPython", "os_name": "posix",
            "sys_platform": "linux", "platform_system": "Linux",
            "platform_machine": probe["machine"], "platform_release": "", "platform_version": ""}


# ------------------------------------------------------------------------ runtime
def runtime_wheelhouse(requirements: tuple[str, ...], probe: dict[str, Any], log: BuildLog) -> str:
    """A folder with a wheel for every package of runyard's runtime, and its requirements.txt."""
    closure, missing = _installed_closure(requirements, marker_environment(probe))
    tags = supported_tags(probe)
    repack, download = [], []
    for dist in closure:
        if _wheel_tags(dist) & tags:
            repack.append(dist)
        else:
            download.append(f"{dist.metadata['Name']}=={dist.version}")
    pins = sorted(f"{d.metadata['Name']}=={d.version}" for d in closure)
    key = _key(["runtime", pins, download, sorted(tags)])
    folder, cached = _cache_folder(key)
    if cached:
        _say(log, f"runyard: runtime wheelhouse cached ({len(pins)} packages)\n")
        return folder
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(folder))
    started = time.monotonic()
    for dist in repack:
        _link(_repacked_wheel(dist), tmp)
    _say(log, f"runyard: runtime: {len(repack)} installed packages repacked as wheels in "
              f"{time.monotonic() - started:.1f} s\n")
    extra = shlex.split(os.environ.get(ENV_PIP_ARGS, ""))
    if download:  # installed here, but built for another platform: same versions, for the image
        _pip_download([*download, "--no-deps"], probe, tmp, log, extra)
    if missing:  # not installed here (e.g. s3fs without runyard[s3]): resolved by pip
        _pip_download(list(missing), probe, tmp, log, extra)
    _write_lines(os.path.join(tmp, "requirements.txt"), pins + list(missing))
    return _publish(tmp, folder)


def environment_wheelhouse(requirements: tuple[str, ...], runtime_folder: str,
                           probe: dict[str, Any], log: BuildLog) -> str:
    """``pip download`` of the Environment's requirements, with the runtime's versions pinned."""
    constraints = os.path.join(runtime_folder, "requirements.txt")
    with open(constraints) as fh:
        pins = [ln.strip() for ln in fh if "==" in ln]
    extra = shlex.split(os.environ.get(ENV_PIP_ARGS, ""))
    key = _key(["env", list(requirements), pins, pip_platform_args(probe), extra])
    folder, cached = _cache_folder(key)
    if cached:
        _say(log, f"runyard: environment wheelhouse cached ({len(requirements)} requirement(s))\n")
        return folder
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(folder))
    _write_lines(os.path.join(tmp, "constraints.txt.in"), pins)
    _write_lines(os.path.join(tmp, "requirements.txt.in"), list(requirements))
    _pip_download(["-r", os.path.join(tmp, "requirements.txt.in"),
                   "-c", os.path.join(tmp, "constraints.txt.in"), "--find-links", runtime_folder],
                  probe, tmp, log, extra)
    os.remove(os.path.join(tmp, "constraints.txt.in"))
    os.rename(os.path.join(tmp, "requirements.txt.in"), os.path.join(tmp, "requirements.txt"))
    return _publish(tmp, folder)


def _installed_closure(requirements, markers) -> tuple[list[metadata.Distribution], list[str]]:
    """Installed distributions the runtime needs (markers evaluated for the image), and the
    requirements that are not installed here."""
    found: dict[str, tuple[metadata.Distribution, set[str]]] = {}
    missing = []
    queue = [Requirement(r) for r in requirements]
    while queue:
        req = queue.pop()
        key = canonicalize_name(req.name)
        if key == "runyard":
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            missing.append(str(req))
            continue
        extras = set(req.extras) | (found[key][1] if key in found else set())
        if key in found and extras == found[key][1]:
            continue
        found[key] = (dist, extras)
        for line in dist.requires or []:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({**markers, "extra": e})
                                         for e in extras | {""}):
                queue.append(dep)
    return [d for d, _ in found.values()], sorted(set(missing))


def _wheel_tags(dist: metadata.Distribution) -> set[str]:
    text = dist.read_text("WHEEL") or ""
    return {ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Tag:")}


def _repacked_wheel(dist: metadata.Distribution) -> str:
    """The installed files of ``dist`` as a wheel again (cached; stored, not compressed: fast)."""
    tags = sorted(_wheel_tags(dist))
    parts = [sorted({t.split("-")[i] for t in tags}) for i in range(3)]
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    filename = f"{name}-{dist.version}-{'-'.join('.'.join(p) for p in parts)}.whl"
    path = os.path.join(config.cache_dir("docker", "wheels"), filename)
    if os.path.exists(path):
        return path
    files = sorted(str(f) for f in dist.files or [])
    info = next((f.split("/")[0] for f in files if f.split("/")[0].endswith(".dist-info")), None)
    if info is None:
        raise ImageBuildError(f"cannot repack {dist.metadata['Name']}: no .dist-info in its files")
    record = []
    tmp = f"{path}.{os.getpid()}.tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as wheel:
        for arc in files:
            top, _, base = arc.partition("/")
            if arc.startswith("..") or "__pycache__" in arc or arc.endswith(".pyc") or \
                    (top == info and base in _SKIP_INFO):
                continue  # scripts are regenerated by pip, bytecode recompiled
            try:
                with open(dist.locate_file(arc), "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            _zip_add(wheel, arc, data, record)
        record.append(f"{info}/RECORD,,")
        _zip_add(wheel, f"{info}/RECORD", ("\n".join(record) + "\n").encode(), None)
    os.replace(tmp, path)
    return path


def _zip_add(wheel: zipfile.ZipFile, arc: str, data: bytes, record: list[str] | None) -> None:
    item = zipfile.ZipInfo(arc, _ZIP_TIME)
    item.external_attr = 0o755 << 16 if arc.endswith(".so") or ".so." in arc else 0o644 << 16
    wheel.writestr(item, data)
    if record is not None:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{arc},sha256={digest},{len(data)}")


# ---------------------------------------------------------------------- pip, cache
def _pip_download(args: list[str], probe: dict[str, Any], dest: str, log: BuildLog,
                  extra: list[str]) -> None:
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
            "--progress-bar", "off", "--dest", dest, *pip_platform_args(probe), *extra, *args]
    _say(log, "runyard: pip download " + " ".join(a for a in args if not a.startswith("/")) + "\n")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    lines, last_flush = [], time.monotonic()
    for raw in proc.stdout:
        lines.append(raw.decode("utf-8", "replace"))
        log.write(raw)
        if time.monotonic() - last_flush > 0.5:
            log.flush()
            last_flush = time.monotonic()
    code = proc.wait()
    log.flush()
    if code != 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise ImageBuildError("pip download failed: " + error_lines(lines),
                              log_tail="".join(lines[-40:]) + f"(pip exit code {code})\n")


def error_lines(lines: list[str]) -> str:
    """pip's (or the build's) ERROR lines: what a user needs to see first."""
    text = "".join(lines).splitlines()
    errors = [ln.strip() for ln in text if ln.strip().startswith("ERROR")]
    return "\n".join((errors or [ln.strip() for ln in text if ln.strip()][-3:])[-6:])


def _key(parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _cache_folder(key: str) -> tuple[str, bool]:
    folder = os.path.join(config.cache_dir("docker", "wheelhouses"), key)
    return folder, os.path.exists(os.path.join(folder, "requirements.txt"))


def _publish(tmp: str, folder: str) -> str:
    try:
        os.rename(tmp, folder)
    except OSError:  # a concurrent submission made the same wheelhouse first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _link(path: str, folder: str) -> None:
    target = os.path.join(folder, os.path.basename(path))
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)


def _write_lines(path: str, lines: list[str]) -> None:
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + ("\n" if lines else ""))


def _say(log: BuildLog, text: str) -> None:
    log.write(text.encode())
