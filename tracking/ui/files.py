"""Run files and snapshots for the UI: listing with sizes, safe opening, the snapshot as a zip.

Every name from a URL goes through :func:`tracking.records.check_run_id` and
:func:`tracking.names.check_file_name` (which is :func:`tracking.store.safe_key`) before the store
is touched, so ``../../etc/passwd`` is refused without reading anything.
"""
from __future__ import annotations

import mimetypes
import posixpath
import tempfile
import zipfile
from typing import IO, Iterator

from ..errors import InvalidNameError, RecordNotFoundError, SnapshotError
from ..names import check_file_name
from ..records import RunRecords, check_run_id
from ..snapshots import blob_key, read_manifest
from ..store import Store, safe_key

CHUNK = 1 << 20
# served inline (for <img>); every other type is a download, so an uploaded HTML or SVG file can
# never run script in the UI's origin
INLINE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                ".gif": "image/gif", ".webp": "image/webp", ".bmp": "image/bmp"}


class NotFound(Exception):
    """The requested run, file or snapshot does not exist (or the name is refused): HTTP 404."""


def list_run_files(records: RunRecords, run_id: str) -> list[tuple[str, int | None]]:
    """``(name, size)`` of every file of the run, sorted by name."""
    store = records.store
    prefix = records.run_key(run_id, "files")
    base = store.path(prefix)
    try:
        found = store._call("list", prefix, lambda: store.fs.find(base, withdirs=False, detail=True))  # noqa: SLF001
    except RecordNotFoundError:
        return []
    root = store.fs._strip_protocol(base).rstrip("/") + "/"  # noqa: SLF001
    out = []
    for path, info in found.items():
        path = store.fs._strip_protocol(path)  # noqa: SLF001
        if path.startswith(root) and ".tmp-" not in path:
            out.append((path[len(root):], info.get("size")))
    return sorted(out)


def run_file_key(records: RunRecords, run_id: str, name: str) -> str:
    """The store key of a run file named in a URL.

    Raises:
        NotFound: bad run id or name (anything :func:`safe_key` refuses), or no such file.
    """
    try:
        key = records.file_key(check_run_id(run_id), check_file_name(name))
    except InvalidNameError as exc:  # PathEscapeError is one
        raise NotFound(str(exc)) from None
    if not records.store.exists(key):
        raise NotFound(f"run {run_id} has no file {name!r}")
    return key


def content_headers(name: str, size: int | None) -> tuple[str, dict[str, str]]:
    """(media type, headers) for a download: images inline, everything else an attachment."""
    from urllib.parse import quote
    ext = posixpath.splitext(name)[1].lower()
    base = posixpath.basename(name) or "file"
    headers = {"X-Content-Type-Options": "nosniff"}
    if size is not None:
        headers["Content-Length"] = str(size)
    if ext in INLINE_TYPES:
        headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(base)}"
        return INLINE_TYPES[ext], headers
    headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(base)}"
    guessed = mimetypes.guess_type(base)[0] or "application/octet-stream"
    safe = guessed if guessed.startswith(("text/plain", "application/")) and "html" not in guessed \
        and "javascript" not in guessed and "xml" not in guessed else "application/octet-stream"
    return safe, headers


def iter_object(store: Store, key: str) -> Iterator[bytes]:
    with store.open(key) as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def snapshot_zip(store: Store, snapshot_id: str) -> IO[bytes]:
    """The snapshot's files as a zip in a spooled temp file (memory up to 32 MiB), rewound.

    Raises:
        NotFound: unknown snapshot id or missing blob.
    """
    try:
        entries = read_manifest(store, snapshot_id)
    except SnapshotError as exc:
        raise NotFound(str(exc)) from None
    out = tempfile.SpooledTemporaryFile(max_size=32 << 20)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            name = safe_key(entry.path)
            info = zipfile.ZipInfo(name)
            info.external_attr = (entry.mode & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            try:
                with store.open(blob_key(entry.sha256)) as src, archive.open(info, "w") as dst:
                    while chunk := src.read(CHUNK):
                        dst.write(chunk)
            except RecordNotFoundError:
                raise NotFound(f"snapshot {snapshot_id}: blob of {entry.path} is missing") from None
    out.seek(0)
    return out
