"""runyard runner: what the user submits (Workspace, Experiment, configs, snapshots, sweeps, CLI)."""
from .workspace import Experiment, Workspace

__all__ = ["Experiment", "Workspace"]
