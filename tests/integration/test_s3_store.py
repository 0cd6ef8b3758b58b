"""The same store class over s3fs against a real moto S3 server on 127.0.0.1."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from runner import Experiment, ScriptRunConfig, Workspace
from tracking.store import Store

from tests.contract.store_contract import StoreContract
from tests.support.projects import write_project
from tests.support.s3_server import SECRET_KEY, moto_s3

pytestmark = pytest.mark.s3
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def s3():
    with moto_s3() as server:
        yield server


class TestS3Store(StoreContract):
    @pytest.fixture
    def store(self, s3):
        return Store(s3.url, **s3.storage_options)


def test_seed_example_one_on_s3_read_from_another_process(s3, tmp_path):
    ws = Workspace(store=s3.url, **s3.storage_options)
    run = Experiment(ws, "train-in-notebook").start_logging()
    run.tag("Description", "My first run!")
    run.log("alpha", 0.03)
    run.log("mse", 3424.3)
    model = tmp_path / "model.pkl"
    model.write_bytes(b"model")
    run.upload_file(name="outputs/model.pkl", path_or_stream=str(model))
    run.complete()
    code = f"""
from runner import Workspace
ws = Workspace(store={s3.url!r}, **{s3.storage_options!r})
run = ws.get_run({run.id!r})
print(run.get_metrics(), run.get_file_names(), run.get_status())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{'alpha': 0.03, 'mse': 3424.3} ['outputs/model.pkl'] Completed"


def _all_objects(s3):
    fs = s3.filesystem()
    return {path: fs.cat_file(path) for path in fs.find(s3.bucket)}


def test_store_outage_loses_and_duplicates_nothing(s3, tmp_path, monkeypatch):
    """A job logs a point every 10 ms; S3 goes away for 10 s; every point lands exactly once."""
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    ws = Workspace(store=s3.url, **s3.storage_options)
    folder = write_project(tmp_path / "job", {"job.py": """
        import time
        from tracking import Run
        run = Run.get_context()
        for i in range(1500):
            run.log("tick", i)
            if i % 100 == 0:
                print("tick", i, flush=True)
            time.sleep(0.01)
    """})
    run = Experiment(ws, "outage").submit(ScriptRunConfig(source_directory=folder, script="job.py"))
    deadline = time.time() + 60
    while run.get_status() != "Running" and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)
    s3.stop()
    time.sleep(10)
    s3.start()
    details = run.wait_for_completion(timeout=180)
    assert details["status"] == "Completed"
    assert run.get_metrics()["tick"] == list(range(1500))
    assert "tick 1400" in run.get_log_text()
    leaked = [path for path, data in _all_objects(s3).items() if SECRET_KEY.encode() in data]
    assert leaked == []


def test_unreachable_store_is_a_clear_error_and_cli_exit_4(tmp_path):
    import socket
    from click.testing import CliRunner
    from runner.cli import main
    from tests.support.s3_server import require_s3
    from tracking.errors import StoreUnavailableError
    require_s3()
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = {"key": "k", "secret": "s", "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"}}
    ws = Workspace(store="s3://nowhere/x", **options)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        Experiment(ws, "e").start_logging()
    assert "s3://nowhere/x" in str(info.value) and time.monotonic() - started < 30
    env = {"RUNYARD_STORAGE_OPTIONS": __import__("json").dumps(options)}
    res = CliRunner().invoke(main, ["runs", "--store", "s3://nowhere/x"], env=env)
    assert res.exit_code == 4 and "unreachable" in res.output
