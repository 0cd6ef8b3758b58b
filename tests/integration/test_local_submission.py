"""Submissions on the real local target: detached launcher processes, real signals."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from runner import Experiment, RunConfiguration, ScriptRunConfig, Workspace
from tracking import Run
from tracking.errors import ConfigurationError, RunFailedError

from tests.support.projects import seed_project, write_project

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def local_ws(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RUNYARD_CANCEL_GRACE", "2")
    return Workspace(store=f"file://{tmp_path}/store")


def test_seed_second_example_on_local_target(local_ws, tmp_path, capsys):
    folder = seed_project(tmp_path / "proj")
    experiment = Experiment(local_ws, "train-on-local")
    run_config_user_managed = RunConfiguration()
    run_config_user_managed.environment.python.user_managed_dependencies = True
    src = ScriptRunConfig(source_directory=folder, script="train.py",
                          run_config=run_config_user_managed)
    run = experiment.submit(src)
    run.wait_for_completion(show_output=True)
    out = capsys.readouterr().out
    assert "alpha is 0.95" in out and "Status: Completed" in out
    metrics = Run(experiment, run.id).get_metrics()
    assert len(metrics["alpha"]) == 20 and len(metrics["mse"]) == 20
    models = [f for f in run.get_file_names() if f.startswith("ridge_")]
    assert len(models) == 20
    details = run.get_details()
    assert details["status"] == "Completed" and details["exit_code"] == 0
    assert details["runDefinition"]["script"] == "train.py"


def _submit(ws, tmp_path, code, **kwargs):
    folder = write_project(tmp_path / f"p{time.time_ns()}", {"job.py": code})
    return Experiment(ws, "jobs").submit(ScriptRunConfig(source_directory=folder, script="job.py",
                                                         **kwargs))


def test_exit_code_three_ends_failed_with_code_and_stderr(local_ws, tmp_path):
    run = _submit(local_ws, tmp_path, """
        import sys
        print("about to fail", file=sys.stderr)
        sys.exit(3)
    """)
    with pytest.raises(RunFailedError) as info:
        run.wait_for_completion(timeout=60)
    assert info.value.exit_code == 3 and "about to fail" in info.value.stderr_tail
    assert run.get_details()["exit_code"] == 3 and run.get_status() == "Failed"


def test_sigkill_keeps_flushed_metrics_and_output(local_ws, tmp_path):
    run = _submit(local_ws, tmp_path, """
        import os, signal, time
        from tracking import Run
        run = Run.get_context()
        for i in range(100):
            run.log("i", i)
        print("logged 100", flush=True)
        time.sleep(1.0)  # past the flush interval
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    details = run.wait_for_completion(raise_on_error=False, timeout=60)
    assert details["status"] == "Failed" and details["signal"] == "SIGKILL"
    assert run.get_metrics()["i"] == list(range(100))
    assert "logged 100" in run.get_log_text()


def test_cancel_stops_every_process_of_the_job(local_ws, tmp_path):
    run = _submit(local_ws, tmp_path, """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        print("child", child.pid, flush=True)
        time.sleep(300)
    """)
    deadline = time.time() + 30
    while "child" not in run.get_log_text() and time.time() < deadline:
        time.sleep(0.2)
    grandchild = int(run.get_log_text().split("child")[1].split()[0])
    run.cancel()
    assert run.get_status() == "Canceled"
    running = [e for e in run._records.status_events(run.id) if e.status.value == "Running"]
    pgid = run._records.status_details(running[0])["pgid"]
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    assert not _alive(grandchild)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[-1].split()[0] != "Z"


def test_job_survives_the_submitting_process(local_ws, tmp_path):
    folder = write_project(tmp_path / "slow", {"job.py": """
        import time
        from tracking import Run
        time.sleep(2)
        Run.get_context().log("done", 1)
    """})
    code = textwrap.dedent(f"""
        import os
        from runner import Workspace, Experiment, ScriptRunConfig
        ws = Workspace(store={local_ws.url!r})
        run = Experiment(ws, "orphan").submit(ScriptRunConfig(source_directory={folder!r}, script="job.py"))
        print(run.id, flush=True)
        os.kill(os.getpid(), 9)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == -9
    run = local_ws.get_run(proc.stdout.strip())
    assert run.wait_for_completion(timeout=60)["status"] == "Completed"
    assert run.get_metrics() == {"done": 1}


def test_max_run_duration_fails_the_run(local_ws, tmp_path):
    run = _submit(local_ws, tmp_path, "import time; time.sleep(60)", max_run_duration_seconds=1)
    details = run.wait_for_completion(raise_on_error=False, timeout=60)
    assert details["status"] == "Failed"
    assert details["error"]["error"]["code"] == "Timeout"


def test_missing_script_and_bad_arguments_are_clear(local_ws, tmp_path):
    folder = write_project(tmp_path / "p", {"train.py": "print(1)"})
    exp = Experiment(local_ws, "bad")
    with pytest.raises(ConfigurationError, match="nope.py"):
        exp.submit(ScriptRunConfig(source_directory=folder, script="nope.py"))
    with pytest.raises(ConfigurationError, match="argument 1"):
        ScriptRunConfig(source_directory=folder, script="train.py", arguments=["--x", object()])
    run = exp.submit(ScriptRunConfig(source_directory=folder, script="train.py",
                                     arguments=["--lr", 0.1, "--n", 3, "--flag", True]))
    assert run.get_details()["runDefinition"]["arguments"] == ["--lr", "0.1", "--n", "3", "--flag", "True"]
    run.wait_for_completion(timeout=60, raise_on_error=False)


def test_environment_from_requirements_builds_a_cached_venv(local_ws, tmp_path, monkeypatch):
    from runner import Environment
    pkg = write_project(tmp_path / "pkg", {
        "pyproject.toml": """
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "runyard-test-dep"
            version = "1.0"
        """,
        "runyard_test_dep.py": "VALUE = 42\n"})
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), pkg], check=True, capture_output=True)
    monkeypatch.setenv("RUNYARD_PIP_ARGS", f"--no-index --find-links {wheels}")
    req = tmp_path / "requirements.txt"
    req.write_text("runyard-test-dep==1.0\n")
    env = Environment.from_pip_requirements("dep", str(req))
    code = """
        import sys, runyard_test_dep
        from tracking import Run
        Run.get_context().log("value", runyard_test_dep.VALUE)
        print("python", sys.executable)
    """
    first = _submit(local_ws, tmp_path, code, environment=env)
    first.wait_for_completion(timeout=180)
    second = _submit(local_ws, tmp_path, code, environment=env)
    second.wait_for_completion(timeout=120)
    assert first.get_metrics() == second.get_metrics() == {"value": 42}
    assert "building environment" in first.get_log_text()
    assert "reusing environment" in second.get_log_text()


def test_lost_launcher_reads_not_responding_then_failed(local_ws, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNYARD_HEARTBEAT_INTERVAL", "0.3")
    monkeypatch.setenv("RUNYARD_HEARTBEAT_TIMEOUT", "2")
    run = _submit(local_ws, tmp_path, "import time; print('up', flush=True); time.sleep(120)")
    deadline = time.time() + 30
    while "up" not in run.get_log_text() and time.time() < deadline:
        time.sleep(0.1)
    _, handle = run._target_handle()
    running = [e for e in run._records.status_events(run.id) if e.status.value == "Running"][0]
    script_pgid = run._records.status_details(running)["pgid"]
    os.kill(handle["pid"], signal.SIGKILL)          # the machine "loses" the launcher
    os.killpg(script_pgid, signal.SIGKILL)
    assert run.get_status() == "Running"
    time.sleep(2.5)
    assert run.get_status() == "NotResponding"
    time.sleep(2.0)
    details = run.get_details()
    assert details["status"] == "Failed" and details["error"]["error"]["code"] == "HeartbeatLost"
    with pytest.raises(RunFailedError):
        run.wait_for_completion(timeout=5)


def test_sigterm_to_the_launcher_cancels_the_run(local_ws, tmp_path):
    """What `docker stop` or a deleted Kubernetes pod does: the run ends Canceled, not lost."""
    run = _submit(local_ws, tmp_path, "import time; print('up', flush=True); time.sleep(120)")
    deadline = time.time() + 30
    while "up" not in run.get_log_text() and time.time() < deadline:
        time.sleep(0.1)
    _, handle = run._target_handle()
    os.kill(handle["pid"], signal.SIGTERM)
    details = run.wait_for_completion(timeout=30, raise_on_error=False)
    assert details["status"] == "Canceled"
