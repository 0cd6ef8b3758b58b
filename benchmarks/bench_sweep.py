"""A 500-trial HyperDrive sweep of a trivial script, on the local target and on a 3-node Ray cluster.

Each trial reports one metric and exits. Both sweeps run with the same concurrency (the Ray
cluster's CPU slots minus the one its controller task holds) and the same controller poll
interval (``RUNYARD_SWEEP_POLL_SECONDS``, default here 0.2 s). Printed per target:

* trials/s: trials / (sweep created -> sweep terminal);
* controller overhead per trial: the median gap between two trials the controller launched in
  one burst (its per-trial submit cost), and the median time from a trial ending to the next
  trial being created while the sweep was at capacity (its reaction time);
* spread: trials per node (Ray) and how far the busiest node is from an even share;
* CPU seconds per trial of this process tree (as bench_ray.py measures it).

    unshare --net bash -c 'ip link set lo up; .venv/bin/python benchmarks/bench_sweep.py'

``--no-ray`` runs the local sweep alone (no namespace needed).
"""
from __future__ import annotations

import argparse
import os
import sys

from _common import median, print_summary, private_netns_problem, scratch_dir, section
from bench_ray import CpuMeter, Phase
import bench_ray

COMMAND = "unshare --net bash -c 'ip link set lo up; .venv/bin/python benchmarks/bench_sweep.py'"
TRIAL_PY = """import argparse
from tracking import Run

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=int)
Run.get_context().log("y", parser.parse_args().x)
"""


def run_sweep(ws, job_dir: str, target, trials: int, concurrency: int, poll: float) -> dict:
    from runner import (Experiment, GridParameterSampling, HyperDriveConfig, PrimaryMetricGoal,
                        RunConfiguration, ScriptRunConfig, choice)
    run_config = RunConfiguration()
    run_config.environment_variables = {"RUNYARD_SWEEP_POLL_SECONDS": str(poll)}
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory=job_dir, script="trial.py",
                                   run_config=run_config, compute_target=target),
        hyperparameter_sampling=GridParameterSampling({"--x": choice(*range(trials))}),
        primary_metric_name="y", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=trials, max_concurrent_runs=concurrency)
    with Phase() as phase:
        sweep = Experiment(ws, "bench-sweep").submit(config)
        sweep.wait_for_completion(timeout=3600, raise_on_error=False)
    return {"sweep": sweep, "wall": phase.wall, "cpu": phase.cpu, **analyse(sweep, poll)}


def analyse(sweep, poll: float) -> dict:
    records = sweep._records  # noqa: SLF001 - the benchmark reads the store layout directly
    rows = []
    for child in sweep.get_children():
        events = records.status_events(child.id)
        end = next((e for e in events if e.status.is_terminal()), None)
        running = next((e for e in events if e.status.value == "Running"), None)
        node = (records.status_details(running).get("node") or {}) if running else {}
        rows.append({"created": events[0].time, "end": end.time if end else None,
                     "status": end.status.value if end else "?",
                     "node": node.get("ray_node_id", node.get("host", "?"))})
    rows.sort(key=lambda r: r["created"])
    sweep_events = records.status_events(sweep.id)
    start = sweep_events[0].time
    finish = next(e.time for e in sweep_events if e.status.is_terminal())
    created = [r["created"] for r in rows]
    ends = sorted(r["end"] for r in rows if r["end"])
    burst_gaps = [b - a for a, b in zip(created, created[1:]) if b - a < poll / 2]
    reaction = []
    for r in rows[sweep.hyperdrive_spec["max_concurrent_runs"]:]:
        before = [e for e in ends if e <= r["created"]]
        if before:
            reaction.append(r["created"] - before[-1])
    nodes: dict[str, int] = {}
    for r in rows:
        nodes[r["node"]] = nodes.get(r["node"], 0) + 1
    return {"trials": len(rows), "ok": sum(r["status"] == "Completed" for r in rows),
            "span": finish - start, "submit_gap": median(burst_gaps),
            "reaction": median(reaction), "nodes": nodes,
            "trial_wall": median(r["end"] - r["created"] for r in rows if r["end"])}


def spread_text(nodes: dict[str, int]) -> str:
    counts = sorted(nodes.values(), reverse=True)
    even = sum(counts) / len(counts)
    return (f"{len(counts)} node(s): {', '.join(map(str, counts))}; busiest "
            f"{(counts[0] / even - 1) * 100:+.0f}% vs even")


def report(label: str, res: dict) -> None:
    print(f"  {label}: {res['ok']}/{res['trials']} trials Completed in {res['span']:.1f} s -> "
          f"{res['trials'] / res['span']:.2f} trials/s; submit gap {res['submit_gap'] * 1000:.0f} ms, "
          f"reaction {res['reaction'] * 1000:.0f} ms, trial wall {res['trial_wall']:.2f} s; "
          f"{res['cpu'] / res['trials']:.2f} CPU-s per trial; {spread_text(res['nodes'])}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--cpus-per-node", type=int, default=2)
    parser.add_argument("--poll", type=float, default=0.2, help="controller poll interval (s)")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    problem = None if args.no_ray else private_netns_problem()
    if problem:
        sys.exit(f"bench_sweep: the Ray part needs a private network namespace ({problem}):\n"
                 f"  {COMMAND}\n(or --no-ray for the local sweep alone)")
    with scratch_dir("runyard-bench-sweep-") as tmp:
        os.environ.update({"HOME": tmp, "RUNYARD_QUIET": "1",
                           "RUNYARD_CACHE_DIR": os.path.join(tmp, "cache")})
        bench_ray.METER = CpuMeter()
        try:
            run_all(args, tmp)
        finally:
            bench_ray.METER.close()


def run_all(args, tmp: str) -> None:
    from runner import Workspace
    job_dir = os.path.join(tmp, "job")
    os.makedirs(job_dir)
    with open(os.path.join(job_dir, "trial.py"), "w") as fh:
        fh.write(TRIAL_PY)
    ws = Workspace(store=f"file://{os.path.join(tmp, 'store')}")
    concurrency = 3 * args.cpus_per_node - 1  # the Ray controller task holds one CPU slot
    results = {}
    section(f"local target: {args.trials} trials, {concurrency} concurrent")
    results["local"] = run_sweep(ws, job_dir, "local", args.trials, concurrency, args.poll)
    report("local", results["local"])
    if not args.no_ray:
        from targets.ray import RayTarget
        from tests.support.ray_cluster import start_local_cluster
        section(f"3-node Ray cluster ({args.cpus_per_node} CPUs each): {args.trials} trials, "
                f"{concurrency} concurrent")
        cluster = start_local_cluster(num_nodes=3, cpus_per_node=args.cpus_per_node)
        try:
            results["ray"] = run_sweep(ws, job_dir, RayTarget(address=cluster.address),
                                       args.trials, concurrency, args.poll)
            report("ray", results["ray"])
        finally:
            cluster.shutdown()
    rows = [[label, f"{r['ok']}/{r['trials']}", f"{r['span']:.1f} s",
             f"{r['trials'] / r['span']:.2f}", f"{r['submit_gap'] * 1000:.0f} ms",
             f"{r['reaction'] * 1000:.0f} ms", f"{r['trial_wall']:.2f} s",
             f"{r['cpu'] / r['trials']:.2f}", spread_text(r["nodes"])]
            for label, r in (("local target", results.get("local")),
                             ("3-node Ray cluster", results.get("ray"))) if r]
    print_summary(f"bench_sweep: a {args.trials}-trial sweep of a trivial script", COMMAND,
                  ["target", "Completed", "sweep wall", "trials/s", "controller submit/trial",
                   "controller reaction", "trial wall (median)", "CPU-s per trial", "spread"],
                  rows, notes=[f"max_concurrent_runs={concurrency}, RUNYARD_SWEEP_POLL_SECONDS="
                               f"{args.poll}, file:// store; {os.cpu_count()} cores. On Ray the "
                               "controller is itself a task holding one CPU slot, so its node "
                               "takes one trial fewer at a time (2+2+1 slots: a 2:2:1 spread)."])


if __name__ == "__main__":
    main()
