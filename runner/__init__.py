"""runyard runner: what the user submits (Workspace, Experiment, configs, snapshots, sweeps, CLI).

Names and signatures follow azureml-core v1, so existing scripts only change their imports.
"""
from .config import (DockerSection, Environment, PythonSection, RunConfiguration,
                     ScriptRunConfig)
from .hyperdrive import (BanditPolicy, BayesianParameterSampling, GridParameterSampling,
                         HyperDriveConfig, MedianStoppingPolicy, NoTerminationPolicy,
                         PrimaryMetricGoal, RandomParameterSampling, TruncationSelectionPolicy,
                         choice, lognormal, loguniform, normal, qlognormal, qloguniform, qnormal,
                         quniform, randint, uniform)
from .workspace import Experiment, Workspace

__all__ = ["BanditPolicy", "BayesianParameterSampling", "DockerSection", "Environment",
           "Experiment", "GridParameterSampling", "HyperDriveConfig", "MedianStoppingPolicy",
           "NoTerminationPolicy", "PrimaryMetricGoal", "PythonSection", "RandomParameterSampling",
           "RunConfiguration", "ScriptRunConfig", "TruncationSelectionPolicy", "Workspace",
           "choice", "lognormal", "loguniform", "normal", "qlognormal", "qloguniform", "qnormal",
           "quniform", "randint", "uniform"]
