"""Workspace resolution: argument > RUNYARD_STORE > embedded default; from_config walks upward."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from runner import Environment, Experiment, RunConfiguration, ScriptRunConfig, Workspace
from tracking.errors import ConfigurationError, InvalidNameError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_layers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Workspace().url == f"file://{tmp_path}/.runyard"
    monkeypatch.setenv("RUNYARD_STORE", str(tmp_path / "env-store"))
    assert Workspace().url == f"file://{tmp_path}/env-store"
    assert Workspace(store="memory://explicit").url == "memory://explicit"


def test_write_and_find_config_from_a_subfolder(tmp_path, monkeypatch):
    ws = Workspace(store=str(tmp_path / "data"), compute_targets={"gpu": {"type": "local"}})
    path = ws.write_config(str(tmp_path))
    assert path.endswith(".runyard/config.json")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    again = Workspace.from_config()
    assert again.url == ws.url and again.compute_targets == {"gpu": {"type": "local"}}


def test_from_config_missing_says_how(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="write_config"):
        Workspace.from_config()


def test_bad_experiment_name(memory_ws):
    with pytest.raises(InvalidNameError, match="letters"):
        Experiment(memory_ws, "has space")


def test_run_configuration_seed_line_and_save_load(tmp_path):
    rc = RunConfiguration()
    rc.environment.python.user_managed_dependencies = True
    rc.environment.python.interpreter_path = sys.executable
    with pytest.raises(Exception):
        rc.environment.python.user_managed_dependencies = "maybe"
    path = rc.save(str(tmp_path))
    loaded = RunConfiguration.load(path)
    assert loaded.environment.python.user_managed_dependencies is True
    assert loaded.environment.python.interpreter_path == sys.executable


def test_environment_constructors(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("scikit-learn>=1.3  # comment\n\nnumpy\n")
    env = Environment.from_pip_requirements("sk", str(req))
    assert env.python.pip_requirements == ["scikit-learn>=1.3", "numpy"]
    img = Environment.from_docker_image("img", "python:3.11-slim", pip_requirements=str(req))
    assert img.docker.base_image == "python:3.11-slim" and img.python.pip_requirements
    with pytest.raises(ConfigurationError):
        Environment.from_pip_requirements("x", str(tmp_path / "missing.txt"))


def test_script_run_config_validation(tmp_path):
    with pytest.raises(ConfigurationError, match="not a folder"):
        ScriptRunConfig(source_directory=str(tmp_path / "nope"), script="a.py").validate_for_submit()
    with pytest.raises(ConfigurationError, match="max_run_duration"):
        ScriptRunConfig(source_directory=str(tmp_path), script="a.py", max_run_duration_seconds=0)


def test_interpreter_exit_drains_and_completes_interactive_run(tmp_path):
    store = str(tmp_path / "store")
    code = f"""
from runner import Workspace, Experiment
run = Experiment(Workspace(store={store!r}), "exit").start_logging()
for i in range(1000):
    run.log("i", i)
print(run.id)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": ROOT, "RUNYARD_FLUSH_INTERVAL": "30"})
    assert out.returncode == 0, out.stderr
    run = Workspace(store=store).get_run(out.stdout.strip())
    assert run.get_status() == "Completed" and run.get_metrics()["i"] == list(range(1000))
