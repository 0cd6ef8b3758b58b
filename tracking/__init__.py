"""runyard tracking: what a run records (Run, the metric writer, the fsspec store).

Light on purpose: importing it never imports ray, docker or kubernetes.
"""
from .errors import RunyardError
from .run import Run
from .status import RunStatus
from .store import Store

__all__ = ["Run", "RunStatus", "RunyardError", "Store"]
