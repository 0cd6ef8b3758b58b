"""Reading snapshots back: manifests and content-addressed blobs (the write side is runner.snapshot).

Layout::

    blobs/sha256/<h[:2]>/<h>        file contents, stored once whatever the run
    snapshots/<snapshot_id>.json    {"files": [{"path", "sha256", "size", "mode"}], ...}

The snapshot id is the sha256 of the canonical manifest, so equal trees share an id.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass

from . import config
from .errors import RecordNotFoundError, SnapshotError
from .store import Store, safe_key


def blob_key(sha256: str) -> str:
    return f"blobs/sha256/{sha256[:2]}/{sha256}"


def manifest_key(snapshot_id: str) -> str:
    if not all(c in "0123456789abcdef" for c in snapshot_id) or len(snapshot_id) != 64:
        raise SnapshotError(f"{snapshot_id!r} is not a snapshot id (64 hex characters)")
    return f"snapshots/{snapshot_id}.json"


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    sha256: str
    size: int
    mode: int


def snapshot_id_of(entries: list[ManifestEntry]) -> str:
    canon = json.dumps([[e.path, e.sha256, e.mode] for e in sorted(entries, key=lambda e: e.path)],
                       separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


def read_manifest(store: Store, snapshot_id: str) -> list[ManifestEntry]:
    try:
        data = store.get_json(manifest_key(snapshot_id))
    except RecordNotFoundError:
        raise SnapshotError(f"snapshot {snapshot_id} not found in {store.url}") from None
    return [ManifestEntry(f["path"], f["sha256"], int(f["size"]), int(f["mode"])) for f in data["files"]]


def restore(store: Store, snapshot_id: str, destination: str, *, use_cache: bool = True) -> str:
    """Write the snapshot's tree into ``destination`` (byte-identical, file modes kept).

    Blobs are cached on this machine (``~/.cache/runyard/blobs``) so a second restore of the
    same files reads nothing from the store.
    """
    entries = read_manifest(store, snapshot_id)
    os.makedirs(destination, exist_ok=True)
    dest_root = os.path.realpath(destination)
    cache = config.cache_dir("blobs") if use_cache else None
    for entry in entries:
        target = os.path.join(dest_root, *safe_key(entry.path).split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if cache:
            cached = os.path.join(cache, entry.sha256)
            if not os.path.exists(cached):
                tmp = f"{cached}.tmp-{os.getpid()}"
                store.get_file(blob_key(entry.sha256), tmp)
                os.replace(tmp, cached)
            shutil.copyfile(cached, target)
        else:
            store.get_file(blob_key(entry.sha256), target)
        os.chmod(target, entry.mode & 0o7777)
    return destination
