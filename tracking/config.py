"""Configuration resolved in one place: explicit argument > environment variable > file > default.

Every environment variable runyard reads or sets is named here. The launcher sets the ``RUN_*``
identity variables for the job; ``Run.get_context()`` reads them back.
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple

if TYPE_CHECKING:  # job scripts import this module: only the standard library's cheap parts
    from pathlib import Path

    from .store import Store

# --- names of environment variables (the one place they are spelled) -------------------------
ENV_STORE = "RUNYARD_STORE"                      # store URL
ENV_STORAGE_OPTIONS = "RUNYARD_STORAGE_OPTIONS"  # JSON; secrets travel only through the env
ENV_RUN_ID = "RUNYARD_RUN_ID"
ENV_EXPERIMENT = "RUNYARD_EXPERIMENT"
ENV_PARENT_RUN_ID = "RUNYARD_PARENT_RUN_ID"
ENV_SPOOL_DIR = "RUNYARD_SPOOL_DIR"              # set by the launcher: the script spools, it ships
ENV_FLUSH_INTERVAL = "RUNYARD_FLUSH_INTERVAL"    # seconds, default 1.0
ENV_HEARTBEAT_TIMEOUT = "RUNYARD_HEARTBEAT_TIMEOUT"  # seconds, default 60
ENV_UI_PORT = "RUNYARD_UI_PORT"                  # port get_portal_url() names, default 8765
ENV_QUIET = "RUNYARD_QUIET"                      # "1": no informational prints

DEFAULT_STORE_DIR = ".runyard"
CONFIG_DIR = ".runyard"
CONFIG_FILE = "config.json"
DEFAULT_FLUSH_INTERVAL = 1.0
DEFAULT_HEARTBEAT_INTERVAL = 5.0
DEFAULT_HEARTBEAT_TIMEOUT = 60.0
DEFAULT_UI_PORT = 8765


def _float_env(name: str, default: float, env: Mapping[str, str] | None = None) -> float:
    env = os.environ if env is None else env
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"environment variable {name}={raw!r} must be > 0")
    return value


def flush_interval(explicit: float | None = None) -> float:
    return explicit if explicit is not None else _float_env(ENV_FLUSH_INTERVAL, DEFAULT_FLUSH_INTERVAL)


def heartbeat_timeout(explicit: float | None = None) -> float:
    return explicit if explicit is not None else _float_env(ENV_HEARTBEAT_TIMEOUT, DEFAULT_HEARTBEAT_TIMEOUT)


def ui_port() -> int:
    return int(_float_env(ENV_UI_PORT, DEFAULT_UI_PORT))


def quiet() -> bool:
    return os.environ.get(ENV_QUIET, "") not in ("", "0", "false")


def find_config_file(start: str | os.PathLike | None = None) -> Path | None:
    """``.runyard/config.json`` in ``start`` (default cwd) or the nearest parent that has one."""
    from pathlib import Path
    here = Path(start or os.getcwd()).resolve()
    if here.is_file():
        return here
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_DIR / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def default_store_url() -> str:
    """The embedded default: ``./.runyard`` under the current directory."""
    return "file://" + os.path.abspath(DEFAULT_STORE_DIR)


class StoreSettings(NamedTuple):
    url: str
    storage_options: dict[str, Any]
    source: str  # "argument" | "environment" | "config file <path>" | "default"

    def open(self) -> "Store":
        """The store these settings name (imports fsspec: only when a store is really needed)."""
        from .store import Store
        return Store(self.url, **self.storage_options)


def resolve_store(url: str | None = None, storage_options: Mapping[str, Any] | None = None,
                  env: Mapping[str, str] | None = None) -> StoreSettings:
    """Store URL and options by layers: argument > RUNYARD_STORE > nothing (default ./.runyard).

    ``env`` replaces ``os.environ`` (a job's environment, read by the process hosting its
    launcher). The config file layer is explicit (``Workspace.from_config``) as in azureml.
    """
    env = os.environ if env is None else env
    options = dict(storage_options or {})
    env_options = env.get(ENV_STORAGE_OPTIONS)
    if env_options and not options:
        try:
            options = json.loads(env_options)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{ENV_STORAGE_OPTIONS} is not valid JSON: {exc}") from None
    if url:
        return StoreSettings(url, options, "argument")
    if env.get(ENV_STORE):
        return StoreSettings(env[ENV_STORE], options, "environment")
    return StoreSettings(default_store_url(), options, "default")

ENV_HEARTBEAT_INTERVAL = "RUNYARD_HEARTBEAT_INTERVAL"  # seconds, default 5
ENV_CANCEL_GRACE = "RUNYARD_CANCEL_GRACE"              # seconds between SIGTERM and SIGKILL, default 10
ENV_SNAPSHOT_LIMIT_MB = "RUNYARD_SNAPSHOT_LIMIT_MB"    # default 300
ENV_CACHE_DIR = "RUNYARD_CACHE_DIR"                    # default ~/.cache/runyard
DEFAULT_CANCEL_GRACE = 10.0
DEFAULT_SNAPSHOT_LIMIT_MB = 300.0


def heartbeat_interval(env: Mapping[str, str] | None = None) -> float:
    return _float_env(ENV_HEARTBEAT_INTERVAL, DEFAULT_HEARTBEAT_INTERVAL, env)


def cancel_grace(env: Mapping[str, str] | None = None) -> float:
    return _float_env(ENV_CANCEL_GRACE, DEFAULT_CANCEL_GRACE, env)


def snapshot_limit_bytes(explicit_mb: float | None = None) -> int:
    mb = explicit_mb if explicit_mb is not None else _float_env(ENV_SNAPSHOT_LIMIT_MB, DEFAULT_SNAPSHOT_LIMIT_MB)
    return int(mb * 1024 * 1024)


def cache_dir(*parts: str) -> str:
    base = os.environ.get(ENV_CACHE_DIR) or os.path.join(os.path.expanduser("~"), ".cache", "runyard")
    path = os.path.join(base, *parts)
    os.makedirs(path, exist_ok=True)
    return path


def job_identity_env(run_id: str, experiment: str, store_url: str,
                     storage_options: Mapping[str, Any] | None) -> dict[str, str]:
    """The environment a job needs to find its run (the one place it is built)."""
    env = {ENV_RUN_ID: run_id, ENV_EXPERIMENT: experiment, ENV_STORE: store_url}
    if storage_options:
        env[ENV_STORAGE_OPTIONS] = json.dumps(dict(storage_options))
    return env
