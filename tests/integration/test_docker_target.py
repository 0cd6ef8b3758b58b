"""The Docker target against a real engine: images built offline, jobs in containers.

Run it the way CI does (own dockerd in a private network namespace, offline base image)::

    bash scripts/test.sh tests/integration/test_docker_target.py -x

The first run builds the scikit-learn image (about a minute); later runs find it in the engine
(the harness keeps its data root) and take well under a minute.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import uuid
import zipfile
from datetime import datetime

import pytest

from runner import Environment, Experiment, ScriptRunConfig, Workspace
from targets.base import JobSpec, describe_target, resolve_target
from tracking import Run
from tracking.errors import RunFailedError, TargetUnavailableError

from tests.support import services
from tests.support.projects import seed_project, write_project

pytestmark = pytest.mark.docker
LABEL_RUN_ID = "runyard.run-id"  # the documented label; cleanup and tests select by it


def DockerTarget(**settings):  # noqa: N802 - imported when a test runs (docker-py is an extra)
    from targets.docker import DockerTarget as target_class
    return target_class(**settings)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def engine():
    client = services.docker_client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def base_image(engine):
    return services.base_image()


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache dir for the module: wheelhouses are made once, not once per test."""
    return str(tmp_path_factory.mktemp("runyard-cache"))


@pytest.fixture
def docker_ws(tmp_path, monkeypatch, shared_cache, base_image, engine, request):
    monkeypatch.setenv("RUNYARD_CACHE_DIR", shared_cache)
    monkeypatch.setenv("RUNYARD_CANCEL_GRACE", "2")
    # The test namespace has no DNS: without this pip retries pypi.org with backoff (about 8 s
    # per package) before it reads the machine's local index.
    monkeypatch.setenv("PIP_RETRIES", "0")
    experiment = f"{request.node.name[:40]}-{uuid.uuid4().hex[:6]}".replace("[", "-").replace("]", "")
    yield Workspace(store=f"file://{tmp_path}/store"), experiment
    for container in engine.containers.list(all=True, filters={"label": f"runyard.experiment={experiment}"}):
        container.remove(force=True)  # only a failing test leaves one


def _env(base_image, requirements=()):
    env = Environment("test-env")
    env.docker.base_image = base_image
    env.python.pip_requirements = list(requirements)
    return env


def _submit(ws_and_exp, tmp_path, code, target=None, env=None, base_image=None):
    ws, experiment = ws_and_exp
    folder = write_project(tmp_path / f"p{time.time_ns()}", {"job.py": code})
    return Experiment(ws, experiment).submit(ScriptRunConfig(
        source_directory=folder, script="job.py", compute_target=target or "docker",
        environment=env or _env(base_image)))


def _containers(engine, run_id):
    return engine.containers.list(all=True, filters={"label": f"{LABEL_RUN_ID}={run_id}"})


def _gone(engine, run_id, timeout=15.0):
    """Auto-removal happens just after the launcher exits."""
    deadline = time.monotonic() + timeout
    while _containers(engine, run_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _containers(engine, run_id)


def _timeline(run):
    return [(e["status"], datetime.fromisoformat(e["timeUtc"].replace("Z", "+00:00")).timestamp())
            for e in run.get_details()["statusTimeline"]]


def _preparing_seconds(run):
    """From the first Preparing (image step) to Starting (script about to start)."""
    times = _timeline(run)
    start = next(t for s, t in times if s == "Preparing")
    end = next(t for s, t in times if s == "Starting")
    return end - start


# ------------------------------------------------------------------- the seed example
def test_seed_example_runs_in_a_container_from_a_requirements_file(docker_ws, tmp_path, base_image,
                                                                    engine, capsys):
    ws, experiment = docker_ws
    folder = seed_project(tmp_path / "proj")
    (tmp_path / "requirements.txt").write_text("scikit-learn\n")
    env = Environment.from_pip_requirements("sklearn-env", str(tmp_path / "requirements.txt"))
    env.docker.base_image = base_image
    src = ScriptRunConfig(source_directory=folder, script="train.py", compute_target="docker",
                          environment=env)
    run = Experiment(ws, experiment).submit(src)
    run.wait_for_completion(show_output=True, timeout=600)
    out = capsys.readouterr().out
    assert "alpha is 0.95" in out and "Status: Completed" in out

    metrics = Run(Experiment(ws, experiment), run.id).get_metrics()  # read back in this process
    assert len(metrics["alpha"]) == 20 and len(metrics["mse"]) == 20
    assert len([f for f in run.get_file_names() if f.startswith("ridge_")]) == 20
    details = run.get_details()
    assert details["status"] == "Completed" and details["target"] == "docker"
    assert len(details["node"]["container_id"]) == 64
    assert "requirements are installed in the job image" in run.get_log_text()
    assert _gone(engine, run.id), "a finished container is removed"


# ------------------------------------------------------------------------- image cache
def _probe_wheel(folder, name, value):
    """A one-module wheel, so an environment's requirements can change cheaply and uniquely."""
    dist = f"{name}-1.0"
    files = {f"{name}.py": f"VALUE = {value!r}\n".encode(),
             f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
             f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                       b"Tag: py3-none-any\n"}
    record = [f"{arc},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
              f"{len(data)}" for arc, data in files.items()] + [f"{dist}.dist-info/RECORD,,"]
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(os.path.join(folder, f"{dist}-py3-none-any.whl"), "w") as whl:
        for arc, data in files.items():
            whl.writestr(arc, data)


def test_same_environment_builds_once_and_changed_requirements_rebuild(docker_ws, tmp_path, base_image,
                                                                       engine, monkeypatch):
    tag = uuid.uuid4().hex[:8]
    first_pkg, second_pkg = f"runyard_probe_a_{tag}", f"runyard_probe_b_{tag}"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _probe_wheel(wheels, first_pkg, "a")
    _probe_wheel(wheels, second_pkg, "b")
    monkeypatch.setenv("RUNYARD_PIP_ARGS", f"--find-links {wheels}")
    code = f"""
        import importlib
        from tracking import Run
        run = Run.get_context()
        for name in ("{first_pkg}", "{second_pkg}"):
            try:
                run.log(name, importlib.import_module(name).VALUE)
            except ImportError:
                pass
    """
    env = _env(base_image, [first_pkg])
    # the build outlasts a 1 s heartbeat timeout: the run must read Preparing, not NotResponding
    monkeypatch.setenv("RUNYARD_HEARTBEAT_INTERVAL", "0.25")
    monkeypatch.setenv("RUNYARD_HEARTBEAT_TIMEOUT", "1")
    statuses = _statuses_while(lambda: _submit(docker_ws, tmp_path, code, env=env), docker_ws)
    runs = [statuses.pop("run"), _submit(docker_ws, tmp_path, code, env=env)]
    changed = _submit(docker_ws, tmp_path, code, env=_env(base_image, [first_pkg, second_pkg]))
    try:
        for run in runs + [changed]:
            run.wait_for_completion(timeout=300)
        first, second = runs
        assert "building image" in first.get_log_text()
        assert _build_seconds(first) > 2 and "Preparing" in statuses["seen"], statuses
        assert not {"NotResponding", "Failed"} & set(statuses["seen"]), statuses
        assert "is up to date" in second.get_log_text() and "building image" not in second.get_log_text()
        assert _preparing_seconds(second) < 1.0, _timeline(second)
        assert first.get_metrics() == second.get_metrics() == {first_pkg: "a"}

        assert "building image" in changed.get_log_text()
        assert changed.get_metrics() == {first_pkg: "a", second_pkg: "b"}
        tags = {_image_of(r) for r in (first, second, changed)}
        assert len(tags) == 2, tags
    finally:
        for run in runs + [changed]:  # unique throwaway images: do not let them pile up
            try:
                engine.images.remove(_image_of(run), force=True)
            except Exception:  # noqa: BLE001 - already gone / never built
                pass


def _statuses_while(submit, ws_and_exp):
    """Submit in a thread; meanwhile sample what a reader sees of the new run."""
    result, seen = {}, []
    thread = threading.Thread(target=lambda: result.update(run=submit()))
    thread.start()
    experiment = Experiment(*ws_and_exp)
    while thread.is_alive():
        runs = list(experiment.get_runs())
        if runs:
            seen.append(runs[0].get_status())
        time.sleep(0.1)
    thread.join()
    return {"run": result["run"], "seen": seen}


def _build_seconds(run):
    words = run.get_log_text().split("runyard: built image ")[1].split()
    return float(words[2])


def _image_of(run):
    text = run.get_log_text()
    return next(word for word in text.split() if word.startswith("runyard-job:"))


# ----------------------------------------------------------------- failures and cancel
OOM_SCRIPT = """
    import os, sys, time
    if "{victim}" == "launcher":  # make the kernel pick the launcher (the script's parent) first
        with open(f"/proc/{{os.getppid()}}/oom_score_adj", "w") as fh:
            fh.write("1000")
    print("allocating", flush=True)
    hog = []
    while True:
        hog.append(b"x" * (16 << 20))
        time.sleep(0.005)
"""


@pytest.mark.parametrize("victim", ["script", "launcher"])
def test_out_of_memory_ends_failed_with_reason_and_limit(docker_ws, tmp_path, base_image, engine, victim):
    run = _submit(docker_ws, tmp_path, OOM_SCRIPT.format(victim=victim),
                  target=DockerTarget(mem_limit="256m"), base_image=base_image)
    details = run.wait_for_completion(raise_on_error=False, timeout=120)
    assert details["status"] == "Failed"
    assert details["reason"] == "out of memory"
    error = details["error"]["error"]
    assert error["code"] == "OutOfMemory" and "256 MiB" in error["message"], error
    expected = "the script" if victim == "script" else "the job's launcher"
    assert expected in error["message"]
    assert _gone(engine, run.id)


def test_cancel_stops_the_container_and_leaves_none(docker_ws, tmp_path, base_image, engine):
    run = _submit(docker_ws, tmp_path, """
        import time
        print("started", flush=True)
        time.sleep(300)
    """, base_image=base_image)
    deadline = time.monotonic() + 60
    while "started" not in run.get_log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _containers(engine, run.id)
    run.cancel()
    assert run.get_status() == "Canceled"
    assert _containers(engine, run.id) == []


def test_exit_code_two_ends_failed_with_code_two(docker_ws, tmp_path, base_image, engine):
    run = _submit(docker_ws, tmp_path, """
        import sys
        print("bad arguments", file=sys.stderr)
        sys.exit(2)
    """, base_image=base_image)
    with pytest.raises(RunFailedError) as info:
        run.wait_for_completion(timeout=120)
    assert info.value.exit_code == 2 and "bad arguments" in info.value.stderr_tail
    assert run.get_details()["exit_code"] == 2
    assert _gone(engine, run.id)


def test_failed_image_build_fails_the_run_with_pips_error(docker_ws, tmp_path, base_image, engine):
    run = _submit(docker_ws, tmp_path, "print('never runs')",
                  env=_env(base_image, ["runyard-no-such-package==9.9"]))
    with pytest.raises(RunFailedError) as info:
        run.wait_for_completion(timeout=120)
    assert "No matching distribution found for runyard-no-such-package==9.9" in str(info.value)
    assert "runyard-no-such-package" in run.get_log_text()
    assert run.get_details()["error"]["error"]["code"] == "ImageBuildFailed"
    assert _containers(engine, run.id) == []


def test_gpus_reach_the_engine_as_device_requests(docker_ws, tmp_path, base_image):
    """This engine has no GPU runtime: the refusal proves the request was made."""
    run = _submit(docker_ws, tmp_path, "print(1)", target=DockerTarget(gpus="all"),
                  base_image=base_image)
    details = run.wait_for_completion(raise_on_error=False, timeout=60)
    assert details["status"] == "Failed"
    assert "capabilities: [[gpu]]" in details["error"]["error"]["message"]


# ----------------------------------------------------------------------------- S3 store
@pytest.mark.s3
def test_s3_store_gets_credentials_only_through_the_container_env(tmp_path, monkeypatch, shared_cache,
                                                                   base_image, engine):
    from tests.support.s3_server import SECRET_KEY, moto_s3
    monkeypatch.setenv("RUNYARD_CACHE_DIR", shared_cache)
    monkeypatch.setenv("PIP_RETRIES", "0")
    with moto_s3() as s3:
        ws = Workspace(store=s3.url, **s3.storage_options)
        run = _submit((ws, "docker-s3"), tmp_path, """
            from tracking import Run
            run = Run.get_context()
            for i in range(5):
                run.log("loss", 1.0 / (i + 1))
            print("trained", flush=True)
        """, base_image=base_image)
        details = run.wait_for_completion(timeout=180)
        assert details["status"] == "Completed"
        assert run.get_metrics()["loss"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
        assert "trained" in run.get_log_text()

        fs = s3.filesystem()
        keys = fs.find(s3.bucket)
        assert any("/metrics/" in k for k in keys)
        leaking = [k for k in keys if SECRET_KEY.encode() in fs.cat_file(k)]
        assert leaking == [], leaking
        image = engine.images.get(_image_of(run))
    assert SECRET_KEY not in json.dumps(image.attrs) + json.dumps(image.history())


# ---------------------------------------------- no engine needed: errors, pure builders
def test_unreachable_engine_names_the_socket(tmp_path):
    ws = Workspace(store=f"file://{tmp_path}/store")
    folder = write_project(tmp_path / "p", {"job.py": "print(1)"})
    target = DockerTarget(base_url="unix:///tmp/runyard-no-engine/docker.sock")
    with pytest.raises(TargetUnavailableError, match="/tmp/runyard-no-engine/docker.sock") as info:
        Experiment(ws, "nowhere").submit(ScriptRunConfig(folder, "job.py", compute_target=target))
    assert info.value.address == "unix:///tmp/runyard-no-engine/docker.sock"
    run = Experiment(ws, "nowhere").get_runs()
    assert [r.get_status() for r in run] == ["Failed"]


def test_container_options_carry_limits_mounts_labels_and_gpus(tmp_path):
    from targets.docker import container_options
    from targets.docker.target import DockerSettings
    job = JobSpec(run_id="exp_1_abc", experiment="exp", store_url=f"file://{tmp_path}",
                  storage_options={})
    settings = DockerSettings(mem_limit="512m", cpus=1.5, gpus="all", volumes={"/data": {"bind": "/in", "mode": "ro"}})
    opts = container_options(job, settings, "img:1", docker_host="unix:///x.sock",
                             store_path=str(tmp_path), user=None)
    assert opts["labels"][LABEL_RUN_ID] == "exp_1_abc" and opts["auto_remove"] and opts["init"]
    assert opts["mem_limit"] == opts["memswap_limit"] == "512m" and opts["nano_cpus"] == 1_500_000_000
    assert opts["volumes"] == ["/data:/in:ro", f"{tmp_path}:{tmp_path}:rw"]
    assert opts["device_requests"][0]["Count"] == -1
    assert opts["device_requests"][0]["Capabilities"] == [["gpu"]]
    assert opts["network_mode"] == "host" and opts["command"] == ["--run-id", "exp_1_abc"]
    two = container_options(job, DockerSettings(gpus=2), "img", docker_host="", store_path=None, user=None)
    assert two["device_requests"][0]["Count"] == 2 and two["volumes"] == []
    ids = container_options(job, DockerSettings(gpus="0,1"), "img", docker_host="", store_path=None, user=None)
    assert ids["device_requests"][0]["DeviceIDs"] == ["0", "1"]

    s3_job = JobSpec(run_id="r1", experiment="e", store_url="s3://b/p",
                     storage_options={"key": "K", "secret": "S"})
    env = container_options(s3_job, DockerSettings(), "img", docker_host="", store_path=None,
                            user=None)["environment"]
    assert json.loads(env["RUNYARD_STORAGE_OPTIONS"]) == {"key": "K", "secret": "S"}


def test_target_settings_round_trip_through_the_run_record():
    target = DockerTarget(image="my/base:1", mem_limit="1g", gpus=1, volumes=["/a:/a:ro"])
    spec = describe_target(target)
    assert json.loads(json.dumps(spec)) == spec and spec["type"] == "docker"
    again = resolve_target(spec)
    assert type(again) is type(target) and again.settings == target.settings
