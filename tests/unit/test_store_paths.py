"""No user-supplied name can make runyard read or write outside the store root."""
from __future__ import annotations

import os

import pytest

from runner import Experiment, Workspace
from tracking.errors import InvalidNameError, PathEscapeError, RecordNotFoundError
from tracking.store import Store, safe_key

EVIL = ["../../etc/x", "/abs", "a/../../b", "..", "a/./b", "a\\..\\b", "x\x00y"]


@pytest.mark.parametrize("name", EVIL)
def test_safe_key_refuses(name):
    with pytest.raises(PathEscapeError):
        safe_key(name)


def test_safe_key_normalises_plain_names():
    assert safe_key("runs", "a//b/", "c") == "runs/a/b/c"


def _all_files(root):
    return {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs}


def test_nothing_escapes_the_root(tmp_path):
    root = tmp_path / "store"
    ws = Workspace(store=str(root))
    src = tmp_path / "payload.txt"
    src.write_text("p")
    image = _png(tmp_path)
    before = _all_files(tmp_path) - _all_files(root)
    exp = Experiment(ws, "safe")
    run = exp.start_logging()
    for name in EVIL:
        run.log(name, 1.0) if "\x00" not in name else None  # metric names are data
        with pytest.raises(InvalidNameError):
            run.upload_file(name, str(src))
        with pytest.raises(InvalidNameError):
            run.download_file(name, str(tmp_path / "out"))
        with pytest.raises(InvalidNameError):
            Experiment(ws, name)
        with pytest.raises(InvalidNameError):
            ws.get_run(name)
    run.log_image("../../etc/evil", path=str(image))
    run.complete()
    created_outside = _all_files(tmp_path) - _all_files(root) - before
    assert created_outside == set()
    assert all(f.startswith(str(root)) for f in _all_files(root))
    assert not (tmp_path / "etc").exists() and not os.path.exists("/abs")


def _png(tmp_path):
    path = tmp_path / "img.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 10)
    return path


def test_download_files_ignores_hand_planted_escape(tmp_path):
    ws = Workspace(store=str(tmp_path / "store"))
    run = Experiment(ws, "e").start_logging()
    run.upload_file("ok.txt", _png(tmp_path))
    run.complete()
    out = tmp_path / "out"
    run.download_files(output_directory=str(out))
    assert sorted(os.listdir(out)) == ["ok.txt"]


def test_store_roundtrip_and_errors(tmp_path):
    store = Store(str(tmp_path / "s"))
    store.put_bytes("a/b.txt", b"1")
    store.put_json("a/c.json", {"x": 1})
    assert store.get_bytes("a/b.txt") == b"1"
    assert store.get_json("a/c.json") == {"x": 1}
    assert store.list("a") == ["b.txt", "c.json"]
    assert store.list("missing") == []
    with pytest.raises(RecordNotFoundError):
        store.get_bytes("a/nope")
    assert store.url == f"file://{tmp_path}/s"


def test_unknown_backend_is_a_clear_error():
    from tracking.errors import StoreUnavailableError
    with pytest.raises(StoreUnavailableError) as info:
        Store("nosuchproto://bucket/x")
    assert "nosuchproto" in str(info.value)
