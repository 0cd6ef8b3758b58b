"""Content-addressed snapshots of a source folder.

``take_snapshot(store, folder)`` hashes every file that the ignore rules keep, uploads only the
blobs the store does not hold, and writes the manifest last (so a manifest in the store means all
its blobs are there). Rules, in order:

* ignore file per folder: ``.amlignore``, else ``.runyardignore``, else ``.gitignore``
  (gitignore semantics, nested files honoured);
* excluded by default and reported: ``.git``, virtualenvs, ``__pycache__``,
  ``.ipynb_checkpoints``, top-level ``outputs/``, ``logs/``, ``.runyard/``, and likely secrets
  (``.env``, ``*.pem``, ``id_rsa*``, ``.aws/``, ``credentials*``);
* symlinks are followed only when they resolve inside the folder;
* a size limit (300 MB, ``RUNYARD_SNAPSHOT_LIMIT_MB``) whose error names the largest entries.

A hash cache keyed on (path, size, mtime, inode) avoids re-reading unchanged files.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass, field

import pathspec

from tracking import config
from tracking.errors import SnapshotError
from tracking.snapshots import ManifestEntry, blob_key, manifest_key, snapshot_id_of
from tracking.store import Store

IGNORE_FILES = (".amlignore", ".runyardignore", ".gitignore")
_DEFAULT_DIRS = {".git": "version control", "__pycache__": "bytecode cache",
                 ".ipynb_checkpoints": "notebook checkpoints", ".runyard": "runyard store/config",
                 ".aws": "likely secrets", ".venv": "virtualenv", "venv": "virtualenv",
                 ".tox": "virtualenv", ".mypy_cache": "cache", ".pytest_cache": "cache"}
_TOP_LEVEL_DIRS = {"outputs": "run outputs (uploaded after the run)", "logs": "run logs"}
_SECRET_PATTERNS = (".env", ".env.*", "*.pem", "id_rsa*", "credentials*", "*.key")


@dataclass
class SnapshotResult:
    snapshot_id: str
    files: int
    total_bytes: int
    uploaded_bytes: int
    uploaded_files: int
    excluded: list[tuple[str, str]] = field(default_factory=list)
    largest: list[tuple[str, int]] = field(default_factory=list)
    seconds: float = 0.0
    reused: bool = False

    def report(self) -> str:
        lines = [f"snapshot {self.snapshot_id[:12]}: {self.files} files, {_mb(self.total_bytes)}, "
                 f"uploaded {self.uploaded_files} new blob(s) ({_mb(self.uploaded_bytes)}) "
                 f"in {self.seconds:.2f} s"]
        if self.excluded:
            shown = ", ".join(f"{p} ({why})" for p, why in self.excluded[:20])
            more = f" and {len(self.excluded) - 20} more" if len(self.excluded) > 20 else ""
            lines.append(f"  not in the snapshot: {shown}{more}")
        return "\n".join(lines)


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


class _IgnoreRules:
    """Stack of per-folder ignore specs plus the default exclusions."""

    def __init__(self, root: str):
        self.root = root
        self.specs: dict[str, pathspec.PathSpec] = {}

    def load(self, rel_dir: str, abs_dir: str) -> None:
        for name in IGNORE_FILES:
            path = os.path.join(abs_dir, name)
            if os.path.isfile(path):
                with open(path, encoding="utf-8", errors="replace") as fh:
                    self.specs[rel_dir] = pathspec.GitIgnoreSpec.from_lines(fh.read().splitlines())
                return

    def ignored(self, rel: str, is_dir: bool) -> bool:
        for base, spec in self.specs.items():
            if base and not rel.startswith(base + "/"):
                continue
            sub = rel[len(base) + 1:] if base else rel
            if spec.match_file(sub + ("/" if is_dir else "")):
                return True
        return False

    @staticmethod
    def default_reason(rel: str, name: str, abs_path: str, is_dir: bool) -> str | None:
        if is_dir:
            if name in _DEFAULT_DIRS:
                return _DEFAULT_DIRS[name]
            if "/" not in rel and name in _TOP_LEVEL_DIRS:
                return _TOP_LEVEL_DIRS[name]
            if os.path.isfile(os.path.join(abs_path, "pyvenv.cfg")):
                return "virtualenv"
            return None
        if any(fnmatch.fnmatch(name, p) for p in _SECRET_PATTERNS):
            return "likely secret"
        return None


def _walk(root: str, excluded: list[tuple[str, str]]):
    """Yield (rel_path, abs_path, stat) of every file the rules keep."""
    rules = _IgnoreRules(root)
    stack = [("", root)]
    while stack:
        rel_dir, abs_dir = stack.pop()
        rules.load(rel_dir, abs_dir)
        try:
            entries = sorted(os.scandir(abs_dir), key=lambda e: e.name)
        except OSError as exc:
            raise SnapshotError(f"cannot read {abs_dir}: {exc}") from None
        for entry in entries:
            if entry.name in IGNORE_FILES[:2]:
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.is_symlink():
                real = os.path.realpath(entry.path)
                if not (real == root or real.startswith(root + os.sep)):
                    excluded.append((rel, "symlink leaving the folder"))
                    continue
                if os.path.isdir(real):
                    excluded.append((rel, "symlinked folder not followed"))
                    continue
            is_dir = entry.is_dir(follow_symlinks=False)
            reason = rules.default_reason(rel, entry.name, entry.path, is_dir)
            if reason:
                excluded.append((rel + ("/" if is_dir else ""), reason))
                continue
            if rules.ignored(rel, is_dir):
                continue
            if is_dir:
                stack.append((rel, entry.path))
            elif entry.is_file():
                yield rel, entry.path, entry.stat()


class _HashCache:
    """sha256 per file, reused while (size, mtime_ns, inode) are unchanged."""

    def __init__(self, root: str):
        key = hashlib.sha256(root.encode()).hexdigest()[:16]
        self.path = os.path.join(config.cache_dir("hashcache"), f"{key}.json")
        try:
            with open(self.path) as fh:
                self.data = json.load(fh)
        except (OSError, ValueError):
            self.data = {}
        self.dirty = False

    def sha256(self, rel: str, path: str, st: os.stat_result) -> str:
        sig = [st.st_size, st.st_mtime_ns, st.st_ino]
        hit = self.data.get(rel)
        if hit and hit[:3] == sig:
            return hit[3]
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        self.data[rel] = [*sig, digest.hexdigest()]
        self.dirty = True
        return digest.hexdigest()

    def save(self) -> None:
        if self.dirty:
            tmp = f"{self.path}.tmp-{os.getpid()}"
            with open(tmp, "w") as fh:
                json.dump(self.data, fh)
            os.replace(tmp, self.path)


def take_snapshot(store: Store, source_directory: str, *, limit_mb: float | None = None,
                  verbose: bool = False) -> SnapshotResult:
    """Snapshot ``source_directory`` into ``store``.

    Raises:
        SnapshotError: the folder is missing, or larger than the limit (the message names the
            largest entries and the ignore file to edit).
    """
    started = time.perf_counter()
    root = os.path.realpath(source_directory)
    if not os.path.isdir(root):
        raise SnapshotError(f"source_directory {source_directory!r} is not a folder")
    excluded: list[tuple[str, str]] = []
    files = list(_walk(root, excluded))
    total = sum(st.st_size for _, _, st in files)
    largest = sorted(((rel, st.st_size) for rel, _, st in files), key=lambda x: -x[1])[:5]
    limit = config.snapshot_limit_bytes(limit_mb)
    if total > limit:
        raise SnapshotError(_too_large_message(root, total, limit, files))
    cache = _HashCache(root)
    entries = [ManifestEntry(rel, cache.sha256(rel, path, st), st.st_size, stat.S_IMODE(st.st_mode))
               for rel, path, st in files]
    cache.save()
    snapshot_id = snapshot_id_of(entries)
    result = SnapshotResult(snapshot_id, len(entries), total, 0, 0, excluded, largest)
    if store.exists(manifest_key(snapshot_id)):
        result.reused = True
    else:
        paths = {rel: path for rel, path, _ in files}
        for entry in _missing_blobs(store, entries):
            store.put_file(blob_key(entry.sha256), paths[entry.path])
            result.uploaded_files += 1
            result.uploaded_bytes += entry.size
        store.put_json(manifest_key(snapshot_id), {
            "files": [e.__dict__ for e in entries], "created": time.time(),
            "source": os.path.basename(root)})
    result.seconds = time.perf_counter() - started
    return result


def _missing_blobs(store: Store, entries: list[ManifestEntry]) -> list[ManifestEntry]:
    """Entries whose blob the store lacks, one per distinct content.

    Few files: one existence check each. Many files: list the (at most 256) shard folders the
    hashes fall in instead, so a 5,000-file folder costs ~256 listings on S3, not 5,000 HEADs.
    """
    unique = list({e.sha256: e for e in entries}.values())
    shards = sorted({e.sha256[:2] for e in unique})
    if len(unique) <= 2 * len(shards):
        return [e for e in unique if not store.exists(blob_key(e.sha256))]
    present: set[str] = set()
    for shard in shards:
        present.update(store.list(f"blobs/sha256/{shard}"))
    return [e for e in unique if e.sha256 not in present]


def _too_large_message(root: str, total: int, limit: int, files: list) -> str:
    by_top: dict[str, int] = {}
    for rel, _, st in files:
        top = rel.split("/", 1)[0] + ("/" if "/" in rel else "")
        by_top[top] = by_top.get(top, 0) + st.st_size
    biggest = sorted(by_top.items(), key=lambda x: -x[1])[:5]
    listing = "\n".join(f"  {_mb(size):>10}  {name}" for name, size in biggest)
    return (f"source folder {root} is {_mb(total)}, over the snapshot limit of {_mb(limit)}.\n"
            f"Largest entries:\n{listing}\n"
            f"Exclude data and models in {os.path.join(root, '.amlignore')} (or .runyardignore / "
            ".gitignore; gitignore syntax), put them in ./outputs or a datastore, or raise the "
            f"limit with {config.ENV_SNAPSHOT_LIMIT_MB}.")
