"""Shared fixtures: every test gets its own store root and a clean runyard environment."""
from __future__ import annotations

import os
import sys
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(autouse=True)
def _clean_runyard_env(monkeypatch, tmp_path):
    """No test sees the developer's RUNYARD_* settings or another test's run context."""
    for key in list(os.environ):
        if key.startswith("RUNYARD_") and not key.startswith("RUNYARD_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RUNYARD_QUIET", "1")
    monkeypatch.setenv("RUNYARD_FLUSH_INTERVAL", "0.2")
    from tracking.run import Run
    Run._context = None
    yield
    Run._context = None


@pytest.fixture
def memory_ws():
    from runner import Workspace
    return Workspace(store=f"memory://test-{uuid.uuid4().hex}")


@pytest.fixture
def file_ws(tmp_path):
    from runner import Workspace
    return Workspace(store=f"file://{tmp_path}/store")


@pytest.fixture(params=["memory", "file"])
def ws(request, tmp_path):
    """The same unit test against the memory:// and file:// stores."""
    from runner import Workspace
    if request.param == "memory":
        return Workspace(store=f"memory://test-{uuid.uuid4().hex}")
    return Workspace(store=f"file://{tmp_path}/store")


@pytest.fixture
def exp(ws):
    from runner import Experiment
    return Experiment(ws, "train-in-notebook")
