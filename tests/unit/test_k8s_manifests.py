"""Kubernetes manifests: every YAML in k8s/ and every builder output, validated without a cluster.

Core kinds: kubernetes-validate's *strict* schemas for Kubernetes 1.30 (unknown fields fail, so a
typo such as ``restartpolicy`` is caught). It ships no schema for custom resources, so the
RayCluster is checked in two parts: its structure against a small JSON schema written here (the
KubeRay fields runyard relies on), and each pod template as a core ``v1/PodTemplate`` (where
almost all of its content lives). The last tests run :class:`KubernetesTarget` against a small
stand-in for the API server on 127.0.0.1 (as moto stands in for S3) and assert on the objects the
"cluster" received, not on client calls. Real clusters: tests/integration/test_k8s_cluster.py.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from targets.base import JobSpec, describe_target, resolve_target
from targets.k8s import (DEADLINE_MARGIN_SECONDS, LABEL_EXPERIMENT, LABEL_MANAGED_BY, LABEL_RUN_ID,
                         SUBMITTER_PERMISSIONS, KubernetesTarget, build_credentials_secret,
                         build_job_manifest, job_name, label_value, secret_name)
from tracking.errors import ConfigurationError, TargetUnavailableError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S_DIR = os.path.join(ROOT, "k8s")
K8S_VERSION = "1.30"
SECRET_VALUE = "wJalrXUtnFEMI-K7MDENG-never-in-a-manifest"
CREDENTIALS = {"key": "AKIAEXAMPLEKEY", "secret": SECRET_VALUE,
               "client_kwargs": {"endpoint_url": "https://s3.example.com"}}
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _job(**overrides) -> JobSpec:
    return JobSpec(**{"run_id": "train-in-notebook_1700000000_abcdef12", "experiment": "train-in-notebook",
                      "store_url": "s3://runyard/store", "storage_options": CREDENTIALS,
                      "max_run_duration_seconds": 3600, **overrides})


FULL = dict(image="registry.example.com/runyard:0.1.0", cpu=2, memory="4Gi", gpus=1)


def validate(doc: dict) -> None:
    """Strict schema validation for core kinds; RayCluster as described in the module docstring."""
    if doc["kind"] == "RayCluster":
        return validate_raycluster(doc)
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


# Only the KubeRay fields runyard relies on; KubeRay's CRD allows much more.
_PARAMS = {"type": "object", "additionalProperties": {"type": "string"}}
_GROUP = {"type": "object", "required": ["groupName", "replicas", "minReplicas", "maxReplicas",
                                         "rayStartParams", "template"],
          "properties": {"groupName": {"type": "string"}, "rayStartParams": _PARAMS,
                         **{k: {"type": "integer", "minimum": 0}
                            for k in ("replicas", "minReplicas", "maxReplicas")}}}
RAYCLUSTER_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"}, "kind": {"const": "RayCluster"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {"type": "object", "required": ["headGroupSpec", "workerGroupSpecs"], "properties": {
            "rayVersion": {"type": "string"},
            "headGroupSpec": {"type": "object", "required": ["rayStartParams", "template"],
                              "properties": {"rayStartParams": _PARAMS}},
            "workerGroupSpecs": {"type": "array", "minItems": 1, "items": _GROUP}}}}}


def validate_raycluster(doc: dict) -> None:
    jsonschema.validate(doc, RAYCLUSTER_SCHEMA)
    groups = [doc["spec"]["headGroupSpec"], *doc["spec"]["workerGroupSpecs"]]
    for group in groups:
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate",
                                      "metadata": {"name": "check"}, "template": group["template"]},
                                     K8S_VERSION, strict=True)


# ------------------------------------------------------------------- the YAML files in k8s/
TEMPLATE_EXAMPLE = {
    "NAMESPACE": "default", "JOB_NAME": job_name(_job().run_id), "SECRET_NAME": secret_name(_job().run_id),
    "RUN_ID": _job().run_id, "RUN_ID_LABEL": label_value(_job().run_id),
    "EXPERIMENT": _job().experiment, "EXPERIMENT_LABEL": label_value(_job().experiment),
    "STORE_URL": _job().store_url, "STORAGE_OPTIONS_JSON": json.dumps(CREDENTIALS),
    "IMAGE": FULL["image"], "SERVICE_ACCOUNT": "runyard-job", "CPU": "2", "MEMORY": "4Gi",
    "GPUS": "1", "ACTIVE_DEADLINE_SECONDS": str(3600 + DEADLINE_MARGIN_SECONDS),
    "BACKOFF_LIMIT": "0", "TTL_SECONDS": "3600"}


def load_k8s_file(name: str) -> list[dict]:
    with open(os.path.join(K8S_DIR, name)) as fh:
        text = fh.read()
    if name == "job-template.yaml":
        # as envsubst does; a KeyError here is a placeholder missing from TEMPLATE_EXAMPLE
        text = re.sub(r"\$\{([A-Z_]+)\}", lambda m: TEMPLATE_EXAMPLE[m.group(1)], text)
    return [doc for doc in yaml.safe_load_all(text) if doc]


YAML_FILES = sorted(f for f in os.listdir(K8S_DIR) if f.endswith((".yaml", ".yml")))


@pytest.mark.parametrize("name", YAML_FILES)
def test_every_yaml_in_k8s_validates(name):
    assert {"job-template.yaml", "rbac.yaml", "kuberay-cluster.yaml", "ui-deployment.yaml"} <= set(YAML_FILES)
    docs = load_k8s_file(name)
    assert docs, f"{name} has no objects"
    for doc in docs:
        validate(doc)
        assert doc["metadata"]["labels"][LABEL_MANAGED_BY] == "runyard"


def test_validation_is_not_vacuous():
    manifest = build_job_manifest(_job(), FULL)
    manifest["spec"]["template"]["spec"]["restartpolicy"] = "Never"  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(manifest)
    ray = load_k8s_file("kuberay-cluster.yaml")[0]
    ray["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(ray)


def test_job_template_placeholders_are_documented():
    with open(os.path.join(K8S_DIR, "job-template.yaml")) as fh:
        text = fh.read()
    header = "".join(line for line in text.splitlines(True) if line.startswith("#"))
    used = set(re.findall(r"\$\{([A-Z_]+)\}", text))
    assert used == set(TEMPLATE_EXAMPLE)
    for placeholder in used:
        assert placeholder in header, f"${{{placeholder}}} is not explained in the header"


def test_job_template_is_exactly_what_the_builder_produces():
    secret, job = load_k8s_file("job-template.yaml")
    assert secret == build_credentials_secret(_job())
    assert job == build_job_manifest(_job(), FULL)


def test_rbac_grants_exactly_what_the_target_calls():
    docs = load_k8s_file("rbac.yaml")
    role = next(d for d in docs if d["kind"] == "Role")
    granted = {(group, res): frozenset(rule["verbs"]) for rule in role["rules"]
               for group in rule["apiGroups"] for res in rule["resources"]}
    assert granted == SUBMITTER_PERMISSIONS
    assert "list" not in granted[("", "secrets")] and "get" not in granted[("", "secrets")]
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    assert accounts == {"runyard-job", "runyard-submitter"}
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert {s["name"] for s in binding["subjects"]} <= accounts


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def _secret_ref(entry: dict) -> tuple[str, str]:
    ref = entry["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def test_ui_deployment_binds_all_interfaces_with_a_token_from_a_secret():
    from runner.cli import ui
    deployment, service = load_k8s_file("ui-deployment.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[:2] == ["runyard", "ui"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "8765"
    assert command[command.index("--store") + 1].startswith("s3://")
    env = _env(container)
    token_option = next(p for p in ui.params if p.name == "token")
    assert token_option.envvar == "RUNYARD_UI_TOKEN"  # how --token reaches the CLI
    assert _secret_ref(env["RUNYARD_UI_TOKEN"])[0] == "runyard-ui-token"
    assert _secret_ref(env["RUNYARD_STORAGE_OPTIONS"])[1] == "RUNYARD_STORAGE_OPTIONS"
    assert all("value" not in e for e in env.values())
    assert "tcpSocket" in container["livenessProbe"]  # an HTTP probe would get 401
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 8765


def test_kuberay_nodes_get_the_store_from_a_secret():
    cluster = load_k8s_file("kuberay-cluster.yaml")[0]
    groups = [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]
    for group in groups:
        container = group["template"]["spec"]["containers"][0]
        env = _env(container)
        assert env["RUNYARD_STORE"]["value"].startswith("s3://")
        assert _secret_ref(env["RUNYARD_STORAGE_OPTIONS"]) == ("runyard-store", "RUNYARD_STORAGE_OPTIONS")
        assert "runyard" in container["image"]
    assert len({g["template"]["spec"]["containers"][0]["image"] for g in groups}) == 1


# ------------------------------------------------------------------------------ the builders
@pytest.mark.parametrize("settings", [
    {"image": "img"},
    FULL,
    {**FULL, "gpus": 0, "cpu": "500m", "memory": 2 ** 30, "node_selector": {"pool": "gpu"},
     "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
     "image_pull_secrets": ["regcred"], "service_account": None, "ttl_seconds_after_finished": None,
     "backoff_limit": 2, "volumes": {"/data": {"persistentVolumeClaim": {"claimName": "data"}}}},
])
def test_builder_output_validates(settings):
    validate(build_job_manifest(_job(), settings))
    validate(build_credentials_secret(_job(), namespace="ml"))


def test_everything_is_labelled_with_the_run():
    job = _job()
    manifest, secret = build_job_manifest(job, FULL), build_credentials_secret(job)
    expected = {LABEL_RUN_ID: job.run_id, LABEL_EXPERIMENT: job.experiment, LABEL_MANAGED_BY: "runyard"}
    for labels in (manifest["metadata"]["labels"], manifest["spec"]["template"]["metadata"]["labels"],
                   secret["metadata"]["labels"]):
        assert labels == expected
    assert manifest["metadata"]["annotations"][LABEL_RUN_ID] == job.run_id


def test_credentials_reach_the_pod_only_through_the_secret():
    job = _job()
    manifest, secret = build_job_manifest(job, FULL), build_credentials_secret(job)
    text = json.dumps(manifest)
    assert SECRET_VALUE not in text and "AKIAEXAMPLEKEY" not in text
    env = _env(manifest["spec"]["template"]["spec"]["containers"][0])
    assert "value" not in env["RUNYARD_STORAGE_OPTIONS"]
    assert _secret_ref(env["RUNYARD_STORAGE_OPTIONS"]) == (secret["metadata"]["name"], "RUNYARD_STORAGE_OPTIONS")
    assert json.loads(secret["stringData"]["RUNYARD_STORAGE_OPTIONS"]) == CREDENTIALS
    assert env["RUNYARD_STORE"]["value"] == job.store_url and env["RUNYARD_RUN_ID"]["value"] == job.run_id
    target = KubernetesTarget(**FULL)
    assert SECRET_VALUE not in json.dumps(describe_target(target))


def test_a_password_in_the_store_url_goes_to_the_secret_too():
    job = _job(store_url="s3://AKIA:topsecret@bucket/prefix")
    manifest, secret = build_job_manifest(job, FULL), build_credentials_secret(job)
    assert "topsecret" not in json.dumps(manifest)
    assert secret["stringData"]["RUNYARD_STORE"] == job.store_url


def test_no_storage_options_means_no_secret():
    job = _job(storage_options={})  # e.g. credentials from the node's or pod's cloud identity
    assert build_credentials_secret(job) is None
    env = _env(build_job_manifest(job, FULL)["spec"]["template"]["spec"]["containers"][0])
    assert not any("secretKeyRef" in e.get("valueFrom", {}) for e in env.values())


def test_launcher_command_restart_policy_and_deadline():
    manifest = build_job_manifest(_job(max_run_duration_seconds=120), FULL)
    pod = manifest["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and manifest["spec"]["backoffLimit"] == 0
    assert pod["containers"][0]["command"] == ["python3", "-m", "targets.launch", "--run-id", _job().run_id]
    assert manifest["spec"]["activeDeadlineSeconds"] == 120 + DEADLINE_MARGIN_SECONDS
    assert manifest["spec"]["ttlSecondsAfterFinished"] == 3600
    assert "activeDeadlineSeconds" not in build_job_manifest(_job(max_run_duration_seconds=None), FULL)["spec"]


def test_resources_and_gpu_limits():
    res = build_job_manifest(_job(), {**FULL, "gpus": 2})["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi", "nvidia.com/gpu": "2"}}
    amd = build_job_manifest(_job(), {"image": "i", "gpus": 1, "gpu_resource": "amd.com/gpu"})
    assert amd["spec"]["template"]["spec"]["containers"][0]["resources"] == {"limits": {"amd.com/gpu": "1"}}
    assert "resources" not in build_job_manifest(_job(), {"image": "i"})["spec"]["template"]["spec"]["containers"][0]


def test_node_details_come_from_the_downward_api():
    env = build_job_manifest(_job(), FULL)["spec"]["template"]["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    assert env[names.index("RUNYARD_POD_NAME")]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env[names.index("RUNYARD_NODE_NAME")]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    info = env[names.index("RUNYARD_NODE_INFO")]["value"]
    assert json.loads(info)["pod"] == "$(RUNYARD_POD_NAME)"
    assert names.index("RUNYARD_NODE_INFO") > names.index("RUNYARD_NODE_NAME")  # expansion order


def test_user_variables_stay_literal():
    env = _env(build_job_manifest(_job(environment_variables={"GREETING": "$(HOME) is home"}),
                                  FULL)["spec"]["template"]["spec"]["containers"][0])
    assert env["GREETING"]["value"] == "$$(HOME) is home"  # Kubernetes turns $$( back into $(


@pytest.mark.parametrize("store", ["file:///data/runyard", "/data/runyard", "memory://x"])
def test_a_store_pods_cannot_reach_is_refused(store):
    message = r"use an s3:// store" + ("" if store.startswith("memory") else r" \(or a shared volume via settings")
    with pytest.raises(ConfigurationError, match=message):
        build_job_manifest(_job(store_url=store), FULL)


def test_a_file_store_on_a_mounted_volume_is_accepted():
    volumes = {"/data": {"persistentVolumeClaim": {"claimName": "runyard-store"}}}
    manifest = build_job_manifest(_job(store_url="file:///data/runyard"), {**FULL, "volumes": volumes})
    pod = manifest["spec"]["template"]["spec"]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "runyard-volume-0", "mountPath": "/data"}]
    assert pod["volumes"] == [{"persistentVolumeClaim": {"claimName": "runyard-store"},
                               "name": "runyard-volume-0"}]
    with pytest.raises(ConfigurationError):
        build_job_manifest(_job(store_url="file:///database"), {**FULL, "volumes": volumes})


def test_an_image_is_required_and_the_environment_image_wins():
    with pytest.raises(ConfigurationError, match="image"):
        build_job_manifest(_job(), {})
    manifest = build_job_manifest(_job(docker_image="mine:1"), FULL)
    assert manifest["spec"]["template"]["spec"]["containers"][0]["image"] == "mine:1"


def test_long_and_odd_names_give_valid_names_and_labels():
    run_a = "Some.Experiment_" + "x" * 240 + "_1700000000_aaaaaaaa"
    run_b = "Some.Experiment_" + "x" * 240 + "_1700000000_bbbbbbbb"
    for run_id in (run_a, "a", "X_1_ff"):
        name = job_name(run_id)
        assert len(name) <= 63 and DNS_LABEL_RE.match(name)
        assert len(secret_name(run_id)) <= 253
        value = label_value(run_id)
        assert len(value) <= 63 and LABEL_VALUE_RE.match(value)
    assert job_name(run_a) != job_name(run_b) and label_value(run_a) != label_value(run_b)
    validate(build_job_manifest(_job(run_id=run_a, experiment="E" * 255), FULL))


@pytest.mark.parametrize("bad", [{"namespace": "Not_Valid"}, {"gpus": -1},
                                 {"volumes": {"relative": {"emptyDir": {}}}}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ConfigurationError):
        KubernetesTarget(**{**FULL, **bad})


def test_settings_are_recorded_and_rebuild_the_target():
    target = KubernetesTarget(namespace="ml", **FULL, node_selector={"pool": "gpu"})
    spec = json.loads(json.dumps(describe_target(target)))
    assert spec["type"] == "k8s" and spec["namespace"] == "ml"
    rebuilt = resolve_target(spec)
    assert isinstance(rebuilt, KubernetesTarget) and rebuilt.settings == target.settings
    assert isinstance(resolve_target("k8s"), KubernetesTarget)


def test_importing_the_target_does_not_import_or_configure_kubernetes():
    code = "import sys, targets.k8s; print('kubernetes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------- talking to an API server (stand-in)
def _kubeconfig(tmp_path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "test-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}}]}))
    return str(path)


def test_a_missing_kubeconfig_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    target = KubernetesTarget(**FULL, kubeconfig=str(tmp_path / "nope"))
    with pytest.raises(TargetUnavailableError, match=re.escape(str(tmp_path / "nope"))):
        target.submit(_job())


def test_an_unreachable_api_server_is_named(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = f"https://127.0.0.1:{port}"
    target = KubernetesTarget(**FULL, kubeconfig=_kubeconfig(tmp_path, server))
    with pytest.raises(TargetUnavailableError, match=re.escape(server)) as info:
        target.submit(_job())
    assert info.value.address == server
    assert target.poll({"namespace": "default", "job": "x", "selector": "a=b"}) == "unknown"


class FakeApiServer:
    """Just enough of the Kubernetes API for one Job: stores what it is sent, like a cluster."""

    def __init__(self):
        self.objects: dict[str, dict] = {}  # "secrets/<name>", "jobs/<name>", "pods/<name>"
        self.patches: list[tuple[str, str, list]] = []
        self.deleted: list[tuple[str, dict]] = []
        self.refuse_jobs = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, code, body, ctype="application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code, message):
                self._reply(code, {"kind": "Status", "apiVersion": "v1", "code": code, "message": message})

            def _body(self):
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")

            def _key(self):
                parts = urlsplit(self.path).path.rstrip("/").split("/")
                kind_at = max(i for i, p in enumerate(parts) if p in ("secrets", "jobs", "pods"))
                return "/".join(parts[kind_at:kind_at + 2]), parts[kind_at + 2:]

            def do_POST(self):
                body, (key, _) = self._body(), self._key()
                if key == "jobs" and fake.refuse_jobs:
                    return self._status(422, "Job.batch is invalid: quota exceeded")
                body["metadata"]["uid"] = f"uid-{body['metadata']['name']}"
                fake.objects[f"{key}/{body['metadata']['name']}"] = body
                if key == "jobs":  # the job controller's part: one pod with the template's labels
                    pod = {"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Running"},
                           "metadata": {"name": body["metadata"]["name"] + "-abcde",
                                        "labels": body["spec"]["template"]["metadata"]["labels"]}}
                    fake.objects[f"pods/{pod['metadata']['name']}"] = pod
                self._reply(201, body)

            def do_PATCH(self):
                key, _ = self._key()
                fake.patches.append((key, self.headers["Content-Type"], self._body()))
                self._reply(200, fake.objects[key])

            def do_GET(self):
                key, rest = self._key()
                if key == "pods":
                    selector = parse_qs(urlsplit(self.path).query)["labelSelector"][0]
                    wanted = dict(term.split("=") for term in selector.split(","))
                    pods = [o for k, o in fake.objects.items() if k.startswith("pods/")
                            and wanted.items() <= o["metadata"]["labels"].items()]
                    return self._reply(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods})
                if key not in fake.objects:
                    return self._status(404, f"{key} not found")
                if rest == ["log"]:
                    return self._reply(200, b"runyard launcher says hi\n", "text/plain")
                self._reply(200, fake.objects[key])

            def do_DELETE(self):
                key, _ = self._key()
                fake.deleted.append((key, parse_qs(urlsplit(self.path).query)))
                gone = fake.objects.pop(key, None)
                if gone is None:
                    return self._status(404, f"{key} not found")
                self._reply(200, gone)  # as a real server does for a graceful/foreground delete

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def api(tmp_path):
    fake = FakeApiServer()
    yield fake, _kubeconfig(tmp_path, fake.url)
    fake.server.shutdown()
    fake.server.server_close()


def test_submit_poll_logs_cancel_against_an_api_server(api):
    fake, kubeconfig = api
    target = KubernetesTarget(**FULL, kubeconfig=kubeconfig)
    handle = target.submit(_job())
    name = job_name(_job().run_id)
    assert SECRET_VALUE not in json.dumps(handle) and json.loads(json.dumps(handle)) == handle
    secret, job = fake.objects[f"secrets/{secret_name(_job().run_id)}"], fake.objects[f"jobs/{name}"]
    assert json.loads(secret["stringData"]["RUNYARD_STORAGE_OPTIONS"]) == CREDENTIALS
    assert SECRET_VALUE not in json.dumps(job)
    validate(job)
    (key, ctype, patch), = fake.patches  # the Secret is owned by its Job
    assert ctype == "application/json-patch+json"
    assert patch[0]["value"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": f"uid-{name}"}]

    assert target.poll(handle) == "running"
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    assert target.poll(handle) == "exited"
    assert target.logs(handle) == "runyard launcher says hi\n"

    job["status"] = {}
    target.cancel(handle, grace_seconds=0)
    assert f"jobs/{name}" not in fake.objects and not any(k.startswith("pods/") for k in fake.objects)
    assert fake.deleted[0][1]["propagationPolicy"] == ["Foreground"]
    assert target.poll(handle) == "exited"  # a Job that is gone has exited
    target.cancel(handle, grace_seconds=0)  # and cancelling it again is fine


def test_a_refused_job_is_reported_and_leaves_no_secret_behind(api):
    fake, kubeconfig = api
    fake.refuse_jobs = True
    target = KubernetesTarget(**FULL, kubeconfig=kubeconfig)
    with pytest.raises(TargetUnavailableError, match="422.*quota exceeded") as info:
        target.submit(_job())
    assert fake.url in str(info.value) and kubeconfig in str(info.value)
    assert not fake.objects  # the Secret created first was deleted again
