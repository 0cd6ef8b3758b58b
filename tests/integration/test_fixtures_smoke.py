"""The integration fixtures themselves work: a 3-node Ray cluster and a restartable moto S3.

If these fail, every Ray/S3 integration test would fail for reasons unrelated to runyard.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from tests.support.ray_cluster import start_local_cluster
from tests.support.s3_server import moto_s3

KILL_DEADLINE_S = 15.0  # measured ~1 s on 2 cores; generous for a loaded CI machine
FAST_FAIL_DEADLINE_S = 2.0


@pytest.fixture(scope="module")
def ray_cluster():
    cluster = start_local_cluster(num_nodes=3, cpus_per_node=2)
    yield cluster
    cluster.shutdown()


@pytest.fixture
def ray_driver(ray_cluster):
    import ray

    ray.init(address=ray_cluster.address, namespace=f"t-{uuid.uuid4().hex}",
             log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def s3():
    with moto_s3() as server:
        yield server


@pytest.mark.ray
def test_tasks_land_on_several_nodes(ray_cluster, ray_driver):
    ray = ray_driver

    @ray.remote  # 1 CPU: runs on the 2 workers each node prestarts, no extra spawns
    def where() -> str:
        time.sleep(0.05)
        return ray.get_runtime_context().get_node_id()

    refs = [where.options(scheduling_strategy="SPREAD").remote() for _ in range(12)]
    nodes = ray.get(refs, timeout=120)

    assert len(nodes) == 12
    assert set(nodes) <= set(ray_cluster.node_ids)
    assert len(set(nodes)) >= 2


@pytest.mark.ray
def test_cluster_is_reachable_from_another_process(ray_cluster):
    code = (
        "import ray, sys\n"
        f"ray.init(address={ray_cluster.address!r}, log_to_driver=False)\n"
        "print(sum(1 for n in ray.nodes() if n['Alive']))\n"
    )
    env = {**os.environ, **ray_cluster.env}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "3"


@pytest.mark.ray
def test_jobs_api_on_dashboard_url(ray_cluster):
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(ray_cluster.dashboard_url)
    job_id = client.submit_job(entrypoint="python -c 'print(6 * 7)'")
    deadline = time.monotonic() + 120
    while not client.get_job_status(job_id).is_terminal():
        assert time.monotonic() < deadline, "job did not finish"
        time.sleep(0.2)

    assert client.get_job_status(job_id) == JobStatus.SUCCEEDED
    assert "42" in client.get_job_logs(job_id)


@pytest.mark.ray
def test_killing_a_node_fails_the_task_running_on_it(ray_cluster, ray_driver, tmp_path):
    ray = ray_driver
    from ray.exceptions import NodeDiedError, RayError

    # A node of its own, so the shared cluster keeps its three nodes for other tests.
    victim = ray_cluster.add_node()
    index = ray_cluster.node_ids.index(victim)
    started = tmp_path / "started"

    @ray.remote(max_retries=0)  # a retry would wait forever for the dead node's resource
    def long_task(marker: str) -> None:
        open(marker, "w").close()
        time.sleep(600)

    ref = long_task.options(resources={ray_cluster.node_resource(index): 0.01}).remote(
        str(started))
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline, "task never started"
        time.sleep(0.05)

    killed_at = time.monotonic()
    ray_cluster.kill_node(victim)
    with pytest.raises(RayError) as info:
        ray.get(ref, timeout=KILL_DEADLINE_S + 5)
    latency = time.monotonic() - killed_at

    print(f"task failed {latency:.2f} s after its node was killed: {type(info.value).__name__}")
    assert isinstance(info.value, NodeDiedError)
    assert latency < KILL_DEADLINE_S
    assert victim not in ray_cluster.live_node_ids
    assert len(ray_cluster.live_node_ids) == 3


@pytest.mark.s3
def test_moto_s3_survives_stop_and_start(s3):
    import botocore.exceptions
    import fsspec

    fs, root = fsspec.core.url_to_fs(s3.url, **s3.storage_options)
    fs.pipe(f"{root}/runs/r1/metrics.parquet", b"PAR1")
    assert fs.cat(f"{root}/runs/r1/metrics.parquet") == b"PAR1"

    down = s3.filesystem(fast_fail=True)
    s3.stop()
    for call in (lambda: down.cat(f"{root}/runs/r1/metrics.parquet"),
                 lambda: down.pipe(f"{root}/runs/r1/x", b"x"),
                 lambda: s3.filesystem(fast_fail=True).ls(root)):
        began = time.monotonic()
        with pytest.raises(botocore.exceptions.ConnectionError):
            call()
        assert time.monotonic() - began < FAST_FAIL_DEADLINE_S

    s3.start()
    assert fs.cat(f"{root}/runs/r1/metrics.parquet") == b"PAR1"
    assert down.cat(f"{root}/runs/r1/metrics.parquet") == b"PAR1"
    fs.pipe(f"{root}/runs/r1/after", b"ok")
    assert fs.cat(f"{root}/runs/r1/after") == b"ok"


@pytest.mark.s3
def test_moto_s3_listings_see_other_writers(s3):
    reader, writer = s3.filesystem(), s3.filesystem()
    assert reader is not writer
    reader.pipe(f"{s3.bucket}/exp/a", b"1")
    assert reader.ls(f"{s3.bucket}/exp") == [f"{s3.bucket}/exp/a"]

    writer.pipe(f"{s3.bucket}/exp/b", b"2")

    assert sorted(reader.ls(f"{s3.bucket}/exp")) == [f"{s3.bucket}/exp/a", f"{s3.bucket}/exp/b"]


@pytest.mark.s3
def test_moto_s3_env_is_enough_for_a_subprocess(s3):
    s3.filesystem().pipe(f"{s3.bucket}/hello.txt", b"from the test")
    code = (
        "import fsspec, sys\n"
        "fs = fsspec.filesystem('s3', skip_instance_cache=True)\n"
        "sys.stdout.write(fs.cat(sys.argv[1]).decode())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3.env)
    out = subprocess.run([sys.executable, "-c", code, f"{s3.bucket}/hello.txt"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == "from the test"
