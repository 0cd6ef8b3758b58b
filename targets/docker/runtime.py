"""runyard's own job runtime as a wheel: built from the installed packages, cached by content.

The job image needs the launcher and ``tracking`` (``Run.get_context()``), nothing downloaded at
run time. The wheel is written directly from the importable ``runner``, ``targets`` and
``tracking`` packages (an editable checkout or a site-packages install alike), so it needs no
build backend and no index, and it is byte-for-byte reproducible: the same sources give the same
wheel, which keeps Docker's layer cache warm.
"""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import zipfile
from dataclasses import dataclass
from importlib import metadata

from tracking import config
from tracking.errors import ImageBuildError

PACKAGES = ("runner", "targets", "tracking")
DIST = "runyard"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: identical sources -> identical wheel bytes


@dataclass(frozen=True)
class Runtime:
    """What the job image gets from runyard: a version, a content hash, its dependencies."""

    version: str
    content_hash: str
    requirements: tuple[str, ...]       # runtime dependencies (base + the s3 extra)
    files: tuple[tuple[str, str], ...]  # (path inside the wheel, path on disk)


def runtime_requirements() -> tuple[str, ...]:
    """runyard's light in-job dependencies plus s3fs, from the installed distribution."""
    try:
        declared = metadata.requires(DIST) or []
    except metadata.PackageNotFoundError:
        raise ImageBuildError(f"{DIST} is not installed as a distribution, so its job runtime "
                              "cannot be packaged; run `pip install -e .` in the checkout") from None
    keep = []
    for line in declared:
        req, _, marker = line.partition(";")
        marker = marker.replace(" ", "").replace("'", '"')
        if not marker or marker == 'extra=="s3"':
            keep.append(req.strip())
    return tuple(keep)


def current_runtime() -> Runtime:
    """Hash the installed packages' files (a few milliseconds; done on every submission)."""
    files = []
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ImageBuildError(f"cannot locate runyard's {package!r} package")
        root = list(spec.submodule_search_locations)[0]
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
            for name in sorted(names):
                if name.endswith((".pyc", ".pyo")) or name.startswith("."):
                    continue
                path = os.path.join(folder, name)
                arc = package + "/" + os.path.relpath(path, root).replace(os.sep, "/")
                files.append((arc, path))
    try:
        version = metadata.version(DIST)
    except metadata.PackageNotFoundError:
        version = "0"
    requirements = runtime_requirements()
    digest = hashlib.sha256(f"{version}\n{requirements}\n".encode())
    for arc, path in files:
        digest.update(arc.encode() + b"\0")
        with open(path, "rb") as fh:
            digest.update(hashlib.sha256(fh.read()).digest())
    return Runtime(version, digest.hexdigest(), requirements, tuple(files))


def runtime_wheel(runtime: Runtime) -> str:
    """Path of the wheel for ``runtime``, written once per content hash under the cache dir."""
    folder = config.cache_dir("docker", "runtime", runtime.content_hash[:24])
    path = os.path.join(folder, f"{DIST}-{runtime.version}-py3-none-any.whl")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        _write_wheel(tmp, runtime)
        os.replace(tmp, path)
    return path


def _write_wheel(path: str, runtime: Runtime) -> None:
    info = f"{DIST}-{runtime.version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {DIST}", f"Version: {runtime.version}",
            "Requires-Python: >=3.10"]
    # The image's runtime is "runyard with the s3 extra": its dependencies, unconditionally.
    meta += [f"Requires-Dist: {req}" for req in runtime.requirements]
    extra = {
        f"{info}/METADATA": "\n".join(meta) + "\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: runyard\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
        f"{info}/entry_points.txt": _entry_points(),
    }
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for arc, disk in runtime.files:
            with open(disk, "rb") as fh:
                data = fh.read()
            _add(wheel, arc, data, record)
        for arc, text in extra.items():
            _add(wheel, arc, text.encode(), record)
        record.append(f"{info}/RECORD,,")
        _add(wheel, f"{info}/RECORD", ("\n".join(record) + "\n").encode(), None)


def _add(wheel: zipfile.ZipFile, arc: str, data: bytes, record: list[str] | None) -> None:
    item = zipfile.ZipInfo(arc, _ZIP_TIME)
    item.compress_type = zipfile.ZIP_DEFLATED
    item.external_attr = 0o644 << 16
    wheel.writestr(item, data)
    if record is not None:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{arc},sha256={digest},{len(data)}")


def _entry_points() -> str:
    try:
        points = [ep for ep in metadata.distribution(DIST).entry_points
                  if ep.group == "console_scripts"]
    except metadata.PackageNotFoundError:
        points = []
    lines = ["[console_scripts]"] + [f"{ep.name} = {ep.value}" for ep in points]
    return "\n".join(lines) + "\n"
