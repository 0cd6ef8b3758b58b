"""Metric logging: runyard's ``run.log`` against ``mlflow.log_metric`` (file store), same run.

Measures, each in a fresh worker process, interleaved so machine noise hits both sides:

(a) calls/s: ``run.log`` for ``--points`` scalar floats (median of ``--reps`` runs) against
    ``mlflow.log_metric`` for ``--budget-seconds`` (as many points as it manages) in three modes:
    synchronous, async with default settings (one store call per point), and async with
    ``MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1`` (batched). Plus ``run.log`` over the same
    budget, where the background flush competes with the logging loop for the GIL.
(b) seconds from the last ``run.log`` call until all points are readable from ANOTHER process
    (a poller calling ``get_metrics`` every 20 ms); no explicit ``flush()``: the background
    flush (``RUNYARD_FLUSH_INTERVAL``, default 1 s) delivers them.
(c) reading a series back: ``Run(exp, id).get_metrics(name=...)`` of the ``--points`` metric after
    ``complete()`` against ``MlflowClient().get_metric_history`` of the largest series MLflow
    wrote within the budget, per point, and runyard on that same size.

    .venv/bin/python benchmarks/bench_logging.py [--points 1000000] [--budget-seconds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import (REPO_ROOT, median, print_summary, rate, ratio, scratch_dir, secs,
                     section)

COMMAND = ".venv/bin/python benchmarks/bench_logging.py"
METRIC = "x"
POLL_INTERVAL = 0.02
MLFLOW_MODES = {  # name: (label, extra environment)
    "sync": ("sync", {}),
    "async": ("async, default settings", {}),
    "async-buffered": ("async, MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1",
                       {"MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1"}),
}
RESULT_PREFIX = "RESULT "


def _store_url(tmp: str) -> str:
    return f"file://{os.path.join(tmp, 'store')}"


def _emit(result: dict) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def _series_len(metrics: dict) -> int:
    value = metrics.get(METRIC)
    return len(value) if isinstance(value, list) else (0 if value is None else 1)


def _timed_reads(read, expected: int, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        got = read()
        times.append(time.perf_counter() - started)
        if got != expected:
            raise RuntimeError(f"read back {got} points, expected {expected}")
    return median(times)


# ------------------------------------------------------------------------------ workers
def worker_poll(args: argparse.Namespace) -> None:
    """Another process: after "go" on stdin, poll get_metrics until every point is there."""
    from runner import Experiment, Workspace
    from tracking import Run
    reader = Run(Experiment(Workspace(store=_store_url(args.tmp)), "bench-logging"), args.run_id)
    print("ready", flush=True)
    sys.stdin.readline()
    polls, deadline = 0, time.monotonic() + 120
    while time.monotonic() < deadline:
        polls += 1
        count = _series_len(reader.get_metrics(name=METRIC))
        if count >= args.points:
            _emit({"visible_at": time.monotonic(), "polls": polls, "count": count})
            return
        time.sleep(POLL_INTERVAL)
    _emit({"visible_at": None, "polls": polls, "count": count})


def _log_points(run, n: int) -> float:
    log = run.log
    started = time.perf_counter()
    for i in range(n):
        log(METRIC, i * 1e-6)
    return time.perf_counter() - started


def worker_runyard(args: argparse.Namespace) -> None:
    """(a) burst of --points calls, (b) cross-process visibility, (c) read after complete."""
    from runner import Experiment, Workspace
    from tracking import Run
    exp = Experiment(Workspace(store=_store_url(args.tmp)), "bench-logging")
    run = exp.start_logging()
    poller = subprocess.Popen(
        [sys.executable, __file__, "--worker", "poll", "--tmp", args.tmp, "--run-id", run.id,
         "--points", str(args.points)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if poller.stdout.readline().strip() != "ready":
            raise RuntimeError("poller did not start")
        elapsed = _log_points(run, args.points)
        last_call = time.monotonic()
        poller.stdin.write("go\n")
        poller.stdin.flush()
        seen = json.loads(poller.stdout.readline()[len(RESULT_PREFIX):])
    finally:
        poller.stdin.close()
        poller.wait(30)
    started = time.perf_counter()
    run.complete()
    complete_s = time.perf_counter() - started
    reader = Run(exp, run.id)
    read_s = _timed_reads(lambda: _series_len(reader.get_metrics(name=METRIC)), args.points)
    visible = seen["visible_at"] - last_call if seen["visible_at"] else None
    _emit({"points": args.points, "log_s": elapsed, "calls_per_s": args.points / elapsed,
           "visible_s": visible, "polls": seen["polls"], "complete_s": complete_s,
           "read_s": read_s, "flush_interval": os.environ.get("RUNYARD_FLUSH_INTERVAL", "1")})


def worker_runyard_sustained(args: argparse.Namespace) -> None:
    """run.log for the same time budget MLflow gets: background flushes run meanwhile."""
    import resource
    from runner import Experiment, Workspace
    run = Experiment(Workspace(store=_store_url(args.tmp)), "bench-logging").start_logging()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    log, n = run.log, 0
    started = time.perf_counter()
    end = started + args.budget_seconds
    while time.perf_counter() < end:
        for i in range(n, n + 1000):
            log(METRIC, i * 1e-6)
        n += 1000
    elapsed = time.perf_counter() - started
    t = time.perf_counter()
    run.flush()
    flush_s = time.perf_counter() - t
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    t = time.perf_counter()
    run.complete()
    _emit({"points": n, "log_s": elapsed, "calls_per_s": n / elapsed, "flush_s": flush_s,
           "durable_per_s": n / (elapsed + flush_s), "peak_rss_growth_mb": peak_mb,
           "complete_s": time.perf_counter() - t})


def worker_runyard_read(args: argparse.Namespace) -> None:
    """get_metrics on a series of exactly --points points (MLflow's size)."""
    from runner import Experiment, Workspace
    from tracking import Run
    exp = Experiment(Workspace(store=_store_url(args.tmp)), "bench-logging")
    run = exp.start_logging()
    _log_points(run, args.points)
    run.complete()
    reader = Run(exp, run.id)
    read_s = _timed_reads(lambda: _series_len(reader.get_metrics(name=METRIC)), args.points)
    _emit({"points": args.points, "read_s": read_s})


def worker_mlflow(args: argparse.Namespace) -> None:
    import mlflow
    from mlflow import MlflowClient
    mlflow.set_tracking_uri(f"file://{os.path.join(args.tmp, 'mlruns-' + args.mode)}")
    mlflow.set_experiment("bench-logging")
    sync = args.mode == "sync"
    with mlflow.start_run() as active:
        log_metric, n = mlflow.log_metric, 0
        started = time.perf_counter()
        end = started + args.budget_seconds
        while time.perf_counter() < end:
            for i in range(n, n + 100):
                log_metric(METRIC, i * 1e-6, synchronous=sync)
            n += 100
        elapsed = time.perf_counter() - started
        t = time.perf_counter()
        if not sync:
            mlflow.flush_async_logging()
        drain_s = time.perf_counter() - t
    client = MlflowClient()
    read_s = _timed_reads(lambda: len(client.get_metric_history(active.info.run_id, METRIC)), n)
    _emit({"points": n, "log_s": elapsed, "calls_per_s": n / elapsed, "drain_s": drain_s,
           "read_s": read_s, "version": mlflow.__version__})


WORKERS = {"poll": worker_poll, "runyard": worker_runyard,
           "runyard-sustained": worker_runyard_sustained, "runyard-read": worker_runyard_read,
           "mlflow": worker_mlflow}


# ------------------------------------------------------------------------------ driver
def _spawn(args: argparse.Namespace, tmp: str, kind: str, *extra: str, points: int | None = None,
           env_extra: dict | None = None) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", kind, "--tmp", tmp, "--points",
           str(points or args.points), "--budget-seconds", str(args.budget_seconds), *extra]
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout)[-1500:]
        print(f"  {kind} {' '.join(extra)} FAILED (exit {proc.returncode}):\n{tail}")
        return None
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000,
                        help="points runyard logs per burst run (default 1,000,000)")
    parser.add_argument("--budget-seconds", type=float, default=5.0,
                        help="time MLflow (and the sustained runyard run) logs for (default 5)")
    parser.add_argument("--reps", type=int, default=3,
                        help="runyard burst runs (median; default 3)")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=sorted(MLFLOW_MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        WORKERS[args.worker](args)
        return
    with scratch_dir("runyard-bench-logging-") as tmp:
        os.environ.update({"RUNYARD_CACHE_DIR": os.path.join(tmp, "cache"), "RUNYARD_QUIET": "1",
                           "MLFLOW_ALLOW_FILE_STORE": "true", "PYTHONWARNINGS": "ignore",
                           "PYTHONPATH": os.pathsep.join(
                               p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p)})
        run_benchmark(args, tmp)


def run_benchmark(args: argparse.Namespace, tmp: str) -> None:
    started = time.perf_counter()
    bursts: list[dict] = []
    mlflow: dict[str, dict] = {}
    section(f"(a) calls/s: runyard {args.points:,} points x{args.reps} vs MLflow "
            f"{args.budget_seconds:g} s per mode (interleaved, one process each)")
    modes = list(MLFLOW_MODES)
    for i in range(max(args.reps, len(modes))):
        if i < args.reps:
            res = _spawn(args, tmp, "runyard")
            if res:
                bursts.append(res)
                print(f"  runyard burst {i + 1}: {rate(res['calls_per_s'])} calls/s "
                      f"({secs(res['log_s'])}); visible in another process "
                      f"{secs(res['visible_s'])} after the last call; complete() "
                      f"{secs(res['complete_s'])}; get_metrics {secs(res['read_s'])}", flush=True)
        if i < len(modes):
            mode = modes[i]
            res = _spawn(args, tmp, "mlflow", "--mode", mode, env_extra=MLFLOW_MODES[mode][1])
            if res:
                mlflow[mode] = res
                print(f"  mlflow {MLFLOW_MODES[mode][0]}: {rate(res['calls_per_s'])} calls/s "
                      f"({res['points']:,} points); flush_async_logging() after the loop "
                      f"{secs(res['drain_s']) if mode != 'sync' else '-'}; "
                      f"get_metric_history {secs(res['read_s'])}", flush=True)
    sustained = _spawn(args, tmp, "runyard-sustained")
    if sustained:
        print(f"  runyard over the same {args.budget_seconds:g} s budget: "
              f"{rate(sustained['calls_per_s'])} calls/s ({sustained['points']:,} points); "
              f"flush() afterwards {secs(sustained['flush_s'])} (durable "
              f"{rate(sustained['durable_per_s'])}/s); peak RSS "
              f"+{sustained['peak_rss_growth_mb']:.0f} MB; complete() "
              f"{secs(sustained['complete_s'])}", flush=True)
    largest = max(mlflow.items(), key=lambda kv: kv[1]["points"]) if mlflow else None
    same_size = _spawn(args, tmp, "runyard-read", points=largest[1]["points"]) if largest else None
    summarize(args, bursts, mlflow, sustained, largest, same_size)
    print(f"(whole benchmark: {time.perf_counter() - started:.0f} s)")


def summarize(args, bursts, mlflow, sustained, largest, same_size) -> None:
    ry_rate = median(b["calls_per_s"] for b in bursts)
    ry_visible = median(b["visible_s"] for b in bursts)
    ry_read = median(b["read_s"] for b in bursts)
    mf_version = next(iter(mlflow.values()))["version"] if mlflow else "?"
    rows = []
    for mode, (label, _env) in MLFLOW_MODES.items():
        res = mlflow.get(mode)
        rows.append([f"log calls/s, MLflow {label}",
                     f"{rate(ry_rate)} ({args.points:,} pts)",
                     f"{rate(res['calls_per_s'])} ({res['points']:,} pts)" if res else "failed",
                     ratio(ry_rate, res and res["calls_per_s"])])
    if sustained and "sync" in mlflow:
        rows.append([f"log for {args.budget_seconds:g} s then flush(): durable points/s, "
                     "MLflow sync",
                     f"{rate(sustained['durable_per_s'])} ({sustained['points']:,} pts, "
                     f"flush {secs(sustained['flush_s'])})",
                     rate(mlflow["sync"]["calls_per_s"]),
                     ratio(sustained["durable_per_s"], mlflow["sync"]["calls_per_s"])])
    interval = bursts[0]["flush_interval"] if bursts else "?"
    rows.append([f"readable from another process after the last call (flush interval {interval} s)",
                 secs(ry_visible), "sync: at each call", "-"])
    if largest:
        mode, res = largest
        ry_pp, mf_pp = ry_read / args.points, res["read_s"] / res["points"]
        rows.append([f"read series, per point (MLflow {mode})",
                     f"{secs(ry_read)} / {args.points:,} = {secs(ry_pp)}",
                     f"{secs(res['read_s'])} / {res['points']:,} = {secs(mf_pp)}",
                     ratio(mf_pp, ry_pp)])
        if same_size:
            rows.append([f"read series of {res['points']:,} points (same size)",
                         secs(same_size["read_s"]), secs(res["read_s"]),
                         ratio(res["read_s"], same_size["read_s"])])
    print_summary(f"bench_logging: runyard vs MLflow {mf_version} file store",
                  COMMAND, ["measure", "runyard", "MLflow", "runyard speed-up"], rows,
                  notes=[f"runyard: median of {len(bursts)} runs of {args.points:,} `run.log` "
                         "calls; "
                         f"MLflow: `mlflow.log_metric` for {args.budget_seconds:g} s per mode; "
                         "one process each, interleaved. Async calls/s count the calls only "
                         "(the output above gives the `flush_async_logging()` drain). Reads: "
                         "`Run(exp, id).get_metrics(name=...)` after `complete()` vs "
                         "`MlflowClient().get_metric_history`, median of 3."])


if __name__ == "__main__":
    main()
