"""HyperDrive sweeps on a 3-node local Ray cluster: the controller and every trial are Ray tasks.

The controller runs as the sweep run's job on the Ray target (a task, so it outlives the
submitter) and submits the trials there with the same RayTarget settings.
"""
from __future__ import annotations

import numpy as np
import pytest

from runner import (Experiment, GridParameterSampling, HyperDriveConfig, PrimaryMetricGoal,
                    RunConfiguration, ScriptRunConfig, Workspace, choice)
from targets.ray import RayTarget

from tests.integration.test_sweeps_local import RIDGE_TRIAL
from tests.support.projects import best_alpha_by_plain_sklearn, write_project

pytestmark = pytest.mark.ray

TRIVIAL_TRIAL = """
    import argparse
    from tracking import Run
    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float)
    Run.get_context().log("y", parser.parse_args().x)
"""


@pytest.fixture
def sweep_ws(tmp_path, monkeypatch):
    """A file:// store: the nodes share this machine's disk. A trial on S3 costs about twice the
    CPU (s3fs and botocore in the launcher and the script), and 80 trials on 2 cores would then
    take minutes; tests/integration/test_ray_target.py covers the Ray target on S3."""
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    return Workspace(store=f"file://{tmp_path}/store")


def _trial_config(folder, cluster, script):
    run_config = RunConfiguration()
    run_config.environment_variables = {"RUNYARD_SWEEP_POLL_SECONDS": "0.3"}  # the controller's
    return ScriptRunConfig(source_directory=folder, script=script, run_config=run_config,
                           compute_target=RayTarget(address=cluster.address))


def _nodes(sweep):
    return [child.get_details()["node"]["ray_node_id"] for child in sweep.get_children()]


def test_seed_ridge_grid_on_ray_finds_the_plain_sklearn_best_alpha(ray_cluster, sweep_ws, tmp_path):
    folder = write_project(tmp_path / "ridge", {"train.py": RIDGE_TRIAL})
    alphas = [round(float(a), 2) for a in np.arange(0.0, 1.0, 0.05)]
    config = HyperDriveConfig(
        run_config=_trial_config(folder, ray_cluster, "train.py"),
        hyperparameter_sampling=GridParameterSampling({"--alpha": choice(*alphas)}),
        primary_metric_name="mse", primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
        max_total_runs=20, max_concurrent_runs=5)
    sweep = Experiment(sweep_ws, "ridge-sweep-ray").submit(config)
    sweep.wait_for_completion(timeout=600)

    assert sweep.get_status() == "Completed"
    assert sweep.get_details()["node"]["ray_node_id"] in ray_cluster.node_ids  # the controller
    best = sweep.get_best_run_by_primary_metric()
    assert best.get_metrics()["alpha"] == pytest.approx(best_alpha_by_plain_sklearn())
    trials = sweep.get_children_sorted_by_primary_metric()
    assert len(trials) == 20 and trials[0]["run_id"] == best.id
    assert sorted(sweep.get_hyperparameters()[t["run_id"]]["--alpha"] for t in trials) == alphas
    assert set(_nodes(sweep)) <= set(ray_cluster.node_ids)


def test_sixty_trials_are_placed_on_all_three_nodes(ray_cluster, sweep_ws, tmp_path):
    folder = write_project(tmp_path / "trivial", {"trial.py": TRIVIAL_TRIAL})
    config = HyperDriveConfig(
        run_config=_trial_config(folder, ray_cluster, "trial.py"),
        hyperparameter_sampling=GridParameterSampling({"--x": choice(*range(60))}),
        primary_metric_name="y", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=60, max_concurrent_runs=6)
    sweep = Experiment(sweep_ws, "spread-sweep-ray").submit(config)
    sweep.wait_for_completion(timeout=600)

    assert sweep.get_status() == "Completed"
    children = sweep.get_children()
    assert len(children) == 60 and all(c.get_status() == "Completed" for c in children)
    nodes = _nodes(sweep)
    assert set(nodes) == set(ray_cluster.node_ids), {n: nodes.count(n) for n in set(nodes)}
    assert sweep.get_best_run_by_primary_metric().get_metrics()["y"] == 59
