"""The central store: one class over fsspec, addressed by URL.

``Store("file:///data/runyard")``, ``Store("memory://x")`` and
``Store("s3://bucket/prefix", client_kwargs={"endpoint_url": ...})`` all run the same code; the
URL picks the fsspec backend. Keys are ``/``-separated relative paths, validated by
:func:`safe_key` so that no user-supplied name can read or write outside the root.

Objects are written once (see tracking/README.md for the layout); the only objects a writer
replaces are its own "latest value" objects (heartbeat, per-writer summary), never read-modify-
written.
"""
from __future__ import annotations

import json
import os
import posixpath
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, TypeVar

if TYPE_CHECKING:  # fsspec is imported when a Store is built: a job script that only logs never pays
    import fsspec

from .errors import PathEscapeError, RecordNotFoundError, StoreError, StoreUnavailableError

T = TypeVar("T")

_FORBIDDEN_CHARS = {"\x00", "\\"}
MAX_KEY_PART = 255


def safe_key(*parts: str) -> str:
    """Join ``parts`` into a store key, refusing anything that could leave the root.

    Each part may itself contain ``/``. Refused: empty segments from absolute paths, ``.`` and
    ``..`` segments, backslashes, NUL and other control characters, segments over 255 bytes.

    Raises:
        PathEscapeError: with the offending name and what is allowed.
    """
    segments: list[str] = []
    for part in parts:
        if not isinstance(part, str):
            raise PathEscapeError(f"store key part must be a string, got {type(part).__name__}")
        if part.startswith("/"):
            raise PathEscapeError(
                f"{part!r} is an absolute path; use a relative name such as 'outputs/model.pkl'")
        for seg in part.split("/"):
            if seg == "":
                continue  # tolerate "a//b" and trailing "/"
            if seg in (".", ".."):
                raise PathEscapeError(
                    f"{part!r} contains a {seg!r} segment; names must stay inside the run "
                    "(use a plain relative name such as 'outputs/model.pkl')")
            if any(c in _FORBIDDEN_CHARS or ord(c) < 32 for c in seg):
                raise PathEscapeError(f"{part!r} contains a backslash or control character")
            if len(seg.encode()) > MAX_KEY_PART:
                raise PathEscapeError(f"name segment longer than {MAX_KEY_PART} bytes in {part!r}")
            segments.append(seg)
    if not segments:
        raise PathEscapeError("empty name; give a relative name such as 'outputs/model.pkl'")
    return "/".join(segments)


def _is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: connection problems, throttling, 5xx."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    markers = ("throttl", "slowdown", "slow down", "serviceunavailable", "service unavailable",
               "internalerror", "internal error", "connect", "timeout", "timed out",
               "reset by peer", "503", "500", "502", "504", "endpointconnection",
               "temporarily", "broken pipe")
    return any(m in text for m in markers)


class Store:
    """A runyard store rooted at an fsspec URL.

    Args:
        url: ``file:///abs/path``, a plain path, ``memory://name`` or ``s3://bucket/prefix``.
        retries: attempts for transient errors (exponential backoff with jitter).
        **storage_options: passed to fsspec (endpoint, credentials, region...). They are kept in
            memory only; runyard never writes them into the store.

    Raises:
        StoreUnavailableError: when the backend cannot be created (missing package, bad URL).
    """

    def __init__(self, url: str, *, retries: int = 3, backoff_s: float = 0.2,
                 **storage_options: Any):
        self.url = normalize_url(url)
        self.storage_options = dict(storage_options)
        self.retries = max(1, retries)
        self.backoff_s = backoff_s
        try:
            from fsspec.core import url_to_fs
            self.fs, root = url_to_fs(self.url, **_backend_defaults(self.url, self.storage_options))
        except ImportError as exc:
            hint = "pip install 'runyard[s3]'" if self.url.startswith("s3") else "install the fsspec backend"
            raise StoreUnavailableError(f"no fsspec backend for {self.url}: {exc}; {hint}",
                                        url=self.url) from exc
        except Exception as exc:  # noqa: BLE001 - translate any backend construction error
            raise StoreUnavailableError(f"cannot open store {self.url}: {exc}", url=self.url) from exc
        self.root = root.rstrip("/") or "/"
        self.is_local = "file" in _protocols(self.fs)
        if self.is_local:
            self.root = os.path.realpath(self.root)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # ------------------------------------------------------------------ paths
    def path(self, key: str) -> str:
        """Backend path of a (validated) key."""
        return posixpath.join(self.root, safe_key(key))

    def local_path(self, key: str) -> str | None:
        """Filesystem path for a file:// store (so readers like DuckDB can use it), else None."""
        return self.path(key) if self.is_local else None

    # --------------------------------------------------------------- retries
    def _call(self, what: str, key: str, fn: Callable[[], T]) -> T:
        delay = self.backoff_s
        for attempt in range(self.retries):
            try:
                return fn()
            except FileNotFoundError as exc:
                raise RecordNotFoundError(f"{key} not found in store {self.url}", url=self.url,
                                          key=key) from exc
            except (PermissionError, IsADirectoryError, NotADirectoryError) as exc:
                raise StoreUnavailableError(f"cannot {what} {key} in {self.url}: {exc}",
                                            url=self.url, key=key) from exc
            except Exception as exc:  # noqa: BLE001 - translated below
                if _is_transient(exc) and attempt + 1 < self.retries:
                    import random
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 5.0)
                    continue
                if _is_transient(exc) or isinstance(exc, OSError):
                    raise StoreUnavailableError(
                        f"store {self.url} unreachable while trying to {what} {key}: {exc}",
                        url=self.url, key=key) from exc
                raise StoreError(f"cannot {what} {key} in {self.url}: {exc}", url=self.url,
                                 key=key) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # ---------------------------------------------------------------- writes
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write an object whole. On a local store the write is atomic (temp file + rename)."""
        path = self.path(key)
        if self.is_local:
            self._call("write", key, lambda: _atomic_local_write(path, data))
        else:
            self._call("write", key, lambda: self.fs.pipe_file(path, data))

    def put_json(self, key: str, obj: Any) -> None:
        self.put_bytes(key, json.dumps(obj, default=str, allow_nan=True).encode())

    def put_file(self, key: str, local_path: str) -> None:
        """Upload a local file (streamed, not loaded into memory)."""
        path = self.path(key)
        if self.is_local:
            def copy() -> None:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = f"{path}.tmp-{os.urandom(4).hex()}"
                with open(local_path, "rb") as src, open(tmp, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                os.replace(tmp, path)
            self._call("upload", key, copy)
        else:
            self._call("upload", key, lambda: self.fs.put_file(local_path, path))

    def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            self._call("delete", key, lambda: self.fs.rm_file(path))
        except RecordNotFoundError:
            pass

    # ----------------------------------------------------------------- reads
    def get_bytes(self, key: str) -> bytes:
        path = self.path(key)
        return self._call("read", key, lambda: self.fs.cat_file(path))

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def get_file(self, key: str, local_path: str) -> None:
        path = self.path(key)
        os.makedirs(os.path.dirname(os.path.abspath(local_path)) or ".", exist_ok=True)
        self._call("download", key, lambda: self.fs.get_file(path, local_path))

    def exists(self, key: str) -> bool:
        path = self.path(key)
        return self._call("check", key, lambda: self.fs.exists(path))

    def list(self, prefix: str, *, recursive: bool = False) -> list[str]:
        """Names under ``prefix`` (relative to it), sorted; [] if the prefix does not exist."""
        base = self.path(prefix)
        try:
            if recursive:
                found = self._call("list", prefix, lambda: self.fs.find(base, withdirs=False))
            else:
                found = self._call("list", prefix, lambda: self.fs.ls(base, detail=False))
        except RecordNotFoundError:
            return []
        base_stripped = _strip_protocol(self.fs, base).rstrip("/")
        out = []
        for item in found:
            item = _strip_protocol(self.fs, item)
            if item.rstrip("/") == base_stripped:
                continue
            rel = item[len(base_stripped) + 1:] if item.startswith(base_stripped + "/") else posixpath.basename(item)
            if rel and ".tmp-" not in rel:
                out.append(rel.rstrip("/"))
        return sorted(out)

    def info_size(self, key: str) -> int:
        path = self.path(key)
        return int(self._call("stat", key, lambda: self.fs.size(path)) or 0)

    def open(self, key: str, mode: str = "rb"):
        """Open an object for streaming reads (``rb`` only)."""
        if "r" not in mode:
            raise ValueError("Store.open is for reading; use put_bytes/put_file to write")
        path = self.path(key)
        return self._call("open", key, lambda: self.fs.open(path, mode))

    def ping(self) -> None:
        """Check the store answers; raise StoreUnavailableError if not."""
        self._call("reach", "(root)", lambda: self.fs.exists(self.root))

    def keys_with_prefix(self, prefixes: Iterable[str]) -> dict[str, list[str]]:
        return {p: self.list(p) for p in prefixes}


def _backend_defaults(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """Options that make a backend behave as a shared store (not copied into job envs).

    s3: other processes write too, so no listing cache and no shared cached instance; bounded
    connect/read timeouts so an outage surfaces as an error our retry/spool logic handles.
    """
    if not url.startswith(("s3://", "s3a://")):
        return options
    merged = {"use_listings_cache": False, "skip_instance_cache": True, **options}
    config_kwargs = {"connect_timeout": 5, "read_timeout": 30,
                     "retries": {"total_max_attempts": 2, "mode": "standard"}}
    merged["config_kwargs"] = {**config_kwargs, **dict(options.get("config_kwargs") or {})}
    return merged


def normalize_url(url: str) -> str:
    """Plain paths become absolute ``file://`` URLs; other URLs are kept."""
    if "://" not in url:
        return "file://" + os.path.abspath(os.path.expanduser(url))
    if url.startswith("file://"):
        return "file://" + os.path.abspath(os.path.expanduser(url[len("file://"):]))
    return url.rstrip("/")


def _protocols(fs: "fsspec.AbstractFileSystem") -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def _strip_protocol(fs: "fsspec.AbstractFileSystem", path: str) -> str:
    return fs._strip_protocol(path)  # noqa: SLF001 - fsspec's documented normaliser


def _atomic_local_write(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp-{os.urandom(4).hex()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
