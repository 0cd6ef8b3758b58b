"""Content-addressed snapshots: ignore rules, secrets, symlinks, size limit, reuse, restore."""
from __future__ import annotations

import filecmp
import os
import stat

import pytest

from runner.snapshot import take_snapshot
from tracking.errors import SnapshotError
from tracking.snapshots import read_manifest, restore
from tracking.store import Store


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))


def _tree(root, files):
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return root


def _paths(store, snap):
    return sorted(e.path for e in read_manifest(store, snap.snapshot_id))


def test_default_exclusions_are_reported(tmp_path):
    src = _tree(tmp_path / "src", {"train.py": "x", ".env": "SECRET=1", ".git/HEAD": "ref",
                                   "key.pem": "k", "id_rsa": "k", ".aws/credentials": "c",
                                   "credentials.json": "c", "__pycache__/a.pyc": "c",
                                   "outputs/old.pkl": "o", "logs/x.log": "l", "sub/outputs/keep.txt": "k",
                                   ".venv/pyvenv.cfg": "v", "myenv/pyvenv.cfg": "v", ".runyard/x": "x"})
    store = Store(str(tmp_path / "store"))
    snap = take_snapshot(store, str(src))
    assert _paths(store, snap) == ["sub/outputs/keep.txt", "train.py"]
    report = snap.report()
    for name in (".env (likely secret)", ".git/ (version control)", "myenv/ (virtualenv)"):
        assert name in report


def test_ignore_file_precedence_and_nesting(tmp_path):
    src = _tree(tmp_path / "src", {
        ".gitignore": "*.csv\n", ".amlignore": "data/\n*.tmp\n!keep.tmp\n", "a.csv": "1",
        "data/big.bin": "b", "x.tmp": "t", "keep.tmp": "k", "train.py": "t",
        "sub/.gitignore": "local.txt\n", "sub/local.txt": "l", "sub/other.txt": "o"})
    store = Store(str(tmp_path / "store"))
    paths = _paths(store, take_snapshot(store, str(src)))
    # .amlignore wins over .gitignore at the top (a.csv kept); nested .gitignore honoured
    assert paths == [".gitignore", "a.csv", "keep.tmp", "sub/.gitignore", "sub/other.txt", "train.py"]


def test_symlink_leaving_the_folder_is_not_followed(tmp_path):
    src = _tree(tmp_path / "src", {"train.py": "x", "inner.txt": "i"})
    os.symlink("/etc", src / "etc")
    os.symlink("/etc/hostname", src / "host")
    os.symlink(src / "inner.txt", src / "alias.txt")
    store = Store(str(tmp_path / "store"))
    snap = take_snapshot(store, str(src))
    assert _paths(store, snap) == ["alias.txt", "inner.txt", "train.py"]
    assert "etc (symlink leaving the folder)" in snap.report()


def test_too_large_folder_is_refused_naming_largest_entries(tmp_path):
    src = _tree(tmp_path / "src", {"train.py": "x"})
    (src / "data").mkdir()
    with open(src / "data" / "huge.bin", "wb") as fh:  # sparse: no disk used
        fh.truncate(400 * 1024 * 1024)
    with pytest.raises(SnapshotError) as info:
        take_snapshot(Store(str(tmp_path / "store")), str(src))
    message = str(info.value)
    assert "400.0 MB" in message and "data/" in message and ".amlignore" in message


def test_unchanged_resubmission_uploads_nothing_and_restore_is_identical(tmp_path):
    files = {f"pkg/m{i}.py": f"x = {i}\n" * 10 for i in range(50)}
    src = _tree(tmp_path / "src", {**files, "run.sh": "#!/bin/sh\necho hi\n"})
    os.chmod(src / "run.sh", 0o755)
    store = Store(str(tmp_path / "store"))
    first = take_snapshot(store, str(src))
    assert first.uploaded_files == 51
    second = take_snapshot(store, str(src))
    assert second.snapshot_id == first.snapshot_id
    assert second.uploaded_bytes == 0 and second.reused
    (src / "pkg" / "m0.py").write_text("changed\n")
    third = take_snapshot(store, str(src))
    assert third.snapshot_id != first.snapshot_id and third.uploaded_files == 1
    out = tmp_path / "restored"
    restore(store, third.snapshot_id, str(out))
    cmp = filecmp.dircmp(src, out)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files
    assert stat.S_IMODE(os.stat(out / "run.sh").st_mode) == 0o755
    assert filecmp.cmp(src / "pkg" / "m0.py", out / "pkg" / "m0.py", shallow=False)


def test_missing_folder(tmp_path):
    with pytest.raises(SnapshotError, match="not a folder"):
        take_snapshot(Store(str(tmp_path / "store")), str(tmp_path / "nope"))


def test_start_logging_with_snapshot_directory(tmp_path, memory_ws):
    from runner import Experiment
    src = _tree(tmp_path / "src", {"nb.py": "print(1)"})
    run = Experiment(memory_ws, "nb").start_logging(snapshot_directory=str(src))
    run.complete()
    out = run.restore_snapshot(path=str(tmp_path / "back"))
    assert (tmp_path / "back" / "nb.py").read_text() == "print(1)" and out.endswith("back")


def test_many_files_use_shard_listings_and_upload_only_the_change(tmp_path):
    src = _tree(tmp_path / "src", {f"d{i % 7}/f{i}.txt": f"content {i}\n" for i in range(700)})
    store = Store(str(tmp_path / "store"))
    first = take_snapshot(store, str(src))
    assert first.uploaded_files == 700
    (src / "d0" / "f0.txt").write_text("new content\n")
    (src / "d1" / "new.txt").write_text("content 1\n")  # same bytes as d1/f1.txt: no upload
    second = take_snapshot(store, str(src))
    assert second.uploaded_files == 1 and second.files == 701
