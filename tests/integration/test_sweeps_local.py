"""HyperDrive sweeps on the local target: grid search, policies end to end, concurrency, detach."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from runner import (BanditPolicy, Experiment, GridParameterSampling, HyperDriveConfig,
                    MedianStoppingPolicy, PrimaryMetricGoal, ScriptRunConfig,
                    TruncationSelectionPolicy, Workspace, choice)
from runner.cli import main as cli_main

from tests.support.projects import best_alpha_by_plain_sklearn, write_project

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RIDGE_TRIAL = """
    import argparse
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_squared_error
    from sklearn.model_selection import train_test_split
    from tracking import Run
    parser = argparse.ArgumentParser()
    parser.add_argument("--alpha", type=float)
    alpha = parser.parse_args().alpha
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    run = Run.get_context()
    reg = Ridge(alpha=alpha).fit(X_train, y_train)
    run.log("alpha", alpha)
    run.log("mse", mean_squared_error(reg.predict(X_test), y_test))
"""

# quality q: reports q * (1 - 0.02 k) for steps k = 1..20. Bad trials (q < 0.9) step slowly so
# that the good ones have reported each interval before the bad ones are judged at it.
DECAY_TRIAL = """
    import argparse, time
    from tracking import Run
    parser = argparse.ArgumentParser()
    parser.add_argument("--quality", type=float)
    q = parser.parse_args().quality
    run = Run.get_context()
    for k in range(1, 21):
        run.log("score", q * (1 - 0.02 * k), step=k)
        run.flush()
        time.sleep(0.05 if q >= 0.9 else 0.6)
"""


@pytest.fixture
def sweep_ws(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RUNYARD_SWEEP_POLL_SECONDS", "0.3")
    monkeypatch.setenv("RUNYARD_CANCEL_GRACE", "2")
    return Workspace(store=f"file://{tmp_path}/store")


def test_seed_ridge_grid_finds_the_plain_sklearn_best_alpha(sweep_ws, tmp_path):
    folder = write_project(tmp_path / "ridge", {"train.py": RIDGE_TRIAL})
    alphas = [round(float(a), 2) for a in np.arange(0.0, 1.0, 0.05)]
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory=folder, script="train.py"),
        hyperparameter_sampling=GridParameterSampling({"--alpha": choice(*alphas)}),
        primary_metric_name="mse", primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
        max_total_runs=20, max_concurrent_runs=4)
    sweep = Experiment(sweep_ws, "ridge-sweep").submit(config)
    sweep.wait_for_completion(timeout=600)
    assert sweep.get_status() == "Completed"
    best = sweep.get_best_run_by_primary_metric()
    assert best.get_metrics()["alpha"] == pytest.approx(best_alpha_by_plain_sklearn())
    trials = sweep.get_children_sorted_by_primary_metric()
    assert len(trials) == 20 and trials[0]["run_id"] == best.id
    assert sorted(sweep.get_hyperparameters()[t["run_id"]]["--alpha"] for t in trials) == alphas
    _assert_concurrency_at_most(sweep, 4)


def _assert_concurrency_at_most(sweep, limit):
    spans = []
    for child in sweep.get_children():
        events = child._records.status_events(child.id)
        start = next(e.time for e in events if e.status.value == "Preparing")
        end = next(e.time for e in events if e.status.is_terminal())
        spans.append((start, end))
    for start, _ in spans:
        overlapping = sum(1 for s, e in spans if s <= start < e)
        assert overlapping <= limit


def _decay_sweep(ws, tmp_path, policy, goal=PrimaryMetricGoal.MAXIMIZE):
    folder = write_project(tmp_path / f"decay{id(policy)}", {"trial.py": DECAY_TRIAL})
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory=folder, script="trial.py"),
        hyperparameter_sampling=GridParameterSampling({"--quality": choice(1.0, 0.95, 0.5, 0.4)}),
        primary_metric_name="score", primary_metric_goal=goal, max_total_runs=4,
        max_concurrent_runs=4, policy=policy)
    sweep = Experiment(ws, "policies").submit(config)
    sweep.wait_for_completion(timeout=300)
    by_quality = {c._record["hyperparameters"]["--quality"]: c for c in sweep.get_children()}
    decisions = {d["trial"]: d for d in sweep.get_decisions()}
    return sweep, by_quality, decisions


def _assert_bad_trials_cut_at_5(by_quality, decisions, threshold):
    assert set(decisions) == {by_quality[0.5].id, by_quality[0.4].id}
    for q in (0.5, 0.4):
        d = decisions[by_quality[q].id]
        assert d["interval"] == 5 and d["threshold"] == pytest.approx(threshold, rel=1e-6)
        assert by_quality[q].get_status() == "Canceled"
        assert len(by_quality[q].get_metrics()["score"]) < 20
    for q in (1.0, 0.95):
        assert by_quality[q].get_status() == "Completed"


def test_bandit_policy_cancels_bad_trials_at_first_evaluation(sweep_ws, tmp_path):
    policy = BanditPolicy(slack_factor=0.1, evaluation_interval=1, delay_evaluation=5)
    sweep, by_quality, decisions = _decay_sweep(sweep_ws, tmp_path, policy)
    # at interval 5 the best value is 1.0 * (1 - 0.1) = 0.9; the bar is 0.9 / 1.1
    _assert_bad_trials_cut_at_5(by_quality, decisions, 0.9 / 1.1)
    assert "bandit" in decisions[by_quality[0.5].id]["reason"].lower()
    assert sweep.get_status() == "Completed"


def test_median_stopping_policy(sweep_ws, tmp_path):
    policy = MedianStoppingPolicy(evaluation_interval=1, delay_evaluation=5)
    _, by_quality, decisions = _decay_sweep(sweep_ws, tmp_path, policy)
    # running averages at 5: q * mean(1 - 0.02k, k=1..5) = 0.94 q -> median of
    # {0.94, 0.893, 0.47, 0.376} is (0.893 + 0.47) / 2
    _assert_bad_trials_cut_at_5(by_quality, decisions, (0.893 + 0.47) / 2)


def test_truncation_selection_policy(sweep_ws, tmp_path):
    policy = TruncationSelectionPolicy(truncation_percentage=50, evaluation_interval=1,
                                       delay_evaluation=5)
    _, by_quality, decisions = _decay_sweep(sweep_ws, tmp_path, policy)
    # lowest 50% of {0.9, 0.855, 0.45, 0.36} at interval 5: the bar is the 0.5 trial's 0.45
    assert set(decisions) == {by_quality[0.5].id, by_quality[0.4].id}
    assert all(d["interval"] == 5 for d in decisions.values())


def test_submitter_can_exit_and_a_new_process_reads_the_best_run(sweep_ws, tmp_path):
    folder = write_project(tmp_path / "q", {"trial.py": """
        import argparse
        from tracking import Run
        p = argparse.ArgumentParser(); p.add_argument("--x", type=float)
        x = p.parse_args().x
        Run.get_context().log("loss", (x - 0.3) ** 2)
    """})
    code = textwrap.dedent(f"""
        import os
        from runner import *
        ws = Workspace(store={sweep_ws.url!r})
        cfg = HyperDriveConfig(run_config=ScriptRunConfig(source_directory={folder!r}, script="trial.py"),
            hyperparameter_sampling=GridParameterSampling({{"x": choice(0.0, 0.3, 0.9)}}),
            primary_metric_name="loss", primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
            max_total_runs=3, max_concurrent_runs=2)
        print(Experiment(ws, "detached").submit(cfg).id, flush=True)
        os._exit(0)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    sweep_id = proc.stdout.strip()
    reader = textwrap.dedent(f"""
        from runner import Workspace
        sweep = Workspace(store={sweep_ws.url!r}).get_run({sweep_id!r})
        sweep.wait_for_completion(timeout=300)
        best = sweep.get_best_run_by_primary_metric()
        print(best.get_details()["runId"], sweep.get_hyperparameters()[best.id])
    """)
    out = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("{'x': 0.3}")
    from click.testing import CliRunner
    res = CliRunner().invoke(cli_main, ["sweep", sweep_id, "--store", sweep_ws.url])
    assert res.exit_code == 0 and "x=0.3" in res.output.splitlines()[4]


def test_canceling_a_sweep_cancels_its_running_trials(sweep_ws, tmp_path):
    folder = write_project(tmp_path / "slow", {"trial.py": """
        import time
        from tracking import Run
        Run.get_context().log("m", 1.0)
        time.sleep(120)
    """})
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory=folder, script="trial.py"),
        hyperparameter_sampling=GridParameterSampling({"--i": choice(1, 2, 3)}),
        primary_metric_name="m", primary_metric_goal="MAXIMIZE", max_total_runs=3,
        max_concurrent_runs=2)
    sweep = Experiment(sweep_ws, "cancel").submit(config)
    import time
    deadline = time.time() + 60
    while len(sweep.get_children(status="Running")) < 2 and time.time() < deadline:
        time.sleep(0.3)
    sweep.cancel()
    assert sweep.get_status() == "Canceled"
    deadline = time.time() + 30
    while time.time() < deadline and any(c.get_status() != "Canceled" for c in sweep.get_children()):
        time.sleep(0.3)
    assert [c.get_status() for c in sweep.get_children()] == ["Canceled", "Canceled"]
