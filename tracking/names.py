"""Validation of user-supplied names (metrics, experiments, tags, files).

Metric names are data (a column value), never paths, so ``train/loss`` is fine; they only need a
bounded length and no control characters. Experiment names and file names become store keys and
go through :func:`tracking.store.safe_key` as well.
"""
from __future__ import annotations

import re

from .errors import InvalidNameError
from .store import safe_key

MAX_METRIC_NAME = 255
MAX_TAG_KEY = 255
MAX_TAG_VALUE = 5000
_EXPERIMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_metric_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidNameError(f"metric name must be a string, got {type(name).__name__}: {name!r}")
    if not name or not name.strip():
        raise InvalidNameError("metric name is empty; give a name such as 'accuracy'")
    if len(name) > MAX_METRIC_NAME:
        raise InvalidNameError(
            f"metric name is {len(name)} characters; the limit is {MAX_METRIC_NAME}: {name[:40]!r}...")
    if _CONTROL.search(name):
        raise InvalidNameError(f"metric name {name!r} contains control characters")
    return name


def check_experiment_name(name: object) -> str:
    if not isinstance(name, str) or not _EXPERIMENT_RE.match(name) or ".." in name:
        raise InvalidNameError(
            f"experiment name {name!r} is not allowed: use 1-255 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit (for example 'train-in-notebook')")
    return name


def check_tag(key: object, value: object = None) -> tuple[str, str | None]:
    if not isinstance(key, str) or not key or len(key) > MAX_TAG_KEY or _CONTROL.search(key):
        raise InvalidNameError(f"tag key {key!r} must be a non-empty string of at most "
                               f"{MAX_TAG_KEY} printable characters")
    if value is None:
        return key, None
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_TAG_VALUE:
        raise InvalidNameError(f"tag {key!r}: value longer than {MAX_TAG_VALUE} characters")
    return key, text


def check_file_name(name: object) -> str:
    """A run file name (``outputs/model.pkl``): relative, inside the run, normalised."""
    if not isinstance(name, str):
        raise InvalidNameError(f"file name must be a string, got {type(name).__name__}")
    return safe_key(name)
