"""The store contract against memory:// and file:// (s3:// runs it in tests/integration)."""
from __future__ import annotations

import uuid

import pytest

from tracking.store import Store

from .store_contract import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self):
        return Store(f"memory://contract-{uuid.uuid4().hex}")


class TestFileStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        return Store(str(tmp_path / "store"))
