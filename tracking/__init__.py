"""runyard tracking: what a run records (Run, the metric writer, the fsspec store).

Light on purpose: importing it never imports ray, docker or kubernetes, and names are loaded
on first use so that the in-job launcher starts fast.
"""
from __future__ import annotations

from typing import Any

__all__ = ["Run", "RunStatus", "RunyardError", "Store"]

_LAZY = {"Run": "tracking.run", "RunStatus": "tracking.status", "RunyardError": "tracking.errors",
         "Store": "tracking.store"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tracking' has no attribute {name!r}")
