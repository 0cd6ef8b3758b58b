"""The one exception tree of runyard.

::

    RunyardError                      base of everything runyard raises on purpose
    ├── UserInputError (ValueError)   bad argument / name / config; message says what to do
    │   ├── InvalidNameError          metric, file, tag or experiment name refused
    │   ├── InvalidMetricValueError   value that cannot be stored (object, 10 MB string, ...)
    │   ├── ConfigurationError        ScriptRunConfig / Environment / Workspace config invalid
    │   └── SnapshotError             source folder missing, too large, unreadable
    ├── StoreError                    anything about the central store
    │   ├── StoreUnavailableError     cannot reach the store (network, credentials, permissions)
    │   ├── RecordNotFoundError       no such run / experiment / file in a reachable store
    │   │   └── RunNotFoundError
    │   └── PathEscapeError (InvalidNameError)  a key that would leave the store root
    ├── RunStateError                 operation not allowed in the run's current state
    │   └── IllegalTransitionError    e.g. Completed -> Running
    ├── ImmutablePropertyError        add_properties with a changed value
    ├── RunFailedError                wait_for_completion(raise_on_error=True) on a failed run
    ├── NoRunContextError             Run.get_context(allow_offline=False) outside a job
    ├── TargetError                   compute targets
    │   ├── UnknownTargetError        name not in the registry (lists known names)
    │   ├── TargetUnavailableError    engine / cluster cannot be reached (says which address)
    │   └── ImageBuildError           environment image build failed (carries the build log tail)
    └── MetricDeliveryError           flush/complete could not deliver every batch in time

Dependencies' errors are translated at the boundary with ``raise ... from exc``.
"""
from __future__ import annotations


class RunyardError(Exception):
    """Base class of every error runyard raises on purpose."""


class UserInputError(RunyardError, ValueError):
    """An argument, name or configuration the user gave cannot be used."""


class InvalidNameError(UserInputError):
    """A metric, file, tag or experiment name was refused."""


class InvalidMetricValueError(UserInputError, TypeError):
    """A metric value cannot be stored."""


class ConfigurationError(UserInputError):
    """A run configuration, environment or workspace setting is invalid."""


class SnapshotError(UserInputError):
    """The source folder cannot be snapshotted (missing, too large, unreadable)."""


class StoreError(RunyardError):
    """Something went wrong with the central store."""

    def __init__(self, message: str, *, url: str | None = None, key: str | None = None):
        super().__init__(message)
        self.url = url
        self.key = key


class StoreUnavailableError(StoreError):
    """The store cannot be reached (network, endpoint, credentials, permissions)."""


class RecordNotFoundError(StoreError, LookupError):
    """The store answered, but the requested record does not exist."""


class RunNotFoundError(RecordNotFoundError):
    """No run with this id exists in the store."""

    def __init__(self, run_id: str, *, url: str | None = None):
        super().__init__(f"run {run_id!r} not found in store {url}", url=url, key=run_id)
        self.run_id = run_id


class PathEscapeError(InvalidNameError):
    """A name would read or write outside the store root."""


class RunStateError(RunyardError):
    """The operation is not allowed in the run's current state."""


class IllegalTransitionError(RunStateError):
    """A status transition that the lifecycle does not allow."""

    def __init__(self, run_id: str, current: str, requested: str):
        super().__init__(f"run {run_id}: cannot go from {current} to {requested}")
        self.run_id, self.current, self.requested = run_id, current, requested


class ImmutablePropertyError(RunyardError, ValueError):
    """A property was already set to a different value; properties never change."""


class RunFailedError(RunyardError):
    """A waited-for run ended Failed or Canceled."""

    def __init__(self, run_id: str, status: str, *, exit_code: int | None = None,
                 signal: str | None = None, stderr_tail: str = "", message: str = ""):
        text = message or f"run {run_id} ended {status}"
        if exit_code is not None:
            text += f" (exit code {exit_code})"
        if signal:
            text += f" (signal {signal})"
        if stderr_tail:
            text += "\n--- stderr tail ---\n" + stderr_tail
        super().__init__(text)
        self.run_id, self.status, self.exit_code = run_id, status, exit_code
        self.signal, self.stderr_tail = signal, stderr_tail


class NoRunContextError(RunyardError):
    """Run.get_context(allow_offline=False) was called outside a submitted job."""


class TargetError(RunyardError):
    """A compute target failed."""


class UnknownTargetError(TargetError, ValueError):
    """No compute target is registered under this name."""


class TargetUnavailableError(TargetError):
    """The compute target's engine or cluster cannot be reached."""

    def __init__(self, message: str, *, address: str | None = None):
        super().__init__(message)
        self.address = address


class ImageBuildError(TargetError):
    """Building the job image for an environment failed."""

    def __init__(self, message: str, *, log_tail: str = ""):
        super().__init__(message + (("\n--- build log tail ---\n" + log_tail) if log_tail else ""))
        self.log_tail = log_tail


class MetricDeliveryError(RunyardError):
    """Some metric batches could not be delivered to the store before the timeout."""

    def __init__(self, message: str, *, pending_files: list[str] | None = None):
        super().__init__(message)
        self.pending_files = pending_files or []
