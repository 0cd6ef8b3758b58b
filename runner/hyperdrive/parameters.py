"""Parameter expressions of a HyperDrive search space (azureml v1 names and semantics).

Each expression is a small frozen object that can draw a value (``sample(rng)`` with a
``random.Random``) and serialise itself (``to_dict()`` / :func:`expression_from_dict`) so a
sweep spec can be stored and rebuilt in another process.

Semantics follow Azure ML v1: the ``log*`` expressions take their bounds / parameters as
*natural-log exponents* (``loguniform(-6, -1)`` draws from ``[e**-6, e**-1]``), and the ``q*``
expressions return ``round(x / q) * q``.

Example::

    space = {"--lr": loguniform(-6, -1), "--layers": choice(2, 3, 4), "batch": quniform(16, 128, 16)}
    value = space["--lr"].sample(random.Random(0))
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Union

from tracking.errors import ConfigurationError

Scalar = Union[str, int, float, bool, None]
_SCALARS = (str, int, float, bool, type(None))


def _quantize(value: float, q: float) -> float:
    # ``round(x / q) * q`` leaves binary noise (0.30000000000000004); 12 significant
    # digits keeps the value a clean command-line argument without changing its meaning.
    return float(f"{round(value / q) * q:.12g}")


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number, got {value!r}")
    return value


def _check_positive(name: str, value: Any) -> float:
    if _check_number(name, value) <= 0:
        raise ConfigurationError(f"{name} must be > 0, got {value!r}")
    return value


def _check_range(kind: str, low: float, high: float) -> None:
    _check_number(f"{kind} min_value", low)
    _check_number(f"{kind} max_value", high)
    if not low < high:
        raise ConfigurationError(f"{kind}: min_value must be < max_value, got {low!r} >= {high!r}")


class ParameterExpression:
    """Base of every expression: ``sample(rng)`` draws one value, ``to_dict()`` serialises."""

    kind: ClassVar[str] = ""

    def sample(self, rng: random.Random) -> Scalar:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, e.g. ``{"type": "uniform", "min_value": 0.0, "max_value": 1.0}``."""
        args = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        if isinstance(self, Choice):
            args["options"] = list(self.options)
        return {"type": self.kind, **args}


@dataclass(frozen=True)
class Choice(ParameterExpression):
    """A value drawn uniformly from a fixed list of options (the only kind grid sampling takes)."""

    options: tuple[Scalar, ...]
    kind: ClassVar[str] = "choice"

    def __post_init__(self) -> None:
        if not self.options:
            raise ConfigurationError("choice() needs at least one option")
        for option in self.options:
            if not isinstance(option, _SCALARS):
                raise ConfigurationError(
                    f"choice() options must be str/int/float/bool/None, got {option!r}")

    def sample(self, rng: random.Random) -> Scalar:
        return self.options[rng.randrange(len(self.options))]


@dataclass(frozen=True)
class RandInt(ParameterExpression):
    """A random integer in ``[0, upper)``."""

    upper: int
    kind: ClassVar[str] = "randint"

    def __post_init__(self) -> None:
        if isinstance(self.upper, bool) or not isinstance(self.upper, int) or self.upper < 1:
            raise ConfigurationError(f"randint(upper) needs an integer upper >= 1, got {self.upper!r}")

    def sample(self, rng: random.Random) -> int:
        return rng.randrange(self.upper)


@dataclass(frozen=True)
class Uniform(ParameterExpression):
    """A float uniformly distributed in ``[min_value, max_value]``."""

    min_value: float
    max_value: float
    kind: ClassVar[str] = "uniform"

    def __post_init__(self) -> None:
        _check_range(self.kind, self.min_value, self.max_value)

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.min_value, self.max_value)


@dataclass(frozen=True)
class QUniform(ParameterExpression):
    """``round(uniform(min_value, max_value) / q) * q``."""

    min_value: float
    max_value: float
    q: float
    kind: ClassVar[str] = "quniform"

    def __post_init__(self) -> None:
        _check_range(self.kind, self.min_value, self.max_value)
        _check_positive("quniform q", self.q)

    def sample(self, rng: random.Random) -> float:
        return _quantize(rng.uniform(self.min_value, self.max_value), self.q)


@dataclass(frozen=True)
class LogUniform(ParameterExpression):
    """``exp(uniform(min_value, max_value))``: the bounds are natural-log exponents."""

    min_value: float
    max_value: float
    kind: ClassVar[str] = "loguniform"

    def __post_init__(self) -> None:
        _check_range(self.kind, self.min_value, self.max_value)

    def sample(self, rng: random.Random) -> float:
        return math.exp(rng.uniform(self.min_value, self.max_value))


@dataclass(frozen=True)
class QLogUniform(ParameterExpression):
    """``round(exp(uniform(min_value, max_value)) / q) * q``."""

    min_value: float
    max_value: float
    q: float
    kind: ClassVar[str] = "qloguniform"

    def __post_init__(self) -> None:
        _check_range(self.kind, self.min_value, self.max_value)
        _check_positive("qloguniform q", self.q)

    def sample(self, rng: random.Random) -> float:
        return _quantize(math.exp(rng.uniform(self.min_value, self.max_value)), self.q)


@dataclass(frozen=True)
class Normal(ParameterExpression):
    """A float drawn from a normal distribution with mean ``mu`` and deviation ``sigma``."""

    mu: float
    sigma: float
    kind: ClassVar[str] = "normal"

    def __post_init__(self) -> None:
        _check_number("normal mu", self.mu)
        _check_positive("normal sigma", self.sigma)

    def sample(self, rng: random.Random) -> float:
        return rng.gauss(self.mu, self.sigma)


@dataclass(frozen=True)
class QNormal(ParameterExpression):
    """``round(normal(mu, sigma) / q) * q``."""

    mu: float
    sigma: float
    q: float
    kind: ClassVar[str] = "qnormal"

    def __post_init__(self) -> None:
        _check_number("qnormal mu", self.mu)
        _check_positive("qnormal sigma", self.sigma)
        _check_positive("qnormal q", self.q)

    def sample(self, rng: random.Random) -> float:
        return _quantize(rng.gauss(self.mu, self.sigma), self.q)


@dataclass(frozen=True)
class LogNormal(ParameterExpression):
    """``exp(normal(mu, sigma))``: mu and sigma describe the natural log of the value."""

    mu: float
    sigma: float
    kind: ClassVar[str] = "lognormal"

    def __post_init__(self) -> None:
        _check_number("lognormal mu", self.mu)
        _check_positive("lognormal sigma", self.sigma)

    def sample(self, rng: random.Random) -> float:
        return math.exp(rng.gauss(self.mu, self.sigma))


@dataclass(frozen=True)
class QLogNormal(ParameterExpression):
    """``round(exp(normal(mu, sigma)) / q) * q``."""

    mu: float
    sigma: float
    q: float
    kind: ClassVar[str] = "qlognormal"

    def __post_init__(self) -> None:
        _check_number("qlognormal mu", self.mu)
        _check_positive("qlognormal sigma", self.sigma)
        _check_positive("qlognormal q", self.q)

    def sample(self, rng: random.Random) -> float:
        return _quantize(math.exp(rng.gauss(self.mu, self.sigma)), self.q)


_KINDS: dict[str, type[ParameterExpression]] = {
    cls.kind: cls for cls in (Choice, RandInt, Uniform, QUniform, LogUniform, QLogUniform,
                              Normal, QNormal, LogNormal, QLogNormal)
}


# --- azureml v1 factory functions -------------------------------------------------------

def choice(*options: Any) -> Choice:
    """Choose among ``options``; ``choice(1, 2, 3)``, ``choice([1, 2, 3])`` and ``choice(range(3))``
    are the same, as in Azure."""
    if len(options) == 1 and isinstance(options[0], (list, tuple, range)):
        options = tuple(options[0])
    return Choice(tuple(options))


def randint(upper: int) -> RandInt:
    """Random integer in ``[0, upper)``."""
    return RandInt(upper)


def uniform(min_value: float, max_value: float) -> Uniform:
    """Uniform float in ``[min_value, max_value]``."""
    return Uniform(min_value, max_value)


def quniform(min_value: float, max_value: float, q: float) -> QUniform:
    """``round(uniform(min_value, max_value) / q) * q``."""
    return QUniform(min_value, max_value, q)


def loguniform(min_value: float, max_value: float) -> LogUniform:
    """``exp(uniform(min_value, max_value))`` -- bounds are natural-log exponents."""
    return LogUniform(min_value, max_value)


def qloguniform(min_value: float, max_value: float, q: float) -> QLogUniform:
    """``round(exp(uniform(min_value, max_value)) / q) * q``."""
    return QLogUniform(min_value, max_value, q)


def normal(mu: float, sigma: float) -> Normal:
    """Normal float with mean ``mu`` and standard deviation ``sigma``."""
    return Normal(mu, sigma)


def qnormal(mu: float, sigma: float, q: float) -> QNormal:
    """``round(normal(mu, sigma) / q) * q``."""
    return QNormal(mu, sigma, q)


def lognormal(mu: float, sigma: float) -> LogNormal:
    """``exp(normal(mu, sigma))``."""
    return LogNormal(mu, sigma)


def qlognormal(mu: float, sigma: float, q: float) -> QLogNormal:
    """``round(exp(normal(mu, sigma)) / q) * q``."""
    return QLogNormal(mu, sigma, q)


def expression_from_dict(data: dict[str, Any]) -> ParameterExpression:
    """Rebuild an expression from :meth:`ParameterExpression.to_dict` output.

    Raises:
        ConfigurationError: unknown ``type`` or bad arguments.
    """
    args = dict(data)
    kind = args.pop("type", None)
    cls = _KINDS.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise ConfigurationError(
            f"unknown parameter expression type {kind!r}; known: {sorted(_KINDS)}")
    if cls is Choice:
        return Choice(tuple(args.get("options", ())))
    try:
        return cls(**args)
    except TypeError as exc:
        raise ConfigurationError(f"bad arguments for {kind}: {args!r}") from exc


def check_parameter_space(parameter_space: Any) -> dict[str, ParameterExpression]:
    """Validate a ``{name: expression}`` mapping and return a copy (insertion order kept).

    Raises:
        ConfigurationError: empty space, a name that is not a non-empty string, or a value
            that is not a parameter expression.
    """
    if not isinstance(parameter_space, dict) or not parameter_space:
        raise ConfigurationError(
            "parameter_space must be a non-empty dict like {'--lr': uniform(0.01, 0.1)}")
    for name, expr in parameter_space.items():
        if not isinstance(name, str) or not name.strip("-").strip():
            raise ConfigurationError(f"parameter name must be a non-empty string, got {name!r}")
        if not isinstance(expr, ParameterExpression):
            raise ConfigurationError(
                f"parameter {name!r} must be an expression such as choice(...) or "
                f"uniform(...), got {expr!r}")
    return dict(parameter_space)


def to_arguments(params: dict[str, Any]) -> list[str]:
    """Turn sampled values into script arguments, Azure style.

    A name without leading dashes gets ``--`` prepended::

        to_arguments({"alpha": 0.35, "--layers": 3}) == ["--alpha", "0.35", "--layers", "3"]
    """
    args: list[str] = []
    for name, value in params.items():
        args += [name if name.startswith("-") else f"--{name}", str(value)]
    return args
