"""Hyperparameter sampling: the search-space definitions users write, and the samplers the
sweep controller drives.

The definition (:class:`RandomParameterSampling`, :class:`GridParameterSampling`,
:class:`BayesianParameterSampling`) is a frozen, serialisable description. The controller turns
it into a stateful sampler once per sweep::

    sampler = config.hyperparameter_sampling.create_sampler(seed=7, goal="MINIMIZE")
    batch = sampler.suggest(4)          # up to 4 dicts {name: value}; [] once exhausted
    ...                                 # run the trials
    sampler.observe(batch[0], 0.123)    # final primary metric (None when the trial failed)

Only Bayesian sampling learns from ``observe``; the others ignore it.
"""
from __future__ import annotations

import itertools
import math
import random
from typing import Any, Callable, ClassVar, Mapping, NamedTuple, Protocol

from tracking.errors import ConfigurationError

from .parameters import (Choice, LogUniform, ParameterExpression, QLogUniform, QUniform,
                         RandInt, Scalar, Uniform, _quantize, check_parameter_space,
                         expression_from_dict)
from .policies import PrimaryMetricGoal

Params = dict[str, Scalar]


class ParameterSampler(Protocol):
    """What the sweep controller calls; one instance per sweep, not thread-safe."""

    @property
    def exhausted(self) -> bool:
        """True when ``suggest`` will never return anything again (a finished grid)."""

    def suggest(self, n: int) -> list[Params]:
        """Up to ``n`` new parameter dicts; fewer (or ``[]``) only when the space is exhausted."""

    def observe(self, params: Params, primary_value: float | None) -> None:
        """Report a finished trial's final primary metric; ``None``/NaN for a failed trial."""


class HyperParameterSampling:
    """Base of the three sampling definitions (azureml v1 ``HyperParameterSampling``)."""

    kind: ClassVar[str] = ""

    def __init__(self, parameter_space: dict[str, ParameterExpression],
                 properties: Mapping[str, Any] | None = None) -> None:
        self._space = check_parameter_space(parameter_space)
        self._properties = dict(properties or {})

    @property
    def parameter_space(self) -> dict[str, ParameterExpression]:
        return dict(self._space)

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self._properties)

    @property
    def size(self) -> int | None:
        """Number of distinct configurations when finite and enumerated (grid), else None."""
        return None

    def create_sampler(self, seed: int | None = None,
                       goal: PrimaryMetricGoal | str = PrimaryMetricGoal.MAXIMIZE) -> ParameterSampler:
        raise NotImplementedError  # pragma: no cover

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; rebuild with :func:`sampling_from_dict`."""
        return {"type": self.kind,
                "parameter_space": {n: e.to_dict() for n, e in self._space.items()},
                "properties": dict(self._properties)}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._space!r})"


class _RandomSampler:
    def __init__(self, space: dict[str, ParameterExpression], seed: int | None) -> None:
        self._space = space
        self._rng = random.Random(seed)

    exhausted = False

    def suggest(self, n: int) -> list[Params]:
        return [{name: expr.sample(self._rng) for name, expr in self._space.items()}
                for _ in range(max(n, 0))]

    def observe(self, params: Params, primary_value: float | None) -> None:
        pass


class RandomParameterSampling(HyperParameterSampling):
    """Draw every parameter independently from its expression (any expression kind).

    ``properties={"seed": 42}`` fixes the sequence unless ``create_sampler(seed=...)`` is
    given a seed, which wins. Configurations may repeat when the space is small and discrete.

    Raises:
        ConfigurationError: empty space, bad names or values, non-integer seed.

    Example::

        RandomParameterSampling({"--lr": loguniform(-6, -1), "--batch": choice(16, 32)},
                                properties={"seed": 42})
    """

    kind: ClassVar[str] = "random"

    def __init__(self, parameter_space: dict[str, ParameterExpression],
                 properties: Mapping[str, Any] | None = None) -> None:
        super().__init__(parameter_space, properties)
        seed = self._properties.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigurationError(f"properties['seed'] must be an integer, got {seed!r}")

    def create_sampler(self, seed: int | None = None,
                       goal: PrimaryMetricGoal | str = PrimaryMetricGoal.MAXIMIZE) -> ParameterSampler:
        return _RandomSampler(self._space, seed if seed is not None else self._properties.get("seed"))


class _GridSampler:
    def __init__(self, space: dict[str, Choice], size: int) -> None:
        self._names = list(space)
        self._combos = itertools.product(*(space[name].options for name in self._names))
        self._left = size

    @property
    def exhausted(self) -> bool:
        return self._left == 0

    def suggest(self, n: int) -> list[Params]:
        batch = [dict(zip(self._names, combo))
                 for combo in itertools.islice(self._combos, max(min(n, self._left), 0))]
        self._left -= len(batch)
        return batch

    def observe(self, params: Params, primary_value: float | None) -> None:
        pass


class GridParameterSampling(HyperParameterSampling):
    """Enumerate the cartesian product of ``choice`` parameters exactly once each.

    Order is deterministic: parameters in the order of the dict, the last one varying
    fastest (``itertools.product``). ``suggest`` returns fewer than asked at the end and ``[]``
    afterwards.

    Raises:
        ConfigurationError: a parameter that is not a ``choice``.

    Example::

        GridParameterSampling({"--lr": choice(0.01, 0.1), "--layers": choice(2, 3)})  # 4 runs
    """

    kind: ClassVar[str] = "grid"

    def __init__(self, parameter_space: dict[str, ParameterExpression]) -> None:
        super().__init__(parameter_space)
        for name, expr in self._space.items():
            if not isinstance(expr, Choice):
                raise ConfigurationError(
                    f"GridParameterSampling supports only choice(); parameter {name!r} is "
                    f"{expr.kind}(...). Use RandomParameterSampling or BayesianParameterSampling.")

    @property
    def size(self) -> int:
        return math.prod(len(expr.options) for expr in self._space.values())  # type: ignore[attr-defined]

    def create_sampler(self, seed: int | None = None,
                       goal: PrimaryMetricGoal | str = PrimaryMetricGoal.MAXIMIZE) -> ParameterSampler:
        return _GridSampler(self._space, self.size)  # type: ignore[arg-type]


# --- Bayesian (Optuna TPE) ---------------------------------------------------------------

class _Axis(NamedTuple):
    """One parameter as Optuna sees it: a distribution plus conversions to/from user values."""

    distribution: Any
    to_value: Callable[[Any], Scalar]
    from_value: Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _log_axis(dist: Any, expr: LogUniform | QLogUniform) -> _Axis:
    if isinstance(expr, LogUniform):
        return _Axis(dist, _same, _same)
    low, high = dist.low, dist.high
    return _Axis(dist, lambda x: _quantize(x, expr.q),
                 lambda v: min(max(float(v), low), high))


def _optuna_axis(expr: ParameterExpression) -> _Axis:
    from optuna import distributions as dists

    if isinstance(expr, Choice):
        return _Axis(dists.CategoricalDistribution(expr.options), _same, _same)
    if isinstance(expr, RandInt):
        return _Axis(dists.IntDistribution(0, expr.upper - 1), int, int)
    if isinstance(expr, Uniform):
        return _Axis(dists.FloatDistribution(expr.min_value, expr.max_value), _same, float)
    if isinstance(expr, QUniform):
        # round(uniform(lo, hi) / q) * q takes the values n * q for n in [round(lo/q), round(hi/q)].
        q = expr.q
        dist = dists.IntDistribution(round(expr.min_value / q), round(expr.max_value / q))
        return _Axis(dist, lambda n: _quantize(n * q, q), lambda v: round(v / q))
    if isinstance(expr, (LogUniform, QLogUniform)):
        # exp(uniform(a, b)) is log-uniform on [e**a, e**b]: exactly Optuna's log=True.
        dist = dists.FloatDistribution(math.exp(expr.min_value), math.exp(expr.max_value), log=True)
        return _log_axis(dist, expr)
    raise ConfigurationError(f"BayesianParameterSampling cannot model {expr.kind}()")  # pragma: no cover


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise ConfigurationError(
            "BayesianParameterSampling needs optuna: pip install 'runyard[sweep]'") from exc
    return optuna


class _BayesianSampler:
    def __init__(self, space: dict[str, ParameterExpression], seed: int | None,
                 goal: PrimaryMetricGoal) -> None:
        self._optuna = _import_optuna()
        self._axes = {name: _optuna_axis(expr) for name, expr in space.items()}
        # create_study logs "A new study created in memory" at INFO into the user's notebook;
        # quiet Optuna for this call only.
        verbosity = self._optuna.logging.get_verbosity()
        self._optuna.logging.set_verbosity(self._optuna.logging.WARNING)
        try:
            self._study = self._optuna.create_study(
                direction="maximize" if goal is PrimaryMetricGoal.MAXIMIZE else "minimize",
                sampler=self._optuna.samplers.TPESampler(seed=seed))
        finally:
            self._optuna.logging.set_verbosity(verbosity)
        self._pending: list[tuple[Params, Any]] = []

    exhausted = False

    def suggest(self, n: int) -> list[Params]:
        batch = []
        distributions = {name: axis.distribution for name, axis in self._axes.items()}
        for _ in range(max(n, 0)):
            trial = self._study.ask(distributions)
            params = {name: axis.to_value(trial.params[name]) for name, axis in self._axes.items()}
            self._pending.append((params, trial))
            batch.append(dict(params))
        return batch

    def observe(self, params: Params, primary_value: float | None) -> None:
        failed = primary_value is None or math.isnan(primary_value)
        for i, (pending_params, trial) in enumerate(self._pending):
            if pending_params == params:
                del self._pending[i]
                state = self._optuna.trial.TrialState.FAIL if failed else None
                self._study.tell(trial, None if failed else float(primary_value), state=state)
                return
        if not failed:  # suggested by an earlier process (restart, warm start): replay it
            self._study.add_trial(self._replayed_trial(params, float(primary_value)))

    def _replayed_trial(self, params: Params, value: float) -> Any:
        missing = set(self._axes) - set(params)
        if missing:
            raise ConfigurationError(f"observed parameters lack {sorted(missing)}")
        return self._optuna.trial.create_trial(
            params={name: axis.from_value(params[name]) for name, axis in self._axes.items()},
            distributions={name: axis.distribution for name, axis in self._axes.items()},
            value=value)


_BAYESIAN_KINDS = (Choice, RandInt, Uniform, QUniform, LogUniform, QLogUniform)


class BayesianParameterSampling(HyperParameterSampling):
    """Suggest parameters with Optuna's TPE sampler, learning from finished trials.

    Supports ``choice``, ``randint``, ``uniform``, ``quniform``, ``loguniform`` and
    ``qloguniform``. The first ~10 suggestions are random (TPE start-up); suggestions asked
    for in parallel before any result arrives are not informed by each other's outcome, so
    keep ``max_concurrent_runs`` small. Early-termination policies are refused by
    :class:`~runner.hyperdrive.HyperDriveConfig`, as in Azure.

    Raises:
        ConfigurationError: a ``normal``/``qnormal``/``lognormal``/``qlognormal`` parameter.

    Example::

        BayesianParameterSampling({"--lr": uniform(0.01, 0.1), "--depth": choice(3, 5, 7)})
    """

    kind: ClassVar[str] = "bayesian"

    def __init__(self, parameter_space: dict[str, ParameterExpression]) -> None:
        super().__init__(parameter_space)
        for name, expr in self._space.items():
            if not isinstance(expr, _BAYESIAN_KINDS):
                raise ConfigurationError(
                    f"BayesianParameterSampling cannot model {expr.kind}() (parameter {name!r}); "
                    "use choice, randint, uniform, quniform, loguniform or qloguniform, "
                    "or RandomParameterSampling.")

    def create_sampler(self, seed: int | None = None,
                       goal: PrimaryMetricGoal | str = PrimaryMetricGoal.MAXIMIZE) -> ParameterSampler:
        return _BayesianSampler(self._space, seed, PrimaryMetricGoal.parse(goal))


_SAMPLINGS: dict[str, type[HyperParameterSampling]] = {
    cls.kind: cls for cls in (RandomParameterSampling, GridParameterSampling,
                              BayesianParameterSampling)
}


def sampling_from_dict(data: Mapping[str, Any]) -> HyperParameterSampling:
    """Rebuild a sampling definition from :meth:`HyperParameterSampling.to_dict` output.

    Raises:
        ConfigurationError: unknown type or an invalid space.
    """
    cls = _SAMPLINGS.get(data.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ConfigurationError(
            f"unknown sampling type {data.get('type')!r}; known: {sorted(_SAMPLINGS)}")
    space = {name: expression_from_dict(expr)
             for name, expr in dict(data.get("parameter_space") or {}).items()}
    if cls is RandomParameterSampling:
        return cls(space, data.get("properties") or None)
    return cls(space)  # type: ignore[call-arg]
