"""The store contract, as a mixin: each backend's suite is a two-line subclass.

Subclasses provide a ``store`` fixture returning a fresh, empty :class:`tracking.store.Store`.
"""
from __future__ import annotations

import pytest

from tracking.errors import PathEscapeError, RecordNotFoundError
from tracking.records import RunRecords
from tracking.status import RunStatus


class StoreContract:
    def test_bytes_roundtrip_and_overwrite(self, store):
        store.put_bytes("a/b.bin", b"\x00\x01")
        assert store.get_bytes("a/b.bin") == b"\x00\x01"
        store.put_bytes("a/b.bin", b"2")
        assert store.get_bytes("a/b.bin") == b"2"

    def test_json_and_exists(self, store):
        assert not store.exists("x.json")
        store.put_json("x.json", {"nan": float("nan"), "k": [1, 2]})
        assert store.exists("x.json") and store.get_json("x.json")["k"] == [1, 2]

    def test_listing_is_relative_sorted_and_hides_temp_files(self, store):
        for name in ("p/b", "p/a", "p/sub/c"):
            store.put_bytes(name, b"x")
        assert store.list("p") == ["a", "b", "sub"]
        assert store.list("p", recursive=True) == ["a", "b", "sub/c"]
        assert store.list("nothing-here") == []

    def test_missing_object_is_record_not_found(self, store):
        with pytest.raises(RecordNotFoundError):
            store.get_bytes("missing/object")

    def test_put_file_and_get_file(self, store, tmp_path):
        src = tmp_path / "in.bin"
        src.write_bytes(b"y" * 100_000)
        store.put_file("files/in.bin", str(src))
        store.get_file("files/in.bin", str(tmp_path / "out" / "copy.bin"))
        assert (tmp_path / "out" / "copy.bin").read_bytes() == src.read_bytes()
        assert store.info_size("files/in.bin") == 100_000

    def test_delete_is_idempotent(self, store):
        store.put_bytes("d/x", b"1")
        store.delete("d/x")
        store.delete("d/x")
        assert not store.exists("d/x")

    @pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../b"])
    def test_escaping_keys_are_refused(self, store, key):
        with pytest.raises(PathEscapeError):
            store.put_bytes(key, b"1")
        with pytest.raises(PathEscapeError):
            store.get_bytes(key)

    def test_status_transitions_are_separate_objects(self, store):
        records = RunRecords(store)
        records.create_run({"run_id": "r_1", "experiment": "e", "created": 1.0})
        for status in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.COMPLETED, RunStatus.FAILED):
            records.write_status("r_1", status)
        status, events = records.recorded_status("r_1")
        assert status is RunStatus.COMPLETED and len(events) == 4  # first terminal wins
        assert [e["run_id"] for e in records.list_experiment_runs("e")] == ["r_1"]
