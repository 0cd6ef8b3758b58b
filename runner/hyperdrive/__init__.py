"""HyperDrive, the pure part: search spaces, samplers, early-termination policies and the
sweep configuration (azureml-train-core v1 names). No I/O, no store, no processes: the sweep
controller in ``runner`` drives these objects. See README.md in this folder.
"""
from __future__ import annotations

from typing import Any

from tracking.errors import ConfigurationError

from .parameters import (ParameterExpression, choice, expression_from_dict, lognormal,
                         loguniform, normal, qlognormal, qloguniform, qnormal, quniform,
                         randint, to_arguments, uniform)
from .policies import (BanditPolicy, Decision, EarlyTerminationPolicy, MedianStoppingPolicy,
                       NoTerminationPolicy, PolicyState, PrimaryMetricGoal,
                       TruncationSelectionPolicy, policy_from_dict)
from .sampling import (BayesianParameterSampling, GridParameterSampling, HyperParameterSampling,
                       ParameterSampler, RandomParameterSampling, sampling_from_dict)

__all__ = [
    "BanditPolicy", "BayesianParameterSampling", "Decision", "EarlyTerminationPolicy",
    "GridParameterSampling", "HyperDriveConfig", "HyperParameterSampling",
    "MedianStoppingPolicy", "NoTerminationPolicy", "ParameterExpression", "ParameterSampler",
    "PolicyState", "PrimaryMetricGoal", "RandomParameterSampling", "TruncationSelectionPolicy",
    "choice", "expression_from_dict", "lognormal", "loguniform", "normal", "policy_from_dict",
    "qlognormal", "qloguniform", "qnormal", "quniform", "randint", "sampling_from_dict",
    "to_arguments", "uniform",
]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
    return value


class HyperDriveConfig:
    """What to sweep, how to judge trials, and how far to go (azureml v1 ``HyperDriveConfig``).

    Argument order follows azureml v1: ``hyperparameter_sampling, primary_metric_name,
    primary_metric_goal, max_total_runs, max_concurrent_runs=None, max_duration_minutes=10080,
    policy=None``, then ``run_config`` (the user's ScriptRunConfig; kept as given).

    ``max_total_runs`` is an upper bound: a grid smaller than it simply ends early.
    ``max_concurrent_runs=None`` means all at once (the controller may cap it).
    ``policy=None`` means :class:`NoTerminationPolicy`.

    Raises:
        ConfigurationError: a bad sampling, goal, name or limit; no run_config; or a Bayesian
            sampling with an early-termination policy ("Bayesian sampling does not support
            early termination policies").

    Example::

        HyperDriveConfig(run_config=src, hyperparameter_sampling=RandomParameterSampling(
                             {"--lr": uniform(0.01, 0.1)}),
                         primary_metric_name="val_loss", primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
                         max_total_runs=20, max_concurrent_runs=4,
                         policy=BanditPolicy(slack_factor=0.1, delay_evaluation=5))
    """

    def __init__(self, hyperparameter_sampling: HyperParameterSampling, primary_metric_name: str,
                 primary_metric_goal: PrimaryMetricGoal | str, max_total_runs: int,
                 max_concurrent_runs: int | None = None, max_duration_minutes: int = 10080,
                 policy: EarlyTerminationPolicy | None = None, *, run_config: Any = None) -> None:
        if run_config is None:
            raise ConfigurationError("HyperDriveConfig needs run_config=ScriptRunConfig(...)")
        if not isinstance(hyperparameter_sampling, HyperParameterSampling):
            raise ConfigurationError(
                "hyperparameter_sampling must be RandomParameterSampling, GridParameterSampling "
                f"or BayesianParameterSampling, got {hyperparameter_sampling!r}")
        if not isinstance(primary_metric_name, str) or not primary_metric_name.strip():
            raise ConfigurationError(
                f"primary_metric_name must be a non-empty string, got {primary_metric_name!r}")
        self.run_config = run_config
        self.hyperparameter_sampling = hyperparameter_sampling
        self.primary_metric_name = primary_metric_name
        self.primary_metric_goal = PrimaryMetricGoal.parse(primary_metric_goal)
        self.max_total_runs = _positive_int("max_total_runs", max_total_runs)
        self.max_concurrent_runs = (None if max_concurrent_runs is None else
                                    _positive_int("max_concurrent_runs", max_concurrent_runs))
        self.max_duration_minutes = _positive_int("max_duration_minutes", max_duration_minutes)
        self.policy = self._check_policy(policy, hyperparameter_sampling)

    @staticmethod
    def _check_policy(policy: Any, sampling: HyperParameterSampling) -> EarlyTerminationPolicy:
        policy = NoTerminationPolicy() if policy is None else policy
        if not isinstance(policy, EarlyTerminationPolicy):
            raise ConfigurationError(f"policy must be an early-termination policy, got {policy!r}")
        if isinstance(sampling, BayesianParameterSampling) and not isinstance(
                policy, NoTerminationPolicy):
            raise ConfigurationError(
                "Bayesian sampling does not support early termination policies; "
                "use policy=None or NoTerminationPolicy()")
        return policy

    @property
    def effective_total_runs(self) -> int:
        """``max_total_runs``, or the grid size when the grid is smaller."""
        size = self.hyperparameter_sampling.size
        return self.max_total_runs if size is None else min(size, self.max_total_runs)

    def create_sampler(self, seed: int | None = None) -> ParameterSampler:
        """The sampler for one sweep, told this config's goal."""
        return self.hyperparameter_sampling.create_sampler(seed, goal=self.primary_metric_goal)

    def spec_dict(self) -> dict[str, Any]:
        """Everything but ``run_config``, JSON-able; rebuild with :meth:`from_spec_dict`."""
        return {
            "hyperparameter_sampling": self.hyperparameter_sampling.to_dict(),
            "primary_metric_name": self.primary_metric_name,
            "primary_metric_goal": self.primary_metric_goal.value,
            "max_total_runs": self.max_total_runs,
            "max_concurrent_runs": self.max_concurrent_runs,
            "max_duration_minutes": self.max_duration_minutes,
            "policy": self.policy.to_dict(),
        }

    @classmethod
    def from_spec_dict(cls, spec: dict[str, Any], run_config: Any) -> "HyperDriveConfig":
        """Rebuild from :meth:`spec_dict` output plus the run_config it left out."""
        return cls(sampling_from_dict(spec["hyperparameter_sampling"]),
                   spec["primary_metric_name"], spec["primary_metric_goal"],
                   spec["max_total_runs"], spec.get("max_concurrent_runs"),
                   spec.get("max_duration_minutes", 10080), policy_from_dict(spec.get("policy")),
                   run_config=run_config)

    def __repr__(self) -> str:
        return f"HyperDriveConfig({self.spec_dict()!r})"
