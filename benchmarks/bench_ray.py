"""Many short runs on a 3-node local Ray cluster: runyard's Ray target against Ray's Jobs API.

In one run, on one cluster (3 nodes x ``--cpus-per-node`` logical CPUs, all on this machine):

1. ``--runs`` short runs through runyard's Ray target (``exp.submit`` in a loop, then waiting for
   every run to end; each run reserves 1 CPU: the launcher, inside a pooled Ray worker,
   restores the snapshot and supervises the script, a new process that logs a metric into the
   store).
2. The same scripts submitted at once with ``JobSubmissionClient.submit_job`` (``entrypoint_num_cpus
   =1``, the folder as ``working_dir``; the script's ``Run.get_context()`` records an offline run
   into the same store), waiting until every job ended.
3. A few serial ``ray job submit`` CLI calls (each waits for its job), for scale.
4. The same runs on runyard's local target, at most as many in flight as the cluster has CPU
   slots (the local target has no queue).

Then where the time goes: CPU seconds per run of each side (this process tree's CPU, sampled from
``/proc``; other processes on the machine are not counted), the runyard timeline medians, and
the sequential CPU cost of the pieces (interpreter, the script as a job and as an offline run,
the local target's launcher process + script).

Ray listens on every interface, so the cluster only starts in a private network namespace:

    unshare --net bash -c 'ip link set lo up; .venv/bin/python benchmarks/bench_ray.py'
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime

from _common import (REPO_ROOT, median, print_summary, private_netns_problem, ratio, scratch_dir,
                     secs, section)

COMMAND = "unshare --net bash -c 'ip link set lo up; .venv/bin/python benchmarks/bench_ray.py'"
TRAIN_PY = """from tracking import Run

run = Run.get_context()
run.log("accuracy", 0.9)
"""
POLL = 0.25


# ------------------------------------------------------------------------------ accounting
class CpuMeter:
    """CPU seconds used by this process tree, including processes that already exited.

    A process's CPU reaches its parent's ``cutime`` when the parent waits for it (a launcher
    for its script, a Ray worker for its launcher); the raylet ignores SIGCHLD, so a Ray worker
    that exits (a Jobs API supervisor) takes its CPU with it: those are counted from their last
    sample (every ``interval`` s). Other processes on the machine are not counted.
    """

    def __init__(self, interval: float = 0.25):
        self.tick = os.sysconf("SC_CLK_TCK")
        self.root = os.getpid()
        self.live: dict[int, tuple[int, float]] = {}   # pid -> (ppid, own + reaped children)
        self.lost = 0.0                                 # exited under a parent ignoring SIGCHLD
        self._ignores: dict[int, bool] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._loop, args=(interval,), daemon=True).start()

    def total(self) -> float:
        with self._lock:
            self._sample()
            return self.lost + sum(cpu for _, cpu in self.live.values())

    def close(self) -> None:
        self._stop.set()

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with self._lock:
                self._sample()

    def _sample(self) -> None:
        stats: dict[int, tuple[int, float]] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat") as fh:
                        fields = fh.read().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                stats[int(name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / self.tick)
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        tree, queue = {}, [self.root]
        while queue:
            pid = queue.pop()
            if pid in stats:
                tree[pid] = stats[pid]
                queue.extend(children.get(pid, []))
        for pid, (ppid, cpu) in self.live.items():
            if pid not in tree and self._parent_ignores_sigchld(ppid):
                self.lost += cpu
        self.live = tree

    def _parent_ignores_sigchld(self, ppid: int) -> bool:
        if ppid not in self._ignores:
            try:
                with open(f"/proc/{ppid}/status") as fh:
                    line = next(l for l in fh if l.startswith("SigIgn:"))
                self._ignores[ppid] = bool(int(line.split()[1], 16) & (1 << (signal.SIGCHLD - 1)))
            except (OSError, StopIteration):
                self._ignores[ppid] = False
        return self._ignores[ppid]


METER: CpuMeter | None = None


class Phase:
    """Wall time and this tree's CPU time of one measured phase."""

    def __enter__(self) -> "Phase":
        self.t0, self.c0 = time.perf_counter(), METER.total()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = METER.total() - self.c0


# ------------------------------------------------------------------------------ runyard
def runyard_phase(exp, job_dir: str, target, runs: int, max_in_flight: int | None = None) -> dict:
    from runner import ScriptRunConfig
    from tracking.status import RunStatus
    config = ScriptRunConfig(source_directory=job_dir, script="train.py", compute_target=target)
    submitted, pending, submit_s = [], [], 0.0
    with Phase() as phase:
        for _ in range(runs):
            while max_in_flight and len(pending) >= max_in_flight:
                pending = [r for r in pending if not RunStatus(r.get_status()).is_terminal()]
                if len(pending) >= max_in_flight:
                    time.sleep(0.05)
            t = time.perf_counter()
            run = exp.submit(config)
            submit_s += time.perf_counter() - t
            submitted.append(run)
            pending.append(run)
        pending = list(submitted)
        while pending:
            pending = [r for r in pending if not RunStatus(r.get_status()).is_terminal()]
            if pending:
                time.sleep(POLL)
    statuses = [r.get_status() for r in submitted]
    return {"wall": phase.wall, "cpu": phase.cpu, "submit_s": submit_s, "runs": submitted,
            "ok": statuses.count("Completed"), "n": runs}


def timeline(runs: list) -> dict[str, float]:
    """Median seconds from creation to each status, and node spread."""
    marks: dict[str, list[float]] = {}
    nodes: dict[str, int] = {}
    for run in runs[:: max(1, len(runs) // 50)]:  # a sample: get_details reads several objects
        details = run.get_details()
        created = _ts(details["createdTimeUtc"])
        seen = set()
        for event in details["statusTimeline"]:
            if event["status"] not in seen:
                seen.add(event["status"])
                marks.setdefault(event["status"], []).append(_ts(event["timeUtc"]) - created)
        node = (details.get("node") or {}).get("ray_node_id", "local")[:8]
        nodes[node] = nodes.get(node, 0) + 1
    return {"stages": {k: median(v) for k, v in marks.items()}, "nodes": nodes}


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ------------------------------------------------------------------------------ Ray Jobs API
def jobs_api_phase(client, job_dir: str, env: dict, runs: int) -> dict:
    from ray.job_submission import JobStatus
    with Phase() as phase:
        ids = [client.submit_job(entrypoint=f"{sys.executable} train.py", entrypoint_num_cpus=1,
                                 runtime_env={"working_dir": job_dir, "env_vars": env})
               for _ in range(runs)]
        submit_wall = time.perf_counter() - phase.t0
        wanted = set(ids)
        while True:
            done = {j.submission_id: j.status for j in client.list_jobs()
                    if j.submission_id in wanted and j.status.is_terminal()}
            if len(done) == len(wanted):
                break
            time.sleep(POLL)
    ok = sum(status == JobStatus.SUCCEEDED for status in done.values())
    return {"wall": phase.wall, "cpu": phase.cpu, "submit_s": submit_wall, "ok": ok, "n": runs}


def cli_phase(dashboard_url: str, job_dir: str, env: dict, reps: int) -> dict:
    times = []
    with Phase() as phase:
        for _ in range(reps):
            t = time.perf_counter()
            out = subprocess.run(
                [os.path.join(os.path.dirname(sys.executable), "ray"), "job", "submit",
                 "--address", dashboard_url, "--working-dir", job_dir, "--entrypoint-num-cpus",
                 "1", "--", sys.executable, "train.py"],
                env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
            if out.returncode != 0:
                raise RuntimeError(f"ray job submit failed: {out.stdout[-500:]}{out.stderr[-1500:]}")
            times.append(time.perf_counter() - t)
    return {"wall": phase.wall, "cpu": phase.cpu, "each": times, "ok": reps, "n": reps}


# ------------------------------------------------------------------------------ pieces
def piece_costs(tmp: str, job_dir: str, reps: int = 3) -> dict[str, float]:
    """Sequential CPU seconds (median) of: bare interpreter, the script as a job (spools, the
    launcher ships) and offline (records its own run), the local launcher process + script."""
    from runner import Experiment, ScriptRunConfig, Workspace

    class RecordOnly:  # records the run; the launcher is started below, by hand
        name = "record-only"

        def submit(self, job):
            self.job = job
            return {}

        def poll(self, handle): return "unknown"
        def cancel(self, handle, grace_seconds=0.0): pass
        def logs(self, handle): return ""

    exp = Experiment(Workspace(store=f"file://{os.path.join(tmp, 'piece-store')}"), "pieces")
    target = RecordOnly()
    config = ScriptRunConfig(source_directory=job_dir, script="train.py", compute_target=target)

    def cpu_of(argv, env, cwd=REPO_ROOT) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime

    costs: dict[str, list[float]] = {"python -c pass": [], "train.py (in a job)": [],
                                     "train.py (offline run)": [], "local launcher + train.py": []}
    for i in range(reps):
        costs["python -c pass"].append(cpu_of([sys.executable, "-c", "pass"], os.environ))
        offline = {**os.environ, "RUNYARD_STORE": f"file://{os.path.join(tmp, 'offline')}",
                   "PYTHONPATH": REPO_ROOT}
        spool = os.path.join(tmp, f"piece-spool-{i}")
        in_job = {**offline, "RUNYARD_RUN_ID": f"pieces_{i}", "RUNYARD_SPOOL_DIR": spool}
        costs["train.py (in a job)"].append(cpu_of([sys.executable, "train.py"], in_job, job_dir))
        costs["train.py (offline run)"].append(cpu_of([sys.executable, "train.py"], offline, job_dir))
        run = exp.submit(config)
        env = {**os.environ, **target.job.environment()}
        costs["local launcher + train.py"].append(
            cpu_of([sys.executable, "-m", "targets.launch", "--run-id", run.id], env))
        assert run.get_status() == "Completed", run.get_details()
    return {k: median(v) for k, v in costs.items()}


# ------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--cli-reps", type=int, default=3)
    parser.add_argument("--cpus-per-node", type=int, default=2)
    parser.add_argument("--skip-jobs-api", action="store_true")
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args()
    problem = private_netns_problem()
    if problem:
        sys.exit(f"bench_ray: run it in a private network namespace ({problem}):\n  {COMMAND}")
    with scratch_dir("runyard-bench-ray-") as tmp:
        os.environ.update({"HOME": tmp, "RUNYARD_QUIET": "1",  # Ray writes under $HOME
                           "RUNYARD_CACHE_DIR": os.path.join(tmp, "cache")})
        global METER
        METER = CpuMeter()
        try:
            run_all(args, tmp)
        finally:
            METER.close()


def run_all(args, tmp: str) -> None:
    from runner import Experiment, Workspace
    from targets.ray import RayTarget
    from tests.support.ray_cluster import start_local_cluster

    job_dir = os.path.join(tmp, "job")
    os.makedirs(job_dir)
    with open(os.path.join(job_dir, "train.py"), "w") as fh:
        fh.write(TRAIN_PY)
    store = f"file://{os.path.join(tmp, 'store')}"
    exp = Experiment(Workspace(store=store), "bench-ray")
    slots = 3 * args.cpus_per_node

    section(f"3-node cluster, {args.cpus_per_node} CPUs each (this machine: {os.cpu_count()} cores)")
    t = time.perf_counter()
    cluster = start_local_cluster(num_nodes=3, cpus_per_node=args.cpus_per_node)
    print(f"  started in {secs(time.perf_counter() - t)}", flush=True)
    results: dict[str, dict] = {}
    try:
        target = RayTarget(address=cluster.address)
        section("warm-up: 3 runyard runs, 1 Jobs API job")
        runyard_phase(exp, job_dir, target, 3)
        from ray.job_submission import JobSubmissionClient
        client = JobSubmissionClient(cluster.dashboard_url)
        for name in ("ray", "ray.dashboard.modules.dashboard_sdk"):  # "Package ... exists"
            logging.getLogger(name).setLevel(logging.WARNING)
        job_env = {"RUNYARD_STORE": store, "RUNYARD_QUIET": "1", "PYTHONPATH": REPO_ROOT}
        jobs_api_phase(client, job_dir, job_env, 1)

        section(f"runyard Ray target: {args.runs} runs")
        results["ray"] = runyard_phase(exp, job_dir, target, args.runs)
        report("runyard Ray target", results["ray"])
        results["ray"]["timeline"] = timeline(results["ray"]["runs"])
        print(f"  timeline (median s from creation): {fmt_stages(results['ray']['timeline'])}")
        if not args.skip_jobs_api:
            section(f"Ray JobSubmissionClient: {args.runs} jobs submitted at once")
            results["jobs"] = jobs_api_phase(client, job_dir, job_env, args.runs)
            report("JobSubmissionClient", results["jobs"])
            section(f"`ray job submit` CLI: {args.cli_reps} serial calls")
            results["cli"] = cli_phase(cluster.dashboard_url, job_dir,
                                       {**cluster.env, **job_env}, args.cli_reps)
            report("ray job submit", results["cli"])
    finally:
        cluster.shutdown()
    if not args.skip_local:
        section(f"runyard local target: {args.runs} runs, at most {slots} in flight")
        results["local"] = runyard_phase(exp, job_dir, "local", args.runs, max_in_flight=slots)
        report("runyard local target", results["local"])
        results["local"]["timeline"] = timeline(results["local"]["runs"])
    section("sequential CPU cost of the pieces (no Ray, file store)")
    pieces = piece_costs(tmp, job_dir)
    for name, value in pieces.items():
        print(f"  {name}: {value:.2f} CPU-s")
    summarize(args, results, pieces, slots)


def report(label: str, res: dict) -> None:
    print(f"  {label}: {res['ok']}/{res['n']} succeeded in {res['wall']:.1f} s -> "
          f"{res['n'] / res['wall']:.2f} runs/s; {res['cpu'] / res['n']:.2f} CPU-s per run "
          f"({res['cpu'] / res['wall']:.2f} cores busy)", flush=True)


def fmt_stages(tl: dict) -> str:
    order = ["Queued", "Preparing", "Starting", "Running", "Finalizing", "Completed"]
    stages = ", ".join(f"{s} {tl['stages'][s]:.2f}" for s in order if s in tl["stages"])
    return f"{stages}; nodes (sampled) {tl['nodes']}"


def summarize(args, results: dict, pieces: dict, slots: int) -> None:
    jobs = results.get("jobs")
    jobs_rate = jobs["n"] / jobs["wall"] if jobs else None
    rows = []
    labels = {"ray": "runyard Ray target", "jobs": "Ray JobSubmissionClient (all at once)",
              "cli": "`ray job submit` (serial)", "local": f"runyard local target (<= {slots} in flight)"}
    for key in ("ray", "jobs", "cli", "local"):
        res = results.get(key)
        if not res:
            continue
        runs_s = res["n"] / res["wall"]
        rows.append([labels[key], f"{res['ok']}/{res['n']}", f"{res['wall']:.1f} s",
                     f"{runs_s:.2f}", f"{res['cpu'] / res['n']:.2f}",
                     f"{res['cpu'] / res['wall']:.2f}", ratio(runs_s, jobs_rate)])
    notes = []
    if "ray" in results:
        notes.append("runyard Ray timeline (median s from the run's creation): "
                     + fmt_stages(results["ray"]["timeline"]) + f"; notebook-side submit: "
                     f"{results['ray']['submit_s'] / results['ray']['n'] * 1000:.0f} ms per run.")
    notes.append("Sequential CPU per piece (file store): " + ", ".join(
        f"{k} {v:.2f} s" for k, v in pieces.items()) + f". With {os.cpu_count()} cores the "
        "ceiling is cores / (CPU-s per run) runs/s, whatever the dispatcher does.")
    print_summary(f"bench_ray: {args.runs} short runs on a 3-node local Ray cluster", COMMAND,
                  ["submitted through", "ok", "wall", "runs/s", "CPU-s per run", "cores busy",
                   "vs JobSubmissionClient"], rows, notes)


if __name__ == "__main__":
    main()
