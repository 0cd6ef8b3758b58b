"""The Kubernetes target against a real cluster (marker ``k8s``).

No cluster can run on runyard's CI machines, so these tests skip there; they run wherever a
kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``) points at a reachable cluster and these are set:

  RUNYARD_TEST_K8S_IMAGE             an image with runyard[s3] installed (python3 -m targets.launch)
  RUNYARD_TEST_K8S_STORE             s3://bucket/prefix reachable from this machine and from pods
  RUNYARD_TEST_K8S_STORAGE_OPTIONS   JSON storage options (key/secret, client_kwargs.endpoint_url)
  RUNYARD_TEST_K8S_NAMESPACE         default "default"; apply k8s/rbac.yaml there first
  RUNYARD_TEST_K8S_REQUIRED=1        fail instead of skip when any of this is missing

Example with kind and MinIO: see k8s/README.md ("Running the cluster tests").
"""
from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from runner import Experiment, RunConfiguration, ScriptRunConfig, Workspace
from targets.k8s import KubernetesTarget, job_name, secret_name

from tests.support.projects import write_project

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

SCRIPT = """
import os
from tracking import Run

run = Run.get_context()
for i in range(20):
    alpha = i * 0.05
    run.log("alpha", alpha)
    run.log("mse", (alpha - 0.5) ** 2 + 3000)
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.txt", "w") as fh:
    fh.write("ridge")
print("alpha is {0:.2f}, and mse is {1:0.2f}".format(alpha, (alpha - 0.5) ** 2 + 3000))
"""

SLEEPER = """
import time
from tracking import Run
Run.get_context().log("started", 1)
print("sleeping", flush=True)
time.sleep(900)
"""


def _unavailable(reason: str):
    if os.environ.get("RUNYARD_TEST_K8S_REQUIRED") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster():
    """API clients for the configured cluster, or a skip that says what is missing."""
    kubernetes = pytest.importorskip("kubernetes", reason="pip install 'runyard[k8s]'")
    kubeconfig = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if not os.environ.get("KUBECONFIG") and not os.path.exists(kubeconfig):
        _unavailable("no Kubernetes cluster configured: set KUBECONFIG (or ~/.kube/config) to run "
                     "the k8s tests")
    try:
        api = kubernetes.config.new_client_from_config(config_file=kubeconfig, persist_config=False)
        version = kubernetes.client.VersionApi(api).get_code(_request_timeout=10)
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable cluster here"
        _unavailable(f"Kubernetes cluster from {kubeconfig} is not reachable: {exc}")
    missing = [n for n in ("RUNYARD_TEST_K8S_IMAGE", "RUNYARD_TEST_K8S_STORE") if not os.environ.get(n)]
    if missing:
        _unavailable(f"cluster {api.configuration.host} (v{version.git_version}) is reachable, but "
                     f"{', '.join(missing)} is not set (an image with runyard, an s3:// store)")
    return {"batch": kubernetes.client.BatchV1Api(api), "core": kubernetes.client.CoreV1Api(api),
            "namespace": os.environ.get("RUNYARD_TEST_K8S_NAMESPACE", "default"),
            "image": os.environ["RUNYARD_TEST_K8S_IMAGE"]}


@pytest.fixture
def k8s_ws(cluster):
    """A fresh prefix of the test store for each test."""
    options = json.loads(os.environ.get("RUNYARD_TEST_K8S_STORAGE_OPTIONS") or "{}")
    store = os.environ["RUNYARD_TEST_K8S_STORE"].rstrip("/") + f"/k8s-{uuid.uuid4().hex[:8]}"
    return Workspace(store=store, **options)


@pytest.fixture
def experiment(cluster, k8s_ws):
    """An experiment whose name labels everything this test creates; all of it is deleted after."""
    exp = Experiment(k8s_ws, f"k8s-it-{uuid.uuid4().hex[:8]}")
    yield exp
    selector = f"runyard.experiment={exp.name},app.kubernetes.io/managed-by=runyard"
    ns = cluster["namespace"]
    for job in cluster["batch"].list_namespaced_job(ns, label_selector=selector).items:
        cluster["batch"].delete_namespaced_job(job.metadata.name, ns, propagation_policy="Background",
                                               _preload_content=False)
    for secret in cluster["core"].list_namespaced_secret(ns, label_selector=selector).items:
        cluster["core"].delete_namespaced_secret(secret.metadata.name, ns, _preload_content=False)


def _target(cluster) -> KubernetesTarget:
    return KubernetesTarget(namespace=cluster["namespace"], image=cluster["image"], cpu="250m",
                            memory="512Mi", ttl_seconds_after_finished=600)


def _config(folder: str, target: KubernetesTarget) -> ScriptRunConfig:
    run_config = RunConfiguration()
    run_config.environment.python.user_managed_dependencies = True  # the image has what it needs
    return ScriptRunConfig(source_directory=folder, script="train.py", run_config=run_config,
                           compute_target=target, max_run_duration_seconds=600)


def test_a_seed_like_script_runs_to_completion_in_a_pod(cluster, experiment, tmp_path, capsys):
    target = _target(cluster)
    folder = write_project(tmp_path / "proj", {"train.py": SCRIPT})
    run = experiment.submit(_config(folder, target))
    run.wait_for_completion(show_output=True, timeout=600)
    assert "alpha is 0.95" in capsys.readouterr().out

    metrics = run.get_metrics()
    assert len(metrics["alpha"]) == 20 and len(metrics["mse"]) == 20
    assert "outputs/model.txt" in run.get_file_names()
    details = run.get_details()
    assert details["status"] == "Completed" and details["exit_code"] == 0
    node = details["node"]  # from RUNYARD_NODE_INFO, filled by the downward API
    assert node["pod"].startswith(job_name(run.id)) and node["node"] and node["job"] == job_name(run.id)

    ns = cluster["namespace"]
    job = cluster["batch"].read_namespaced_job(job_name(run.id), ns)
    assert job.metadata.labels["runyard.run-id"] and job.spec.active_deadline_seconds >= 600
    secret_values = [v for v in json.loads(os.environ.get("RUNYARD_TEST_K8S_STORAGE_OPTIONS") or "{}").values()
                     if isinstance(v, str) and len(v) >= 8]
    job_text = json.dumps(cluster["batch"].api_client.sanitize_for_serialization(job))
    assert not [v for v in secret_values if v in job_text]
    if secret_values:
        secret = cluster["core"].read_namespaced_secret(secret_name(run.id), ns)
        assert [o.name for o in secret.metadata.owner_references] == [job_name(run.id)]
    assert target.poll(run._target_handle()[1]) == "exited"  # noqa: SLF001


def _running(run, target, timeout=300):
    deadline = time.monotonic() + timeout
    while run.get_status() != "Running" and time.monotonic() < deadline:
        time.sleep(1)
    assert run.get_status() == "Running", target.logs(run._target_handle()[1])  # noqa: SLF001
    return run._target_handle()[1]  # noqa: SLF001


def _until_exited(target, handle, timeout=180):
    deadline = time.monotonic() + timeout
    while target.poll(handle) != "exited" and time.monotonic() < deadline:
        time.sleep(1)
    return target.poll(handle)


def test_run_cancel_ends_canceled_and_the_pod_stops(cluster, experiment, tmp_path):
    target = _target(cluster)
    run = experiment.submit(_config(write_project(tmp_path / "p", {"train.py": SLEEPER}), target))
    handle = _running(run, target)
    run.cancel(timeout=120)  # through the store: the launcher in the pod stops the script
    assert run.get_status() == "Canceled"
    assert _until_exited(target, handle) == "exited"


def test_target_cancel_deletes_the_job_its_pods_and_its_secret(cluster, experiment, tmp_path):
    from kubernetes.client.exceptions import ApiException
    target = _target(cluster)
    run = experiment.submit(_config(write_project(tmp_path / "p", {"train.py": SLEEPER}), target))
    handle = _running(run, target)
    target.cancel(handle, grace_seconds=0)  # what a launcher that never answers gets
    assert _until_exited(target, handle) == "exited"
    with pytest.raises(ApiException) as info:
        cluster["batch"].read_namespaced_job(handle["job"], handle["namespace"])
    assert info.value.status == 404
    deadline = time.monotonic() + 120
    while cluster["core"].list_namespaced_pod(handle["namespace"], label_selector=handle["selector"]).items:
        assert time.monotonic() < deadline, "the job's pods were not deleted"
        time.sleep(1)
    if handle["secret"]:
        with pytest.raises(ApiException):
            cluster["core"].read_namespaced_secret(handle["secret"], handle["namespace"])
