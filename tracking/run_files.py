"""File methods of Run: upload_file/files/folder, get_file_names, download_file(s)."""
from __future__ import annotations

import os
from typing import IO, Any

from .errors import RecordNotFoundError
from .names import check_file_name


class RunFiles:
    """Mixin: the run's files live under ``runs/<id>/files/`` in the store."""

    id: str

    def upload_file(self, name: str, path_or_stream: str | os.PathLike | IO[bytes],
                    datastore_name: str | None = None) -> str:
        """Upload a file (or a binary stream) as ``name``; returns the stored name.

        Raises:
            InvalidNameError: ``name`` is absolute or leaves the run (``..``).
            FileNotFoundError: no file at ``path_or_stream``.
        """
        name = check_file_name(name)
        key = self._records.file_key(self.id, name)
        if hasattr(path_or_stream, "read"):
            data = path_or_stream.read()
            self._store.put_bytes(key, data.encode() if isinstance(data, str) else data)
        else:
            path = os.fspath(path_or_stream)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"upload_file {name!r}: no file at {path!r}")
            self._store.put_file(key, path)
        return name

    def upload_files(self, names: list[str], paths: list[str], return_artifacts: bool = False,
                     timeout_seconds: float | None = None, datastore_name: str | None = None) -> list[str]:
        if len(names) != len(paths):
            raise ValueError(f"upload_files: {len(names)} names but {len(paths)} paths")
        for name in names:
            check_file_name(name)  # refuse the whole call before uploading anything
        return [self.upload_file(n, p) for n, p in zip(names, paths)]

    def upload_folder(self, name: str, path: str, datastore_name: str | None = None) -> list[str]:
        """Upload every regular file under ``path`` as ``name/<relative path>``.

        Symlinks are followed only when they stay inside ``path``.
        """
        root = os.path.realpath(path)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"upload_folder {name!r}: no folder at {path!r}")
        stored = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if _inside(root, os.path.join(folder, d))]
            for fname in sorted(files):
                full = os.path.join(folder, fname)
                if not _inside(root, full) or not os.path.isfile(full):
                    continue
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                stored.append(self.upload_file(f"{name.rstrip('/')}/{rel}", full))
        return stored

    def get_file_names(self) -> list[str]:
        return self._records.list_files(self.id)

    def download_file(self, name: str, output_file_path: str | None = None,
                      _validate_checksum: bool = False) -> str:
        """Download one file; ``output_file_path`` may be a file or a folder (default: cwd)."""
        name = check_file_name(name)
        target = output_file_path or os.path.basename(name)
        if os.path.isdir(target):
            target = os.path.join(target, os.path.basename(name))
        try:
            self._store.get_file(self._records.file_key(self.id, name), target)
        except RecordNotFoundError:
            raise RecordNotFoundError(
                f"run {self.id} has no file {name!r}; run.get_file_names() lists its files",
                url=self._store.url, key=name) from None
        return target

    def download_files(self, prefix: str | None = None, output_directory: str | None = None,
                       output_paths: list[str] | None = None, batch_size: int = 100,
                       append_prefix: bool = True, timeout_seconds: float | None = None) -> list[str]:
        """Download every file (under ``prefix``) into ``output_directory`` (default: cwd)."""
        out_dir = os.path.abspath(output_directory or os.getcwd())
        names = [n for n in self.get_file_names() if not prefix or n.startswith(prefix)]
        written = []
        for i, name in enumerate(names):
            check_file_name(name)  # a hand-edited store must not make us write outside out_dir
            rel = name if append_prefix or not prefix else name[len(prefix):].lstrip("/")
            target = output_paths[i] if output_paths else os.path.join(out_dir, rel)
            if not output_paths and not _inside(out_dir, target):
                continue
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            self._store.get_file(self._records.file_key(self.id, name), target)
            written.append(target)
        return written

    def _open_file(self, name: str) -> Any:
        return self._store.open(self._records.file_key(self.id, name))


def _inside(root: str, path: str) -> bool:
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)
