"""Fixtures of the UI tests: stores with real runs, a live uvicorn server, headless Chromium.

Servers bind 127.0.0.1 on a free port; Chromium is Debian's (``services.chromium_path()``),
never a downloaded one. Screenshots go to ``test-artifacts/ui/`` (gitignored) for a person to
look at.
"""
from __future__ import annotations

import os
from typing import Any

import pytest

from tests.support import services
from tests.ui.uihelpers import (CHROMIUM_ARGS, LiveServer, make_logging_run, make_sweep, quiet_env,
                                submit_seed_run)


@pytest.fixture
def live_server():
    """Factory: ``with live_server(store, token=...) as server: ...``."""
    return LiveServer


@pytest.fixture(scope="module")
def ui_data(tmp_path_factory) -> dict[str, Any]:
    """One store for a test module: the seed's submitted run, a run of every chart kind,
    a sweep, a failed run with error details."""
    from runner import Experiment, Workspace
    folder = str(tmp_path_factory.mktemp("ui-data"))
    with quiet_env(), pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNYARD_CACHE_DIR", os.path.join(folder, "cache"))
        ws = Workspace(store=f"file://{folder}/store")
        exp = Experiment(ws, "logging-api")
        seed = submit_seed_run(ws, folder)
        logging_run = make_logging_run(exp, folder)
        parent, trials = make_sweep(Experiment(ws, "sweeps"))
        failed = exp.start_logging()
        failed.log("loss", 1.0)
        failed.fail(error_details={"message": "division by <zero>",
                                   "traceback": "Traceback: <frame>\nZeroDivisionError"})
    return {"ws": ws, "store": ws.store, "seed": seed, "logging": logging_run, "sweep": parent,
            "trials": trials, "failed": failed}


@pytest.fixture(scope="session")
def chromium():
    """Debian's headless Chromium through Playwright (skips locally, fails in CI if missing)."""
    path = services.chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        services.require("playwright", f"the playwright package is missing ({exc})")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, request):
    """A fresh browser context per test; JS errors on the page fail the test."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.errors = errors
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
