"""Tracking across real processes: fresh readers, SIGKILL, many concurrent writers."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from runner import Experiment, Workspace
from tracking import Run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _python(code: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": ROOT, "RUNYARD_QUIET": "1"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_fresh_process_reads_seed_run(tmp_path):
    store = f"file://{tmp_path}/store"
    writer = _python(f"""
        from runner import Workspace, Experiment
        exp = Experiment(Workspace(store={store!r}), "train-in-notebook")
        run = exp.start_logging()
        run.tag("Description", "My first run!")
        run.log("alpha", 0.03)
        run.log("mse", 3424.3)
        open({str(tmp_path / 'model.pkl')!r}, "wb").write(b"m")
        run.upload_file(name="outputs/model.pkl", path_or_stream={str(tmp_path / 'model.pkl')!r})
        run.complete()
        print(run.id)
    """)
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    reader = _python(f"""
        from runner import Workspace, Experiment
        from tracking import Run
        exp = Experiment(Workspace(store={store!r}), "train-in-notebook")
        run = Run(exp, {out.strip()!r})
        print(run.get_metrics(), run.get_file_names(), run.get_status())
    """)
    text, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert text.strip() == "{'alpha': 0.03, 'mse': 3424.3} ['outputs/model.pkl'] Completed"


def test_sigkill_after_flush_interval_keeps_every_point(tmp_path):
    store = f"file://{tmp_path}/store"
    proc = _python(f"""
        import time, sys
        from runner import Workspace, Experiment
        run = Experiment(Workspace(store={store!r}), "kill").start_logging()
        for i in range(5000):
            run.log("x", float(i))
        print(run.id, flush=True)
        time.sleep(1.5)          # past the 0.2 s flush interval
        print("ready", flush=True)
        time.sleep(60)
    """)
    run_id = proc.stdout.readline().strip()
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    run = Workspace(store=store).get_run(run_id)
    assert run.get_metrics()["x"] == [float(i) for i in range(5000)]


def test_sixteen_processes_at_once_lose_nothing(tmp_path):
    store = f"file://{tmp_path}/store"
    shared = Experiment(Workspace(store=store), "many").start_logging()
    procs = [_python(f"""
        from runner import Workspace, Experiment
        from tracking import Run
        exp = Experiment(Workspace(store={store!r}), "many")
        own = exp.start_logging()
        shared = Run(exp, {shared.id!r})
        for i in range(2000):
            own.log("i", i)
            shared.log("p{n}", i)
            if i % 500 == 0:
                own.tag("progress", str(i))
        own.log_row("rows", worker={n}, done=1)
        shared.flush()
        own.complete()
        print(own.id)
    """) for n in range(16)]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        ids.append(out.strip())
    shared.complete()
    exp = Experiment(Workspace(store=store), "many")
    assert len(exp.get_runs()) == 17
    for run_id in ids:
        run = Run(exp, run_id)
        assert run.get_metrics()["i"] == list(range(2000))
        assert run.get_status() == "Completed" and run.get_tags()["progress"] == "1500"
    metrics = Run(exp, shared.id).get_metrics()
    assert sorted(metrics) == sorted(f"p{n}" for n in range(16))
    assert all(v == list(range(2000)) for v in metrics.values())


def test_pandas_and_duckdb_read_metrics_without_runyard(tmp_path):
    pd = pytest.importorskip("pandas")
    duckdb = pytest.importorskip("duckdb")
    ws = Workspace(store=str(tmp_path / "store"))
    run = Experiment(ws, "open").start_logging()
    for i in range(100):
        run.log("loss", 1.0 / (i + 1), step=i)
    run.complete()
    folder = tmp_path / "store" / "runs" / run.id / "metrics"
    frame = pd.read_parquet(folder)
    assert len(frame) == 100 and set(frame["name"]) == {"loss"}
    con = duckdb.connect()
    (n, last) = con.execute(
        f"select count(*), arg_max(value, step) from read_parquet('{folder}/*.parquet') "
        "where name = 'loss'").fetchone()
    assert n == 100 and last == pytest.approx(1 / 100)
