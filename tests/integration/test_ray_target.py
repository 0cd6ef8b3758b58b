"""The Ray target on a 3-node local cluster, with the store in a moto S3 bucket (no shared files).

One cluster per module; the node-kill tests add a node to it and kill that one, so the others
keep their three nodes.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from runner import Experiment, RunConfiguration, ScriptRunConfig, Workspace
from targets.ray import RayTarget
from tracking.errors import TargetUnavailableError

from tests.contract.target_contract import TargetContract
from tests.support.projects import seed_project, write_project
from tests.support.s3_server import SECRET_KEY, moto_s3

pytestmark = [pytest.mark.ray, pytest.mark.s3]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEARTBEAT_TIMEOUT_S = 10.0  # RUNYARD_HEARTBEAT_TIMEOUT of the node-kill tests

SLEEPER = """
import sys, time
from tracking import Run
run = Run.get_context()
print("started", flush=True)
time.sleep(float(sys.argv[1]))
run.log("index", int(sys.argv[2]))
"""

TICKER = """
import time
from tracking import Run
run = Run.get_context()
for i in range(int(__import__("sys").argv[1])):
    run.log("tick", i)
    print("tick", i, flush=True)
    time.sleep(0.1)
"""


@pytest.fixture
def s3():
    with moto_s3() as server:
        yield server


@pytest.fixture
def ray_ws(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RUNYARD_CANCEL_GRACE", "2")
    return Workspace(store=s3.url, **s3.storage_options)


@pytest.fixture
def target(ray_cluster):
    return RayTarget(address=ray_cluster.address)


def _driver(cluster):
    """This process's Ray connection (the target's, or a new one after a test left)."""
    import ray
    if not ray.is_initialized():
        ray.init(address=cluster.address, log_to_driver=False)
    return ray


def _submit(ws, tmp_path, code, target, *args, env=None, experiment="ray-jobs"):
    folder = write_project(tmp_path / f"p{time.time_ns()}", {"job.py": code})
    run_config = RunConfiguration()
    run_config.environment_variables = dict(env or {})
    config = ScriptRunConfig(source_directory=folder, script="job.py", arguments=list(args),
                             run_config=run_config, compute_target=target)
    return Experiment(ws, experiment).submit(config)


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _assert_no_secret_in_bucket(s3):
    fs = s3.filesystem()
    leaked = [p for p in fs.find(s3.bucket) if SECRET_KEY.encode() in fs.cat_file(p)]
    assert leaked == []


# ---------------------------------------------------------------------------------- tests
def test_seed_second_example_with_compute_target_ray(ray_cluster, ray_ws, s3, tmp_path,
                                                     monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)  # what compute_target="ray" finds
    folder = seed_project(tmp_path / "proj")
    run_config = RunConfiguration()
    run_config.environment.python.user_managed_dependencies = True
    src = ScriptRunConfig(source_directory=folder, script="train.py", run_config=run_config,
                          compute_target="ray")
    run = Experiment(ray_ws, "train-on-ray").submit(src)
    details = run.wait_for_completion(timeout=180)

    assert details["status"] == "Completed" and details["target"] == "ray"
    assert details["node"]["ray_node_id"] in ray_cluster.node_ids
    assert details["node"]["node_ip"] == "127.0.0.1" and details["attempts"] == 1
    metrics = ray_ws.get_run(run.id).get_metrics()  # read back here, from the bucket
    assert len(metrics["alpha"]) == 20 and len(metrics["mse"]) == 20
    models = sorted(f for f in run.get_file_names() if f.startswith("ridge_"))
    assert len(models) == 20 and models[-1] == "ridge_0.95.pkl"
    import joblib
    run.download_file(models[-1], str(tmp_path / "model.pkl"))
    assert joblib.load(tmp_path / "model.pkl").alpha == pytest.approx(0.95)
    assert "alpha is 0.95" in run.get_log_text()
    _assert_no_secret_in_bucket(s3)


def test_twelve_concurrent_runs_land_on_several_nodes(ray_cluster, ray_ws, s3, target, tmp_path):
    runs = [_submit(ray_ws, tmp_path, SLEEPER, target, 1.5, i) for i in range(12)]
    for run in runs:
        assert run.wait_for_completion(timeout=240)["status"] == "Completed"

    where = [run.get_details()["node"] for run in runs]
    nodes = [node["ray_node_id"] for node in where]
    assert set(nodes) <= set(ray_cluster.node_ids)
    assert len(set(nodes)) >= 2, nodes
    # the launcher runs inside the (pooled) Ray worker: no launcher process per run
    assert all(node["launcher_pid"] == node["ray_worker_pid"] for node in where), where
    assert len({node["ray_worker_pid"] for node in where}) < len(runs), where
    assert [run.get_metrics()["index"] for run in runs] == list(range(12))
    _assert_no_secret_in_bucket(s3)


def test_cancel_stops_the_running_job_on_its_node(ray_ws, target, tmp_path):
    run = _submit(ray_ws, tmp_path, TICKER, target, 3000)
    _wait_for(lambda: "tick 20" in run.get_log_text(), 120, "the job to print")  # > 1 flush
    script_pid = next(e for e in run._records.status_events(run.id) if e.status.value == "Running")
    script_pid = run._records.status_details(script_pid)["pid"]  # same machine in this test

    run.cancel()

    assert run.get_status() == "Canceled"
    handle = next(e["target_handle"] for e in run._records.read_events(run.id) if "target_handle" in e)
    _wait_for(lambda: target.poll(handle) == "exited", 30, "the Ray task to end")
    _wait_for(lambda: not os.path.exists(f"/proc/{script_pid}"), 10, "the script to be gone")
    assert 1 <= len(run.get_metrics()["tick"]) < 3000


def test_target_cancel_interrupts_a_launcher_that_ignores_the_store(ray_ws, target, tmp_path):
    """The fallback path: no store request, ray.cancel interrupts the task in its worker; the
    launcher kills the script, ships what it spooled and records Canceled, and the worker
    (reused by later runs) keeps no script behind."""
    run = _submit(ray_ws, tmp_path, TICKER, target, 3000)
    _wait_for(lambda: "tick 20" in run.get_log_text(), 120, "the job to print")
    running = next(e for e in run._records.status_events(run.id) if e.status.value == "Running")
    script_pid = run._records.status_details(running)["pid"]
    handle = next(e["target_handle"] for e in run._records.read_events(run.id) if "target_handle" in e)

    target.cancel(handle, grace_seconds=0)

    assert target.poll(handle) == "exited"
    details = run.get_details()
    assert details["status"] == "Canceled", details
    assert "task interrupted" in run._records.status_details(
        run._records.status_events(run.id)[-1]).get("reason", "")
    _wait_for(lambda: not os.path.exists(f"/proc/{script_pid}"), 10, "the script to be gone")
    assert len(run.get_metrics()["tick"]) >= 20
    after = _submit(ray_ws, tmp_path, SLEEPER, target, 0, 1)  # the cluster still runs jobs
    assert after.wait_for_completion(timeout=120)["status"] == "Completed"


def test_cancel_reaches_a_run_still_queued_in_ray(ray_ws, ray_cluster, tmp_path):
    too_big = RayTarget(address=ray_cluster.address, num_cpus=3)  # no node has 3 CPUs
    run = _submit(ray_ws, tmp_path, SLEEPER, too_big, 1, 0)
    handle = next(e["target_handle"] for e in run._records.read_events(run.id) if "target_handle" in e)
    assert too_big.poll(handle) == "running" and run.get_status() == "Queued"

    run.cancel(timeout=2)  # the launcher never started: the target removes the task

    assert run.get_status() == "Canceled"
    assert too_big.poll(handle) == "exited"
    assert "Preparing" not in [e["status"] for e in run.get_details()["statusTimeline"]]


def test_run_survives_the_submitting_process(ray_cluster, ray_ws, s3, tmp_path):
    folder = write_project(tmp_path / "job", {"job.py": SLEEPER})
    code = f"""
from runner import Experiment, ScriptRunConfig, Workspace
from targets.ray import RayTarget
ws = Workspace(store={s3.url!r}, **{s3.storage_options!r})
run = Experiment(ws, "detached").submit(ScriptRunConfig(
    source_directory={folder!r}, script="job.py", arguments=[4, 7],
    compute_target=RayTarget(address={ray_cluster.address!r})))
print(run.id)
"""
    env = {**os.environ, **ray_cluster.env, "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    run = ray_ws.get_run(out.stdout.strip().splitlines()[-1])
    assert run.get_status() in ("Queued", "Preparing", "Starting", "Running")

    assert run.wait_for_completion(timeout=120)["status"] == "Completed"
    assert run.get_metrics() == {"index": 7}


def test_killed_node_fails_the_run_within_the_heartbeat_timeout(ray_cluster, ray_ws, tmp_path,
                                                                monkeypatch):
    monkeypatch.setenv("RUNYARD_HEARTBEAT_TIMEOUT", str(HEARTBEAT_TIMEOUT_S))
    doomed = ray_cluster.add_node()  # killed below; the module's three nodes stay
    index = ray_cluster.node_ids.index(doomed)
    pinned = RayTarget(address=ray_cluster.address,
                       resources={ray_cluster.node_resource(index): 0.01})
    run = _submit(ray_ws, tmp_path, TICKER, pinned, 3000, env={"RUNYARD_HEARTBEAT_INTERVAL": "1"})
    _wait_for(lambda: "tick 15" in run.get_log_text(), 120, "the job to print")
    running = next(e for e in run._records.status_events(run.id) if e.status.value == "Running")
    script_pid = run._records.status_details(running)["pid"]  # same machine in this test

    killed = time.monotonic()
    ray_cluster.kill_node(doomed)
    _wait_for(lambda: run.get_status() not in ("Running", "NotResponding"), HEARTBEAT_TIMEOUT_S,
              "the run to end after its node died")
    latency = time.monotonic() - killed

    print(f"run read {run.get_status()} {latency:.1f} s after its node was killed")
    details = run.get_details()
    assert details["status"] == "Failed"
    assert details["error"]["error"]["code"] == "NodeDied"
    assert details["node"]["ray_node_id"] == doomed
    assert len(run.get_metrics()["tick"]) >= 1  # what was shipped before the kill is kept
    # the script dies with its worker (PR_SET_PDEATHSIG), never runs on unsupervised
    _wait_for(lambda: not os.path.exists(f"/proc/{script_pid}"), 10, "the script to be gone")


def test_killed_node_with_max_retries_runs_a_new_attempt(ray_cluster, ray_ws, tmp_path):
    ray = _driver(ray_cluster)
    spare = ray_cluster.add_node()

    @ray.remote(num_cpus=2)
    class Blocker:  # fills a node's CPUs so the first attempt can only land on the spare node
        def ping(self) -> bool:
            return True

    blockers = [Blocker.options(resources={ray_cluster.node_resource(i): 0.01}).remote()
                for i in range(3)]
    try:
        ray.get([b.ping.remote() for b in blockers], timeout=60)
        retried = RayTarget(address=ray_cluster.address, max_retries=1)
        run = _submit(ray_ws, tmp_path, TICKER, retried, 40, env={"RUNYARD_HEARTBEAT_INTERVAL": "1"})
        _wait_for(lambda: "tick 3" in run.get_log_text(), 120, "the first attempt to print")
        assert run.get_details()["node"]["ray_node_id"] == spare

        ray_cluster.kill_node(spare)
    finally:
        for blocker in blockers:  # the other nodes' CPUs are free for Ray's retry
            ray.kill(blocker)

    killed = time.time()
    details = run.wait_for_completion(timeout=120)
    second = [e for e in run._records.status_events(run.id) if e.status.value == "Preparing"][-1]
    print(f"attempt 2 started {second.time - killed:.1f} s after the kill")
    assert details["status"] == "Completed"
    assert details["attempts"] == 2 and details["attempt"] == 2
    assert details["node"]["ray_node_id"] in ray_cluster.node_ids[:3]
    assert run.get_metrics()["tick"][-40:] == list(range(40))  # the new attempt ran it all


def test_unreachable_cluster_is_target_unavailable_fast(tmp_path):
    import ray
    ray.shutdown()  # a connected process would be told it is on another cluster instead
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"  # nobody listens once closed
    ws = Workspace(store=f"file://{tmp_path}/store")
    started = time.monotonic()
    with pytest.raises(TargetUnavailableError) as info:
        _submit(ws, tmp_path, SLEEPER, RayTarget(address=address), 1, 0)
    assert time.monotonic() - started < 10
    assert info.value.address == address and address in str(info.value)
    run = Experiment(ws, "ray-jobs").get_runs()[0]
    assert run.get_status() == "Failed"  # recorded, not Queued forever


class TestRayTargetContract(TargetContract):
    @pytest.fixture
    def target_ws(self, ray_ws):
        return ray_ws
