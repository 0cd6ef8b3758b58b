"""Submission latency and snapshot cost, against peers measured in the same run.

1. submit -> first output line and submit -> completion of a trivial ``train.py`` (prints a line,
   logs a metric, exits) on the local target, against plain ``python train.py`` (a subprocess:
   first stdout line, exit). ``--reps`` runs each, interleaved, medians; one untimed warm-up each.
   "First output line" is the moment the submitter can read the script's line: from the store's
   log chunks for runyard, from the pipe for plain python.
2. The same against a local Ray head (``JobSubmissionClient.submit_job`` with the folder as
   ``working_dir``; ``ray job submit`` is a CLI over the same client), with its own plain-python
   peer, when ray is importable AND this process is in a private network namespace:

       unshare --net bash -c 'ip link set lo up; .venv/bin/python benchmarks/bench_submit.py'

3. Snapshots of a generated 5,000-file, 100 MB folder (random bytes, nested folders):
   first submission, unchanged resubmission, one file changed (bytes uploaded, seconds).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import datetime

from _common import (REPO_ROOT, markdown_table, median, print_summary, private_netns_problem, ratio,
                     scratch_dir, secs, section, size, watch_run, time_process, MARKER, TRAIN_PY)

COMMAND = "unshare --net bash -c 'ip link set lo up; .venv/bin/python benchmarks/bench_submit.py'"
POLL = 0.02
JOB_TIMEOUT = 60.0


# ------------------------------------------------------------------------------ peers
def time_plain(job_dir: str, env: dict) -> dict:
    """Plain ``python -u train.py``: first stdout line and exit, seen through the pipe."""
    return time_process([sys.executable, "-u", "train.py"], "plain python train.py", JOB_TIMEOUT,
                        cwd=job_dir, env=env)


def time_local(exp, job_dir: str) -> dict:
    """``exp.submit(ScriptRunConfig(...))`` on the local target, watched through the store."""
    from runner import ScriptRunConfig
    from tracking.status import RunStatus
    wall0, t0 = time.time(), time.perf_counter()
    run = exp.submit(ScriptRunConfig(source_directory=job_dir, script="train.py"))
    submitted = time.perf_counter() - t0
    first, done, status = watch_run(run, t0, MARKER, JOB_TIMEOUT, POLL)
    if status is not RunStatus.COMPLETED or first is None:
        raise RuntimeError(f"run {run.id} ended {status}, marker seen: {first is not None}")
    stages = {}
    for event in run.get_details()["statusTimeline"]:
        stamp = datetime.fromisoformat(event["timeUtc"].replace("Z", "+00:00")).timestamp()
        stages.setdefault(event["status"], stamp - wall0)
    return {"first": first, "done": done, "submit_returned": submitted, "stages": stages}


class RayHead:
    """A local Ray head started by this process (ray.init), stopped by ray.shutdown; any
    process it left behind is killed by pid (never by name: other clusters may be running)."""

    def __init__(self, home: str):
        os.environ.update({"HOME": home, "RAY_USAGE_STATS_ENABLED": "0"})  # token in $HOME/.ray
        import psutil
        import ray
        from ray.job_submission import JobSubmissionClient
        logging.getLogger("ray").setLevel(logging.ERROR)
        self.ray, self.psutil = ray, psutil
        self.children: list = []
        try:
            ray.init(_node_ip_address="127.0.0.1", include_dashboard=True,
                     dashboard_host="127.0.0.1", dashboard_port=8265, num_cpus=2,
                     object_store_memory=80 * 1024 * 1024, _temp_dir=os.path.join(home, "ray"),
                     log_to_driver=False, logging_level=logging.ERROR)
            self.client = JobSubmissionClient("http://127.0.0.1:8265")
            for name in ("ray", "ray.dashboard.modules.dashboard_sdk"):  # "Uploading package..."
                logging.getLogger(name).setLevel(logging.ERROR)
        except BaseException:
            self.close()
            raise

    def submit(self, job_dir: str, env: dict) -> dict:
        from ray.job_submission import JobStatus
        t0 = time.perf_counter()
        job_id = self.client.submit_job(
            entrypoint=f"{sys.executable} -u train.py",
            runtime_env={"working_dir": job_dir, "env_vars": env})
        first, status, deadline = None, None, t0 + JOB_TIMEOUT
        while first is None and time.perf_counter() < deadline:
            if MARKER in self.client.get_job_logs(job_id):
                first = time.perf_counter() - t0
            else:
                time.sleep(POLL)
        while time.perf_counter() < deadline:
            status = self.client.get_job_status(job_id)
            if status.is_terminal():
                break
            time.sleep(POLL)
        done = time.perf_counter() - t0
        self.children = self.psutil.Process().children(recursive=True)
        if status != JobStatus.SUCCEEDED or first is None:
            tail = self.client.get_job_logs(job_id)[-800:]
            raise RuntimeError(f"ray job {job_id} ended {status}:\n{tail}")
        return {"first": first, "done": done}

    def close(self) -> None:
        self.children = self.psutil.Process().children(recursive=True) or self.children
        self.ray.shutdown()
        _gone, alive = self.psutil.wait_procs(self.children, timeout=10)
        for proc in alive:
            try:
                proc.kill()
            except self.psutil.NoSuchProcess:
                pass


# ------------------------------------------------------------------------------ phases
def compare(label: str, reps: int, plain, other) -> tuple[list[dict], list[dict]]:
    """Warm-up once each, then ``reps`` interleaved pairs (alternating which goes first)."""
    plain(), other()
    plains, others = [], []
    for i in range(reps):
        pair = [(plains, plain), (others, other)]
        for bucket, fn in (pair if i % 2 == 0 else pair[::-1]):
            bucket.append(fn())
        print(f"  rep {i + 1}: plain first {secs(plains[-1]['first'])} done "
              f"{secs(plains[-1]['done'])} | {label} first {secs(others[-1]['first'])} done "
              f"{secs(others[-1]['done'])}", flush=True)
    return plains, others


def make_tree(root: str, files: int, total_bytes: int) -> None:
    per = total_bytes // files
    for i in range(files):
        folder = os.path.join(root, f"pkg{i % 10}", f"sub{(i // 10) % 10}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"part{i:05d}.bin"), "wb") as fh:
            fh.write(os.urandom(per + (total_bytes - per * files if i == 0 else 0)))


def snapshot_phase(tmp: str, files: int, total_mb: int) -> list[list]:
    from runner import Workspace
    from runner.snapshot import take_snapshot
    store = Workspace(store=f"file://{os.path.join(tmp, 'snapstore')}").store
    src = os.path.join(tmp, "bigsrc")
    t = time.perf_counter()
    make_tree(src, files, total_mb * 1024 * 1024)
    print(f"  generated {files:,} files, {total_mb} MB in {secs(time.perf_counter() - t)}")
    rows = []

    def step(label: str, repeats: int = 1) -> None:
        results = [take_snapshot(store, src) for _ in range(repeats)]
        res = results[0]
        seconds = median(r.seconds for r in results)
        note = f" (median of {repeats})" if repeats > 1 else ""
        print(f"  {label}: uploaded {res.uploaded_files} file(s), {res.uploaded_bytes:,} bytes, "
              f"{secs(seconds)}{note}; reused={res.reused}", flush=True)
        rows.append([label + note, f"{res.files:,}", f"{res.uploaded_files:,}",
                     size(res.uploaded_bytes), secs(seconds)])

    step("first submission")
    step("unchanged resubmission", repeats=3)
    victim = os.path.join(src, "pkg3", "sub4", "part00043.bin")
    nbytes = os.path.getsize(victim)
    with open(victim, "wb") as fh:
        fh.write(os.urandom(nbytes))
    step("one file changed")
    return rows


# ------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5,
                        help="timed submissions per peer (default 5)")
    parser.add_argument("--files", type=int, default=5000,
                        help="snapshot folder: number of files (default 5000)")
    parser.add_argument("--megabytes", type=int, default=100,
                        help="snapshot folder: total size in MB (default 100)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray part")
    args = parser.parse_args()
    started = time.perf_counter()
    with scratch_dir("runyard-bench-submit-") as tmp:
        os.environ.update({"RUNYARD_CACHE_DIR": os.path.join(tmp, "cache"), "RUNYARD_QUIET": "1"})
        job_dir = os.path.join(tmp, "job")
        os.makedirs(job_dir)
        with open(os.path.join(job_dir, "train.py"), "w") as fh:
            fh.write(TRAIN_PY)
        # plain python and the Ray job record an offline run into their own store
        path = os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p)
        job_env = {"PYTHONPATH": path, "RUNYARD_QUIET": "1",
                   "RUNYARD_STORE": f"file://{os.path.join(tmp, 'plainstore')}"}
        plain_env = {**os.environ, **job_env}
        from runner import Experiment, Workspace
        exp = Experiment(Workspace(store=f"file://{os.path.join(tmp, 'store')}"), "bench-submit")

        section(f"local target vs plain python, {args.reps} reps interleaved (+1 warm-up each)")
        plain_l, local = compare("local", args.reps, lambda: time_plain(job_dir, plain_env),
                                 lambda: time_local(exp, job_dir))
        plain_r, ray_runs, ray_note = ray_phase(args, tmp, job_dir, plain_env, job_env)

        section(f"snapshot of a generated {args.files:,}-file, {args.megabytes} MB folder")
        snap_rows = snapshot_phase(tmp, args.files, args.megabytes)
        summarize(args, plain_l, local, plain_r, ray_runs, ray_note, snap_rows)
    print(f"(whole benchmark: {time.perf_counter() - started:.0f} s)")


def ray_phase(args, tmp: str, job_dir: str, plain_env: dict, job_env: dict):
    section("Ray job submission (local head) vs plain python")
    if args.no_ray:
        print("ray part skipped: --no-ray")
        return [], [], "skipped (--no-ray)"
    try:
        import ray  # noqa: F401
    except ImportError:
        print("ray part skipped: ray is not installed (pip install 'runyard[ray]')")
        return [], [], "skipped: ray not installed"
    problem = private_netns_problem()
    if problem:
        print("ray part skipped: run inside `unshare --net`")
        print(f"  ({problem}; Ray listens on every interface, so its head runs only in a private "
              "network namespace)")
        return [], [], "skipped: not inside `unshare --net`"
    # a short HOME: Ray's unix socket paths under it must stay below 108 bytes
    with scratch_dir("ryh-") as home:
        t = time.perf_counter()
        try:
            head = RayHead(home)
        except Exception as exc:  # noqa: BLE001 - report, and still run the snapshot part
            print(f"ray part failed: the head did not start: {exc}")
            return [], [], "failed: the Ray head did not start"
        try:
            print(f"  head started in {secs(time.perf_counter() - t)} (ray {head.ray.__version__})")
            plains, runs = compare("ray", args.reps, lambda: time_plain(job_dir, plain_env),
                                   lambda: head.submit(job_dir, job_env))
        except Exception as exc:  # noqa: BLE001
            print(f"ray part failed: {exc}")
            return [], [], "failed (see output above)"
        finally:
            head.close()
    return plains, runs, f"ray {head.ray.__version__}"


def summarize(args, plain_l, local, plain_r, ray_runs, ray_note, snap_rows) -> None:
    rows = []
    pairs = (("local target", plain_l, local), ("Ray job (JobSubmissionClient)", plain_r, ray_runs))
    for label, plains, runs in pairs:
        if not runs:
            rows.append([f"{label}: {ray_note}", "-", "-", "-", "-"])
            continue
        for what, key in (("first output line", "first"), ("completion", "done")):
            ours, peer = median(r[key] for r in runs), median(p[key] for p in plains)
            rows.append([f"{label}: submit -> {what}", secs(ours), secs(peer),
                         f"{ours - peer:+.2f} s", ratio(ours, peer)])
    stages = ["submit_returned", "Preparing", "Starting", "Running", "first", "Completed"]
    timeline = {s: median(r.get(s, r["stages"].get(s)) for r in local) for s in stages}
    shown = {"submit_returned": "submit() returned", "first": "first line read"}
    breakdown = ", ".join(f"{shown.get(s, s)} {secs(v)}" for s, v in timeline.items())
    snap_table = markdown_table(["snapshot step", "files", "uploaded files", "uploaded bytes",
                                 "seconds"], snap_rows)
    print_summary("bench_submit: submission latency and snapshots", COMMAND,
                  ["measure (median)", "runyard", "plain `python train.py`", "difference", "ratio"],
                  rows, notes=[
                      f"{args.reps} interleaved reps per pair after one warm-up each; each Ray "
                      "row has its own plain-python peer, measured while the Ray head ran. "
                      f"Local run timeline from submit (median): {breakdown}.",
                      f"Snapshot of a generated {args.files:,}-file, {args.megabytes} MB folder "
                      "(`take_snapshot`, file:// store):\n\n" + snap_table])


if __name__ == "__main__":
    main()
