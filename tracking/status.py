"""Run status lifecycle: one ``str`` Enum with its rules on it."""
from __future__ import annotations

from enum import Enum

from .errors import IllegalTransitionError


class RunStatus(str, Enum):
    NOT_STARTED = "NotStarted"
    QUEUED = "Queued"
    PREPARING = "Preparing"
    STARTING = "Starting"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    CANCEL_REQUESTED = "CancelRequested"
    NOT_RESPONDING = "NotResponding"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"

    def __str__(self) -> str:  # print(status) shows "Completed", as Azure does
        return self.value

    def is_terminal(self) -> bool:
        return self in _TERMINAL

    def rank(self) -> int:
        return _ORDER.index(self)

    def can_go_to(self, new: "RunStatus") -> bool:
        if self.is_terminal():
            return False
        if new.is_terminal() or new in (RunStatus.CANCEL_REQUESTED, RunStatus.NOT_RESPONDING):
            return True
        if self in (RunStatus.CANCEL_REQUESTED, RunStatus.NOT_RESPONDING):
            # a late heartbeat or launcher step after these is fine, going forward only
            return new in (RunStatus.RUNNING, RunStatus.FINALIZING)
        return new.rank() > self.rank()

    def check_transition(self, new: "RunStatus", run_id: str = "?") -> None:
        if not self.can_go_to(new):
            raise IllegalTransitionError(run_id, self.value, new.value)

    @classmethod
    def parse(cls, value: "str | RunStatus") -> "RunStatus":
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown run status {value!r}; expected one of {names}") from None


_ORDER = [RunStatus.NOT_STARTED, RunStatus.QUEUED, RunStatus.PREPARING, RunStatus.STARTING,
          RunStatus.RUNNING, RunStatus.CANCEL_REQUESTED, RunStatus.NOT_RESPONDING,
          RunStatus.FINALIZING, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED]
_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})
