"""Helpers of the UI tests: a live uvicorn server, stores with real runs, screenshots."""
from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Iterator

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.path.join(ROOT, "test-artifacts", "ui")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

class LiveServer:
    """uvicorn serving ``create_app(store, token)`` in a thread, on 127.0.0.1:<free port>."""

    def __init__(self, store: Any, token: str | None = None, warm: bool = False):
        import uvicorn

        from tracking.ui.server import create_app
        self.app = create_app(store, token=token, warm=warm)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the UI server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        """(status, headers, body) of a GET, without following the browser's rules."""
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def get_json(self, path: str, headers: dict | None = None) -> Any:
        status, _, body = self.get(path, headers)
        assert status == 200, (status, body[:500])
        return json.loads(body)

    def raw_get(self, raw_path: str, headers: dict | None = None) -> tuple[int, bytes]:
        """A GET whose path is sent byte for byte (``..`` segments are not normalised)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", raw_path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


@contextlib.contextmanager
def quiet_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNYARD_QUIET", "1")
        mp.setenv("RUNYARD_FLUSH_INTERVAL", "0.2")
        yield


def make_logging_run(exp: Any, folder: str) -> Any:
    """A run using every logging call of the seed's chart table, plus tags that need escaping."""
    run = exp.start_logging()
    run.log_list("Fibonacci", [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89])
    for i in range(-10, 10):
        run.log("Sigmoid", 1 / (1 + math.exp(-i)))
        angle = i / 2.0
        run.log_row("Cosine Wave", angle=angle, cos=math.cos(angle))
    run.log_table("Sine Wave", {"angle": [i / 2 for i in range(8)],
                                "sine": [math.sin(i / 2) for i in range(8)]})
    run.log_confusion_matrix("confusion", {"schema_type": "confusion_matrix", "schema_version": "1.0.0",
                                           "data": {"class_labels": ["cat", "dog"],
                                                    "matrix": [[5, 1], [2, 7]]}})
    run.log("learning rate", 0.01)
    run.log("<b>bold</b> metric", 1.5)
    png = os.path.join(folder, "tiny.png")
    _write_png(png)
    run.log_image("sample image", path=png)
    run.tag("danger", "<script>window.__pwned = 1</script>")
    run.tag("team", "vision")
    run.add_properties({"dataset": "diabetes"})
    run.upload_file("outputs/<notes>.txt", _write(os.path.join(folder, "notes.txt"), b"notes & more\n"))
    run.complete()
    return run


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _write_png(path: str) -> None:
    """A valid 2x2 PNG without any imaging library."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    _write(path, b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


SWEEP_TRIALS = [(0.1, "svd"), (0.5, "auto"), (0.9, "svd"), (0.3, "auto"), (0.7, "lsqr")]


def make_sweep(exp: Any) -> tuple[Any, list[Any]]:
    """A sweep parent in the sweep runner's shape: trials ranked by mse, one stopped early."""
    from tracking.run import Run
    parent = Run._create(exp, kind="sweep", extra={"hyperdrive": {
        "primary_metric_name": "mse", "primary_metric_goal": "MINIMIZE", "max_total_runs": 5,
        "policy": "BanditPolicy"}})
    trials = []
    for number, (alpha, solver) in enumerate(SWEEP_TRIALS):
        child = Run._create(exp, kind="child", parent=parent,
                            extra={"hyperparameters": {"alpha": alpha, "solver": solver},
                                   "trial_number": number})
        for step in range(4):
            child.log("mse", 3000 + 1000 * alpha - 10 * step)
        if number == 2:
            parent.log_row("early_termination", trial=child.id, interval=2, metric=3900.0,
                           threshold=3500.0, reason="outside the bandit slack")
            child.cancel()
        else:
            child.complete()
        trials.append(child)
    parent.complete()
    return parent, trials


def submit_seed_run(ws: Any, folder: str) -> Any:
    """The seed's second example, submitted for real on the local target."""
    from runner import Experiment, RunConfiguration, ScriptRunConfig

    from tests.support.projects import seed_project
    src_dir = seed_project(os.path.join(folder, "seed"))
    config = RunConfiguration()
    config.environment.python.user_managed_dependencies = True
    run = Experiment(ws, "train-on-local").submit(
        ScriptRunConfig(source_directory=src_dir, script="train.py", run_config=config))
    run.wait_for_completion(show_output=False, timeout=240)
    return run


def screenshot(tab: Any, name: str) -> str:
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, f"{name}.png")
    tab.screenshot(path=path, full_page=True)
    return path


def populate_runs(store: Any, experiment: str, count: int, *, threads: int = 8) -> list[str]:
    """``count`` finished runs written through the store layout API (no Run objects, so fast):
    a record, Running/Completed transitions, a tag and a metric summary each."""
    from concurrent.futures import ThreadPoolExecutor

    from tracking.records import RunRecords
    from tracking.status import RunStatus
    records = RunRecords(store)
    base = time.time() - 3600

    def one(i: int) -> str:
        run_id = f"{experiment}_{i:06d}"
        records.create_run({"run_id": run_id, "experiment": experiment, "created": base + i * 0.01,
                            "kind": "interactive", "parent_run_id": None, "target": "local",
                            "display_name": None, "tags": {"fold": str(i % 5)}, "properties": {}})
        records.write_status(run_id, RunStatus.RUNNING)
        records.write_status(run_id, RunStatus.FAILED if i % 10 == 0 else RunStatus.COMPLETED)
        store.put_json(records.run_key(run_id, "summary", "bulk.json"), {
            "mse": {"kind": "scalar", "count": 3, "last": (i * 7919 % count) / count, "min": 0.0,
                    "max": 1.0, "last_step": 2, "last_time": base + i},
            "epochs": {"kind": "scalar", "count": 1, "last": i % 50, "min": i % 50, "max": i % 50,
                       "last_step": None, "last_time": base + i}})
        return run_id
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))
