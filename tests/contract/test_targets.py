"""The target contract against the local and inline targets (Docker/Ray: tests/integration)."""
from __future__ import annotations

import pytest

from runner import Workspace
from targets.inline import InlineTarget

from .target_contract import TargetContract


@pytest.fixture
def target_ws(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RUNYARD_CANCEL_GRACE", "1")
    return Workspace(store=str(tmp_path / "store"))


class TestLocalTarget(TargetContract):
    @pytest.fixture
    def target(self):
        return "local"


class TestInlineTarget(TargetContract):
    @pytest.fixture
    def target(self):
        return InlineTarget()
