"""Benchmark the web UI against MLflow's server on the same data.

Measures time to first byte (TTFB) and time to a rendered page for

* the runs table of an experiment of ``--runs`` runs (default 10,000), and
* the chart of one metric of ``--points`` points (default 1,000,000), downsampled server-side
  (runyard keeps the min/max envelope; MLflow's UI endpoint samples steps),

and prints runyard's figures next to MLflow's with the ratio ``mlflow / runyard`` (> 1: runyard
is faster). Both servers run as separate processes on 127.0.0.1 (``python -m runner ui`` and
``mlflow server``) and answer the requests their own UIs make:

* runyard: ``GET /experiments/<name>`` (the page), ``GET /api/experiments/<name>/runs``,
  ``GET /api/runs/<id>/charts``;
* MLflow: ``POST /ajax-api/2.0/mlflow/runs/search`` (50 runs ordered by a metric, what its runs
  table asks for) and ``GET /ajax-api/2.0/mlflow/metrics/get-history-bulk-interval``.

MLflow holds the full data in its SQL store (sqlite, rows inserted in bulk with MLflow's own
ORM tables, because 10,000 ``create_run`` calls take minutes); its file store
(``MLFLOW_ALLOW_FILE_STORE=true``) is measured on ``--mlflow-file-runs`` runs (default 1,000:
each search reads every run's files), against a runyard experiment of the same size.

Rendered times use Debian's chromium through Playwright when available (``--no-browser`` to
skip); "warm browser" means plotly.js is already in the browser's cache, as for anyone who
opened the UI before.

Run: ``.venv/bin/python benchmarks/bench_ui.py [--runs 10000] [--points 1000000]``
(about 3-4 minutes on 2 cores; ``--quick`` for a 1,000-run / 100,000-point smoke run).
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
CHROMIUM = os.environ.get("RUNYARD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


# ------------------------------------------------------------------------------ HTTP timing
def timed(port: int, path: str, method: str = "GET", body: Any = None) -> tuple[float, float, int]:
    """(TTFB s, total s, bytes) of one request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    payload = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if payload else {}
    start = time.perf_counter()
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    first = time.perf_counter() - start
    data = response.read()
    total = time.perf_counter() - start
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: HTTP {response.status}: {data[:300]!r}")
    return first, total, len(data)


def median_of(port: int, path: str, repeat: int = 5, gap: float = 0.0, **kw: Any) -> float:
    """Median TTFB; ``gap`` seconds between requests (runyard re-checks the store at most
    once a second, so a gap of 1.1 s makes every request include that incremental refresh)."""
    samples = []
    for _ in range(repeat):
        samples.append(timed(port, path, **kw)[0])
        time.sleep(gap)
    return statistics.median(samples)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(cmd: list[str], port: int, health: str, env: dict | None = None,
                 timeout: float = 180) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            timed(port, health)
            return proc
        except (OSError, RuntimeError):
            time.sleep(0.25)
    proc.kill()
    raise RuntimeError(f"{' '.join(cmd)} did not answer on {port} in {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


# ------------------------------------------------------------------------------ data
def metric_value(i: int, n: int) -> float:
    return (i * 7919 % n) / n


def populate_runyard(store: Any, experiment: str, count: int) -> None:
    """``count`` finished runs, each with a tag and a two-metric summary, via the store layout."""
    from tracking.records import RunRecords
    from tracking.status import RunStatus
    records = RunRecords(store)
    base = time.time() - 7200

    def one(i: int) -> None:
        run_id = f"{experiment}_{i:06d}"
        records.create_run({"run_id": run_id, "experiment": experiment, "created": base + i * 0.01,
                            "kind": "interactive", "parent_run_id": None, "target": "local",
                            "display_name": f"run-{i:06d}", "tags": {"fold": str(i % 5)}})
        records.write_status(run_id, RunStatus.RUNNING)
        records.write_status(run_id, RunStatus.COMPLETED)
        store.put_json(records.run_key(run_id, "summary", "bench.json"), {
            "mse": {"kind": "scalar", "count": 3, "last": metric_value(i, count), "min": 0.0,
                    "max": 1.0, "last_step": 2, "last_time": base + i},
            "epochs": {"kind": "scalar", "count": 1, "last": i % 50, "min": i % 50,
                       "max": i % 50, "last_step": None, "last_time": base + i}})
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(count)))


def runyard_points(store: Any, points: int) -> str:
    from tracking.run import Run, _ExperimentRef
    run = Run._create(_ExperimentRef("points", store))
    for i in range(points):
        run.log("loss", math.sin(i / 5000) + (50.0 if i == points * 7 // 9 else 0.0), step=i)
    run.complete()
    return run.id


def populate_mlflow_sql(uri: str, artifacts: str, count: int, points: int) -> tuple[str, str]:
    """Bulk-insert runs and one long series into MLflow's own SQL tables (its ORM models)."""
    from mlflow.store.tracking.dbmodels.models import (SqlLatestMetric, SqlMetric, SqlRun,
                                                       SqlTag)
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    store = SqlAlchemyStore(uri, artifacts)
    exp_id = store.create_experiment("big")
    now = int(time.time() * 1000)
    runs, tags, metrics = [], [], []
    for i in range(count + 1):
        rid = uuid.uuid4().hex
        runs.append({"run_uuid": rid, "name": f"run-{i:06d}", "experiment_id": int(exp_id),
                     "user_id": "bench", "status": "FINISHED", "start_time": now - 7_200_000 + i * 10,
                     "end_time": now, "lifecycle_stage": "active", "source_type": "LOCAL",
                     "source_name": "", "entry_point_name": "", "source_version": "",
                     "artifact_uri": f"{artifacts}/{rid}"})
        # the tags create_run sets (MLflow's UI needs them), plus our own
        tags += [{"key": "mlflow.runName", "value": f"run-{i:06d}", "run_uuid": rid},
                 {"key": "mlflow.user", "value": "bench", "run_uuid": rid}]
        if i < count:
            tags.append({"key": "fold", "value": str(i % 5), "run_uuid": rid})
            for key, value, step in (("mse", metric_value(i, count), 2), ("epochs", i % 50, 0)):
                metrics.append({"key": key, "value": float(value), "timestamp": now, "step": step,
                                "is_nan": False, "run_uuid": rid})
    long_run = runs[-1]["run_uuid"]
    with store.ManagedSessionMaker() as session:
        session.execute(SqlRun.__table__.insert(), runs)
        session.execute(SqlTag.__table__.insert(), tags)
        session.execute(SqlMetric.__table__.insert(), metrics)
        session.execute(SqlLatestMetric.__table__.insert(), metrics)
    for start in range(0, points, 100_000):
        rows = [{"key": "loss", "value": math.sin(i / 5000) + (50.0 if i == points * 7 // 9 else 0.0),
                 "timestamp": now, "step": i, "is_nan": False, "run_uuid": long_run}
                for i in range(start, min(points, start + 100_000))]
        with store.ManagedSessionMaker() as session:
            session.execute(SqlMetric.__table__.insert(), rows)
    with store.ManagedSessionMaker() as session:
        session.execute(SqlLatestMetric.__table__.insert(), [{**rows[-1]}])
    store.engine.dispose()
    return exp_id, long_run


def populate_mlflow_files(root: str, count: int) -> str:
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.entities import Metric, RunTag
    from mlflow.store.tracking.file_store import FileStore
    store = FileStore(root)
    exp_id = store.create_experiment("small")
    for i in range(count):
        run = store.create_run(exp_id, user_id="bench", start_time=i, tags=[RunTag("fold", str(i % 5))],
                               run_name=f"run-{i:06d}")
        store.log_batch(run.info.run_id, metrics=[Metric("mse", metric_value(i, count), 0, 2),
                                                  Metric("epochs", i % 50, 0, 0)], params=[], tags=[])
        store.update_run_info(run.info.run_id, run_status=3, end_time=i + 1, run_name=None)
    return exp_id


# ------------------------------------------------------------------------------ browser
def browser_times(jobs: list[tuple[str, str, str]]) -> dict[str, tuple[float | None, float | None]]:
    """{label: (cold-browser s, warm-browser s)} of loading ``url`` until ``selector`` shows."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {}
    if not os.path.exists(CHROMIUM):
        return {}
    out: dict[str, tuple[float | None, float | None]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for label, url, selector in jobs:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            times: list[float | None] = []
            for _ in range(2):
                start = time.perf_counter()
                try:
                    page.goto(url, wait_until="commit")
                    page.wait_for_selector(selector, timeout=60_000)
                    times.append(time.perf_counter() - start)
                except Exception:  # noqa: BLE001 - a page that never renders is reported as n/a
                    times.append(None)
                page.goto("about:blank")
            out[label] = (times[0], times[1])
            context.close()
        browser.close()
    return out


# ------------------------------------------------------------------------------ report
def fmt(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:9.1f} ms"


def report(rows: list[tuple[str, float | None, float | None, str]]) -> None:
    print(f"\n{'measure':58s} {'runyard':>12s} {'mlflow':>12s}  ratio mlflow/runyard")
    for label, ours, theirs, peer in rows:
        ratio = f"{theirs / ours:7.1f}x" if ours and theirs else "    n/a"
        print(f"{label:58s} {fmt(ours):>12s} {fmt(theirs):>12s}  {ratio}  {peer}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--mlflow-file-runs", type=int, default=1_000)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1,000 runs, 100,000 points")
    parser.add_argument("--keep", action="store_true", help="keep the temporary stores")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.points, args.mlflow_file_runs = 1_000, 100_000, 300
    os.environ.setdefault("RUNYARD_QUIET", "1")
    from tracking.store import Store
    work = tempfile.mkdtemp(prefix="bench-ui-")
    procs: list[subprocess.Popen] = []
    rows: list[tuple[str, float | None, float | None, str]] = []
    try:
        t0 = time.perf_counter()
        store = Store(f"file://{work}/runyard")
        populate_runyard(store, "big", args.runs)
        populate_runyard(store, "small", args.mlflow_file_runs)
        long_run = runyard_points(store, args.points)
        print(f"runyard data: {args.runs} + {args.mlflow_file_runs} runs, {args.points} points "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)
        port = free_port()
        started = time.perf_counter()
        procs.append(start_server([sys.executable, "-m", "runner", "ui", "--store", store.url,
                                   "--port", str(port)], port, "/static/style.css"))
        cold_table = timed(port, "/experiments/big")[0]   # waits for the startup index build
        print(f"runyard ui up, first runs table (index of {args.runs} runs built) "
              f"{time.perf_counter() - started:.1f} s after start", flush=True)
        ours = {
            "table": median_of(port, "/experiments/big?sort=metric:mse&order=asc", gap=1.1),
            "api": median_of(port, "/api/experiments/big/runs?sort=metric:mse&order=asc", gap=1.1),
            "small": median_of(port, "/api/experiments/small/runs?sort=metric:mse&order=asc", gap=1.1),
            "chart_cold": timed(port, f"/api/runs/{long_run}/charts")[0],
        }
        ours["chart"] = median_of(port, f"/api/runs/{long_run}/charts")
        chart = json.loads(_body(port, f"/api/runs/{long_run}/charts"))["charts"][0]
        envelope = max(chart["y"]) > 40
        browser = {} if args.no_browser else browser_times([
            ("table", f"http://127.0.0.1:{port}/experiments/big?sort=metric:mse", "#runs tbody tr"),
            ("chart", f"http://127.0.0.1:{port}/runs/{long_run}", "#charts[data-loaded='1']")])
        theirs: dict[str, Any] = {}
        if not args.no_mlflow:
            theirs = measure_mlflow(work, args, procs)
        n, p = f"{args.runs:,}", f"{args.points:,}"
        rows += [(f"runs table {n} runs: page TTFB, first after start", cold_table,
                  theirs.get("search_cold"), "sqlite runs/search, first"),
                 (f"runs table {n} runs: page TTFB (warm)", ours["table"], theirs.get("search"),
                  "sqlite runs/search"),
                 (f"runs table {n} runs: JSON API TTFB", ours["api"], theirs.get("search"),
                  "sqlite runs/search"),
                 (f"runs table {args.mlflow_file_runs:,} runs: JSON API TTFB", ours["small"],
                  theirs.get("file_search"), "file store runs/search")]
        if browser:
            rows += [(f"runs table {n} runs rendered, cold browser", browser["table"][0],
                      theirs.get("ui_table", (None, None))[0], "MLflow UI runs view"),
                     (f"runs table {n} runs rendered, warm browser", browser["table"][1],
                      theirs.get("ui_table", (None, None))[1], "MLflow UI runs view")]
        rows += [(f"chart {p} points: data TTFB, first read", ours["chart_cold"],
                  theirs.get("history_cold"), "sqlite get-history-bulk-interval"),
                 (f"chart {p} points: data TTFB (warm)", ours["chart"], theirs.get("history"),
                  "sqlite get-history-bulk-interval")]
        if browser:
            rows += [(f"chart {p} points rendered, cold browser", browser["chart"][0], None, ""),
                     (f"chart {p} points rendered, warm browser", browser["chart"][1], None, "")]
        report(rows)
        print(f"\nrunyard chart: {len(chart['y'])} of {chart['total']:,} points, spike kept by "
              f"the min/max envelope: {envelope}; MLflow's interval sampling kept it: "
              f"{theirs.get('spike_kept', 'n/a')}")
        print(f"total benchmark time {time.perf_counter() - t0:.0f} s")
        return 0
    finally:
        for proc in procs:
            stop(proc)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _body(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", path)
    data = conn.getresponse().read()
    conn.close()
    return data


def measure_mlflow(work: str, args: argparse.Namespace, procs: list) -> dict[str, Any]:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        print("mlflow not installed: pip install -e '.[bench]'")
        return {}
    out: dict[str, Any] = {}
    env = {"MLFLOW_ALLOW_FILE_STORE": "true"}
    t0 = time.perf_counter()
    uri = f"sqlite:///{work}/mlflow.db"
    exp_id, long_run = populate_mlflow_sql(uri, f"{work}/mlflow-artifacts", args.runs, args.points)
    file_exp = populate_mlflow_files(f"{work}/mlruns", args.mlflow_file_runs)
    print(f"mlflow data: {time.perf_counter() - t0:.1f} s", flush=True)
    search = {"experiment_ids": [exp_id], "max_results": 50, "order_by": ["metrics.mse ASC"],
              "run_view_type": "ACTIVE_ONLY"}
    history = (f"/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval?run_ids={long_run}"
               "&metric_key=loss&max_results=320")
    for backend, key in ((uri, "sql"), (f"{work}/mlruns", "file")):
        port = free_port()
        proc = start_server([os.path.join(os.path.dirname(sys.executable), "mlflow"), "server",
                             "--backend-store-uri", backend, "--default-artifact-root",
                             f"{work}/mlflow-artifacts", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], port, "/health", env=env, timeout=300)
        procs.append(proc)
        if key == "sql":
            out["search_cold"] = timed(port, "/ajax-api/2.0/mlflow/runs/search", "POST", search)[0]
            out["search"] = median_of(port, "/ajax-api/2.0/mlflow/runs/search", method="POST", body=search)
            out["history_cold"] = timed(port, history)[0]
            out["history"] = median_of(port, history)
            sampled = json.loads(_body(port, history)).get("metrics", [])
            out["spike_kept"] = any(m.get("value", 0) > 40 for m in sampled)
            if not args.no_browser:
                ui = browser_times([("table", f"http://127.0.0.1:{port}/#/experiments/{exp_id}/runs",
                                     "text=/run-\\d{6}/")])
                out["ui_table"] = ui.get("table", (None, None))
        else:
            body = {**search, "experiment_ids": [file_exp]}
            out["file_search"] = median_of(port, "/ajax-api/2.0/mlflow/runs/search", repeat=3,
                                           method="POST", body=body)
        stop(proc)
        procs.remove(proc)
    return out


if __name__ == "__main__":
    sys.exit(main())
