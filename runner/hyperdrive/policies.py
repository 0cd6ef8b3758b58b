"""Early-termination policies (azureml v1 names and documented semantics), as pure functions.

Vocabulary
    *interval* ``k``: the k-th report of the primary metric by a trial, 1-based. A trial's
    value "at interval k" is ``reports[trial][k - 1]``.
    *evaluated intervals*: ``k`` with ``k % evaluation_interval == 0`` and
    ``k >= delay_evaluation`` (Azure: "the policy applies every multiple of evaluation_interval
    that is greater than or equal to delay_evaluation"; with ``delay_evaluation=200`` "the first
    time the policy will be applied is at interval 200").
    *pool at k*: every trial that has reported at least ``k`` values, the candidate included,
    finished and cancelled trials included (Azure compares a young run with the
    "corresponding (and earlier) performance of older runs").

The controller calls :meth:`EarlyTerminationPolicy.evaluate` each time new reports arrive,
passing the same :class:`PolicyState` every time; the state remembers which (trial, interval)
pairs were evaluated and which trials were cancelled, so each pair is judged exactly once, with
the pool known at that moment, and a cancelled trial is never reported twice.

Non-finite values: NaN reports never cause a cancel and are left out of pools; +/-inf compare
as numbers (a loss of +inf is worse than any finite loss).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, ClassVar, Hashable, Mapping, Sequence

from tracking.errors import ConfigurationError


class PrimaryMetricGoal(str, Enum):
    """Whether the primary metric is to be maximised or minimised."""

    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"

    @classmethod
    def parse(cls, value: "PrimaryMetricGoal | str") -> "PrimaryMetricGoal":
        """Accept the enum or its name in any case (``"maximize"``).

        Raises:
            ConfigurationError: anything else.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        raise ConfigurationError(f"primary_metric_goal must be MAXIMIZE or MINIMIZE, got {value!r}")

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b``."""
        return a > b if self is PrimaryMetricGoal.MAXIMIZE else a < b

    def best(self, values: Sequence[float]) -> float:
        return max(values) if self is PrimaryMetricGoal.MAXIMIZE else min(values)


@dataclass(frozen=True)
class Decision:
    """One policy verdict: cancel ``trial_id`` because of its value at ``interval``."""

    trial_id: Hashable
    interval: int
    metric_value: float
    threshold: float
    reason: str
    action: str = "cancel"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PolicyState:
    """What a policy has already done in one sweep; pass the same object to every ``evaluate``.

    ``evaluated`` holds (trial_id, interval) pairs already judged, ``cancelled`` the trials
    already given a cancel decision. ``to_dict``/``from_dict`` let a restarted controller go on
    (trial ids must then be strings).
    """

    evaluated: set[tuple[Hashable, int]] = field(default_factory=set)
    cancelled: set[Hashable] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {"evaluated": sorted([t, k] for t, k in self.evaluated),
                "cancelled": sorted(self.cancelled)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PolicyState":
        return cls(evaluated={(t, int(k)) for t, k in data.get("evaluated", [])},
                   cancelled=set(data.get("cancelled", [])))


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _fmt(value: float) -> str:
    return f"{value:.6g}"


Reports = Mapping[Hashable, Sequence[float]]


@dataclass(frozen=True)
class _Series:
    """One trial's reports with per-interval running average and best-so-far (index k-1),
    computed once per ``evaluate`` call so judging a pair costs O(trials), not O(reports)."""

    values: list[float]
    averages: list[float]
    bests: list[float]

    @classmethod
    def of(cls, reports: Sequence[float], goal: PrimaryMetricGoal) -> "_Series":
        values, averages, bests = [float(v) for v in reports], [], []
        total, count, best = 0.0, 0, math.nan
        for v in values:
            if not math.isnan(v):
                total, count = total + v, count + 1
                best = v if math.isnan(best) or goal.better(v, best) else best
            averages.append(total / count if count else math.nan)
            bests.append(best)
        return cls(values, averages, bests)


Table = Mapping[Hashable, _Series]


def _pool_at(table: Table, k: int) -> list[_Series]:
    """Trials that reached interval k with a finite value there."""
    return [s for s in table.values() if len(s.values) >= k and not math.isnan(s.values[k - 1])]


class EarlyTerminationPolicy:
    """Base of every policy: the interval schedule and the evaluate loop.

    Subclasses implement ``_judge(trial_id, k, reports, goal, metric_name)`` returning a
    :class:`Decision` or ``None``.
    """

    kind: ClassVar[str] = ""
    evaluation_interval: int = 1
    delay_evaluation: int = 0

    def _check_schedule(self) -> None:
        _check_int("evaluation_interval", self.evaluation_interval, 1)
        _check_int("delay_evaluation", self.delay_evaluation, 0)

    def is_evaluation_interval(self, k: int) -> bool:
        """Whether the policy is applied at interval ``k`` (1-based report index)."""
        return k >= 1 and k % self.evaluation_interval == 0 and k >= self.delay_evaluation

    def evaluate(self, reports: Reports, goal: PrimaryMetricGoal | str,
                 state: PolicyState | None = None, *,
                 metric_name: str = "metric") -> list[Decision]:
        """Judge every (trial, evaluated interval) pair not yet in ``state``; return the cancels.

        ``reports[trial_id]`` is the ordered list of primary-metric values the trial reported so
        far. ``state`` is updated in place (pass ``None`` to judge everything afresh). Trials
        are visited in ``str(trial_id)`` order and intervals ascending, so the result is
        deterministic; a trial gets at most one Decision, at its first failing interval.

        Example::

            state = PolicyState()
            policy.evaluate({"t1": [0.5, 0.6], "t2": [0.1, 0.1]}, "MAXIMIZE", state)
        """
        goal = PrimaryMetricGoal.parse(goal)
        state = PolicyState() if state is None else state
        table = {t: _Series.of(values, goal) for t, values in reports.items()}
        decisions = []
        for trial_id in sorted(table, key=str):
            if trial_id in state.cancelled:
                continue
            decision = self._evaluate_trial(trial_id, table, goal, state, metric_name)
            if decision is not None:
                state.cancelled.add(trial_id)
                decisions.append(decision)
        return decisions

    def _evaluate_trial(self, trial_id: Hashable, table: Table, goal: PrimaryMetricGoal,
                        state: PolicyState, metric_name: str) -> Decision | None:
        for k in range(1, len(table[trial_id].values) + 1):
            if not self.is_evaluation_interval(k) or (trial_id, k) in state.evaluated:
                continue
            state.evaluated.add((trial_id, k))
            if math.isnan(table[trial_id].values[k - 1]):
                continue
            decision = self._judge(trial_id, k, table, goal, metric_name)
            if decision is not None:
                return decision
        return None

    def _judge(self, trial_id: Hashable, k: int, table: Table, goal: PrimaryMetricGoal,
               metric_name: str) -> Decision | None:
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; rebuild with :func:`policy_from_dict`."""
        return {"type": self.kind, **asdict(self)}  # type: ignore[call-overload]


@dataclass(frozen=True)
class BanditPolicy(EarlyTerminationPolicy):
    """Cancel a trial whose value at an interval is not within the slack of the best trial's
    value at that same interval.

    MAXIMIZE: cancel if ``value < best / (1 + slack_factor)`` or ``value < best - slack_amount``.
    MINIMIZE: cancel if ``value > best * (1 + slack_factor)`` or ``value > best + slack_amount``.
    (For a negative ``best`` the factor is applied the other way round, so the allowed
    region always contains ``best``; for positive metrics this is exactly Azure's rule.)

    Raises:
        ConfigurationError: not exactly one of slack_factor / slack_amount, a negative slack,
            or a bad evaluation_interval / delay_evaluation.

    Example::

        BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=5)
    """

    evaluation_interval: int = 1
    slack_factor: float | None = None
    slack_amount: float | None = None
    delay_evaluation: int = 0
    kind: ClassVar[str] = "bandit"

    def __post_init__(self) -> None:
        self._check_schedule()
        if (self.slack_factor is None) == (self.slack_amount is None):
            raise ConfigurationError("BanditPolicy needs exactly one of slack_factor or slack_amount")
        slack = self.slack_factor if self.slack_factor is not None else self.slack_amount
        if isinstance(slack, bool) or not isinstance(slack, (int, float)) or not slack >= 0:
            raise ConfigurationError(f"BanditPolicy slack must be a number >= 0, got {slack!r}")

    def threshold(self, best: float, goal: PrimaryMetricGoal) -> tuple[float, str]:
        """The worst value still allowed given the best value, and how it was computed."""
        sign = 1 if goal is PrimaryMetricGoal.MINIMIZE else -1
        if self.slack_amount is not None:
            op = "+" if sign > 0 else "-"
            return best + sign * self.slack_amount, f"{_fmt(best)} {op} {_fmt(self.slack_amount)}"
        widen_by_multiplying = (sign > 0) == (best >= 0)
        factor = 1 + self.slack_factor  # type: ignore[operator]
        if widen_by_multiplying:
            return best * factor, f"{_fmt(best)} * (1+{_fmt(self.slack_factor)})"  # type: ignore[arg-type]
        return best / factor, f"{_fmt(best)} / (1+{_fmt(self.slack_factor)})"  # type: ignore[arg-type]

    def _judge(self, trial_id, k, table, goal, metric_name):
        best = goal.best([s.values[k - 1] for s in _pool_at(table, k)])
        limit, formula = self.threshold(best, goal)
        value = table[trial_id].values[k - 1]
        if not goal.better(limit, value):
            return None
        op = ">" if goal is PrimaryMetricGoal.MINIMIZE else "<"
        reason = (f"bandit: {metric_name} {_fmt(value)} {op} best {formula} = {_fmt(limit)} "
                  f"at interval {k}")
        return Decision(trial_id, k, value, limit, reason)


@dataclass(frozen=True)
class MedianStoppingPolicy(EarlyTerminationPolicy):
    """Cancel a trial at interval N if its best value over intervals 1..N is worse than the
    median, over the pool at N, of each trial's running average over intervals 1..N.

    Raises:
        ConfigurationError: bad evaluation_interval / delay_evaluation.

    Example::

        MedianStoppingPolicy(evaluation_interval=1, delay_evaluation=5)
    """

    evaluation_interval: int = 1
    delay_evaluation: int = 0
    kind: ClassVar[str] = "median_stopping"

    def __post_init__(self) -> None:
        self._check_schedule()

    def _judge(self, trial_id, k, table, goal, metric_name):
        pool = _pool_at(table, k)
        median = statistics.median([s.averages[k - 1] for s in pool])
        best = table[trial_id].bests[k - 1]
        if not goal.better(median, best):
            return None
        op = ">" if goal is PrimaryMetricGoal.MINIMIZE else "<"
        reason = (f"median stopping: best {metric_name} so far {_fmt(best)} {op} median "
                  f"{_fmt(median)} of the running averages of {len(pool)} trials at interval {k}")
        return Decision(trial_id, k, best, median, reason)


@dataclass(frozen=True)
class TruncationSelectionPolicy(EarlyTerminationPolicy):
    """At each evaluated interval N, cancel trials in the lowest ``truncation_percentage``% of
    the pool at N, ranked by their value at N.

    The cut is ``floor(len(pool) * truncation_percentage / 100)`` trials. A trial is in it
    when the number of pool trials whose value at N is worse than *or equal to* its own
    (itself included) is at most the cut, so ties never push the cut past the percentage.

    Raises:
        ConfigurationError: truncation_percentage not an integer in 1..99, or a bad
            evaluation_interval / delay_evaluation.

    Example::

        TruncationSelectionPolicy(truncation_percentage=20, evaluation_interval=1, delay_evaluation=5)
    """

    truncation_percentage: int
    evaluation_interval: int = 1
    delay_evaluation: int = 0
    kind: ClassVar[str] = "truncation_selection"

    def __post_init__(self) -> None:
        self._check_schedule()
        _check_int("truncation_percentage", self.truncation_percentage, 1)
        if self.truncation_percentage > 99:
            raise ConfigurationError(
                f"truncation_percentage must be 1..99, got {self.truncation_percentage!r}")

    def _judge(self, trial_id, k, table, goal, metric_name):
        values = sorted((s.values[k - 1] for s in _pool_at(table, k)),
                        reverse=goal is PrimaryMetricGoal.MINIMIZE)  # worst first
        cut = len(values) * self.truncation_percentage // 100
        value = table[trial_id].values[k - 1]
        rank_from_bottom = sum(1 for v in values if not goal.better(v, value))
        if cut == 0 or rank_from_bottom > cut:
            return None
        reason = (f"truncation selection: {metric_name} {_fmt(value)} is among the worst "
                  f"{self.truncation_percentage}% ({cut} of {len(values)} trials) at interval {k}")
        return Decision(trial_id, k, value, values[cut - 1], reason)


@dataclass(frozen=True)
class NoTerminationPolicy(EarlyTerminationPolicy):
    """Never cancels anything (same as passing ``policy=None``)."""

    kind: ClassVar[str] = "no_termination"

    def is_evaluation_interval(self, k: int) -> bool:
        return False


_POLICIES: dict[str, type[EarlyTerminationPolicy]] = {
    cls.kind: cls for cls in (BanditPolicy, MedianStoppingPolicy, TruncationSelectionPolicy,
                              NoTerminationPolicy)
}


def policy_from_dict(data: Mapping[str, Any] | None) -> EarlyTerminationPolicy:
    """Rebuild a policy from ``to_dict()`` output (``None`` gives :class:`NoTerminationPolicy`).

    Raises:
        ConfigurationError: unknown type or bad arguments.
    """
    if data is None:
        return NoTerminationPolicy()
    args = dict(data)
    kind = args.pop("type", None)
    cls = _POLICIES.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise ConfigurationError(f"unknown policy type {kind!r}; known: {sorted(_POLICIES)}")
    try:
        return cls(**args)
    except TypeError as exc:
        raise ConfigurationError(f"bad arguments for {kind} policy: {args!r}") from exc
