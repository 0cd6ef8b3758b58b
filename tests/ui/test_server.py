"""The UI server over HTTP (no browser): security rules, downloads, the JSON API."""
from __future__ import annotations

import io
import json
import zipfile

import pytest

from tracking.errors import ConfigurationError
from tracking.records import RunRecords
from tracking.store import Store

TOKEN = "t0k3n-for-tests"


class RecordingStore(Store):
    """A real file store that also remembers every key it was asked to read."""

    def __init__(self, url: str):
        super().__init__(url)
        self.read_keys: list[str] = []

    def get_bytes(self, key: str) -> bytes:
        self.read_keys.append(key)
        return super().get_bytes(key)

    def open(self, key: str, mode: str = "rb"):
        self.read_keys.append(key)
        return super().open(key, mode)

    def exists(self, key: str) -> bool:
        self.read_keys.append(key)
        return super().exists(key)

    def info_size(self, key: str) -> int:
        self.read_keys.append(key)
        return super().info_size(key)


@pytest.fixture
def small_store(tmp_path):
    """A store with one finished run holding a file, a tag that needs escaping and a log."""
    from runner import Experiment, Workspace
    ws = Workspace(store=f"file://{tmp_path}/store")
    run = Experiment(ws, "http").start_logging()
    for i in range(5):
        run.log("loss", 1.0 / (i + 1))
    run.tag("note", "<script>alert('x')</script>")
    (tmp_path / "model.bin").write_bytes(b"\x00model-bytes\xff" * 10)
    run.upload_file("outputs/model.bin", str(tmp_path / "model.bin"))
    RunRecords(ws.store).put_log_chunk(run.id, "driver", 0, b"line one <b>\n")
    RunRecords(ws.store).put_log_chunk(run.id, "driver", 1, b"line two\n")
    run.complete()
    return RecordingStore(f"file://{tmp_path}/store"), run.id


def test_non_loopback_bind_without_token_refuses_to_start(small_store):
    from tracking.ui.server import serve
    with pytest.raises(ConfigurationError, match="without a token"):
        serve(small_store[0], host="0.0.0.0", port=0)
    with pytest.raises(ConfigurationError):
        serve(small_store[0], host="192.168.1.20", port=0, token="")


def test_cli_ui_refuses_public_bind_without_token(small_store):
    from click.testing import CliRunner

    from runner.cli import main
    result = CliRunner().invoke(main, ["ui", "--store", small_store[0].url, "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert "token" in (result.output + str(result.exception or "")).lower()


@pytest.mark.parametrize("path", ["/", "/experiments/http", "/runs/{run}", "/api/runs/{run}/charts",
                                  "/runs/{run}/files/outputs/model.bin", "/static/app.js",
                                  "/static/plotly.min.js", "/api/experiments"])
def test_every_request_needs_the_token(small_store, live_server, path):
    store, run_id = small_store
    path = path.format(run=run_id)
    with live_server(store, token=TOKEN) as server:
        status, headers, _ = server.get(path)
        assert status == 401 and "Bearer" in headers.get("www-authenticate", "")
        assert server.get(path, {"Authorization": "Bearer wrong"})[0] == 401
        assert server.get(path, {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert server.get(path, {"X-Runyard-Token": TOKEN})[0] == 200
        sep = "&" if "?" in path else "?"
        status, headers, _ = server.get(f"{path}{sep}token={TOKEN}")
        cookie = headers.get("set-cookie", "")
        assert status == 200 and cookie.startswith("runyard_token=") and "HttpOnly" in cookie
        assert TOKEN not in cookie                      # the cookie holds a digest
        value = cookie.split(";", 1)[0]
        assert server.get(path, {"Cookie": value})[0] == 200
        assert server.get(path, {"Cookie": f"runyard_token={TOKEN}"})[0] == 401
        assert server.get(path, {"Cookie": "runyard_token=" + "0" * 64})[0] == 401


def test_loopback_server_refuses_foreign_host_header(small_store, live_server):
    with live_server(small_store[0]) as server:
        assert server.get("/", {"Host": "attacker.example:8765"})[0] == 403
        assert server.get("/", {"Host": f"localhost:{server.port}"})[0] == 200
        status, headers, _ = server.get("/")
        assert status == 200 and "script-src 'self'" in headers["content-security-policy"]


@pytest.mark.parametrize("raw", [
    "/runs/{run}/files/../../etc/passwd",
    "/runs/{run}/files/../../../../../../etc/passwd",
    "/runs/{run}/files/outputs/../../../../etc/passwd",
    "/runs/{run}/files/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/runs/{run}/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/runs/{run}/files//etc/passwd",
    "/runs/{run}/files/outputs%5C..%5C..%5Cetc%5Cpasswd",
    "/runs/..%2F..%2Fetc/files/passwd",
    "/runs/../../etc/passwd",
    "/static/../../../../etc/passwd",
    "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
])
def test_download_cannot_leave_the_store(small_store, live_server, raw):
    store, run_id = small_store
    with live_server(store) as server:
        store.read_keys.clear()
        status, body = server.raw_get(raw.format(run=run_id))
    assert status == 404
    assert b"root:" not in body
    assert not any("passwd" in key for key in store.read_keys), store.read_keys


def test_download_returns_the_stored_bytes(small_store, live_server):
    store, run_id = small_store
    with live_server(store) as server:
        status, headers, body = server.get(f"/runs/{run_id}/files/outputs/model.bin")
        assert status == 200 and body == b"\x00model-bytes\xff" * 10
        assert headers["content-disposition"].startswith("attachment")
        assert headers["x-content-type-options"] == "nosniff"
        assert server.get(f"/runs/{run_id}/files/outputs/missing.bin")[0] == 404
        assert server.get("/runs/no-such-run/files/x.txt")[0] == 404
        assert server.get("/runs/no-such-run")[0] == 404
        assert server.get(f"/runs/{run_id}/snapshot.zip")[0] == 404   # interactive: none


def test_pages_escape_user_strings(small_store, live_server):
    store, run_id = small_store
    with live_server(store) as server:
        for path in ("/experiments/http", f"/runs/{run_id}"):
            status, _, body = server.get(path)
            assert status == 200
            assert b"<script>alert(" not in body
            assert b"&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in body
        log = server.get_json(f"/api/runs/{run_id}/log")
        assert log["text"] == "line one <b>\nline two\n" and log["terminal"] and log["next"] == 2
        tail = server.get_json(f"/api/runs/{run_id}/log?tail=9")
        assert tail["text"] == "line two\n" and tail["skipped"] == 1


def test_api_shapes(small_store, live_server):
    store, run_id = small_store
    with live_server(store) as server:
        experiments = server.get_json("/api/experiments")["experiments"]
        assert experiments == [{"name": "http", "runs": 1, "created": experiments[0]["created"]}]
        runs = server.get_json("/api/experiments/http/runs")
        assert runs["total"] == 1 and runs["runs"][0]["metrics"]["loss"] == pytest.approx(0.2)
        assert runs["runs"][0]["status"] == "Completed"
        charts = server.get_json(f"/api/runs/{run_id}/charts")["charts"]
        assert charts[0]["y"] == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2])
        details = server.get_json(f"/api/runs/{run_id}")
        assert details["details"]["status"] == "Completed"
        assert details["files"] == [{"name": "outputs/model.bin", "size": 130}]
        status, _, body = server.get("/api/experiments/http/runs?metric=loss<abc")
        assert status == 400 and "not understood" in json.loads(body)["error"]
        assert server.get("/api/experiments/nope/runs")[0] == 404
        assert server.get("/experiments/http?sort=bogus")[0] == 200   # the page shows the error


def test_snapshot_zip_of_a_submitted_run(tmp_path, live_server):
    """A submitted run's snapshot downloads as a zip of the source files."""
    from runner import Experiment, ScriptRunConfig, Workspace
    from tests.support.projects import write_project
    ws = Workspace(store=f"file://{tmp_path}/store")
    folder = write_project(tmp_path / "src", {"job.py": "print('hi <there>')\n",
                                              "pkg/util.py": "X = 1\n"})
    run = Experiment(ws, "snap").submit(ScriptRunConfig(source_directory=folder, script="job.py"))
    run.wait_for_completion(timeout=120)
    with live_server(ws.store) as server:
        status, headers, body = server.get(f"/runs/{run.id}/snapshot.zip")
        log = server.get_json(f"/api/runs/{run.id}/log")
    assert status == 200 and headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.read("job.py") == b"print('hi <there>')\n"
        assert archive.read("pkg/util.py") == b"X = 1\n"
    assert "hi <there>" in log["text"]
