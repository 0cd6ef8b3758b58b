"""Parameter expressions and samplers of runner.hyperdrive (pure: no store, no processes)."""
from __future__ import annotations

import json
import math
import random
import statistics

import pytest

from runner.hyperdrive import (BayesianParameterSampling, GridParameterSampling,
                               RandomParameterSampling, choice, expression_from_dict, lognormal,
                               loguniform, normal, qlognormal, qloguniform, qnormal, quniform,
                               randint, sampling_from_dict, to_arguments, uniform)
from tracking.errors import ConfigurationError

N = 4000


def draws(expr, n=N, seed=0):
    rng = random.Random(seed)
    return [expr.sample(rng) for _ in range(n)]


def is_multiple(value, q):
    return math.isclose(value / q, round(value / q), abs_tol=1e-9)


# --- expressions --------------------------------------------------------------------------

def test_choice_accepts_varargs_list_and_range_like_azure():
    assert choice(1, 2, 3) == choice([1, 2, 3]) == choice((1, 2, 3)) == choice(range(1, 4))
    assert choice("a").options == ("a",)


@pytest.mark.parametrize("make", [
    lambda: choice(), lambda: choice([]), lambda: choice({"a": 1}), lambda: randint(0),
    lambda: randint(2.5), lambda: uniform(1, 1), lambda: uniform(2, 1),
    lambda: quniform(0, 1, 0), lambda: loguniform(0, float("nan")), lambda: normal(0, -1),
    lambda: qnormal(0, 1, -0.1), lambda: lognormal(0, 0), lambda: qlognormal(0, 1, 0),
    lambda: qloguniform(1, 0, 1),
])
def test_bad_expression_arguments_raise(make):
    with pytest.raises(ConfigurationError):
        make()


def test_choice_draws_every_option_about_equally():
    values = draws(choice("a", "b", "c", "d"))
    for option in "abcd":
        assert abs(values.count(option) / N - 0.25) < 0.03


def test_randint_is_in_zero_to_upper_exclusive():
    values = draws(randint(5))
    assert set(values) == {0, 1, 2, 3, 4}
    assert all(isinstance(v, int) for v in values)


def test_uniform_bounds_and_mean():
    values = draws(uniform(-2, 3))
    assert all(-2 <= v <= 3 for v in values)
    assert statistics.mean(values) == pytest.approx(0.5, abs=0.1)


def test_quniform_values_are_multiples_of_q_within_rounded_bounds():
    values = draws(quniform(0, 10, 2.5))
    assert set(values) == {0.0, 2.5, 5.0, 7.5, 10.0}
    # no binary noise such as 0.30000000000000004 in the command-line argument
    assert all(len(repr(v)) <= 4 for v in draws(quniform(0, 1, 0.1), n=200))


def test_loguniform_bounds_are_natural_log_exponents():
    values = draws(loguniform(-3, 2))
    assert all(math.exp(-3) <= v <= math.exp(2) for v in values)
    logs = [math.log(v) for v in values]
    assert statistics.mean(logs) == pytest.approx(-0.5, abs=0.1)   # uniform in log space
    assert statistics.median(values) == pytest.approx(math.exp(-0.5), rel=0.1)
    assert min(logs) < -2.8 and max(logs) > 1.8


def test_qloguniform_is_quantized_exp_of_uniform():
    values = draws(qloguniform(0, 4, 5))
    assert all(is_multiple(v, 5) and 0 <= v <= 55 for v in values)  # e**4 = 54.6 -> 55
    assert statistics.median(values) == pytest.approx(5, abs=5)     # e**2 = 7.4 -> 5 or 10


def test_normal_mean_and_deviation():
    values = draws(normal(5, 2))
    assert statistics.mean(values) == pytest.approx(5, abs=0.15)
    assert statistics.stdev(values) == pytest.approx(2, rel=0.05)


def test_qnormal_is_quantized():
    values = draws(qnormal(0, 1, 0.5))
    assert all(is_multiple(v, 0.5) for v in values)
    assert statistics.mean(values) == pytest.approx(0, abs=0.1)


def test_lognormal_is_exp_of_normal():
    values = draws(lognormal(0, 0.5))
    logs = [math.log(v) for v in values]
    assert statistics.mean(logs) == pytest.approx(0, abs=0.05)
    assert statistics.stdev(logs) == pytest.approx(0.5, rel=0.05)


def test_qlognormal_is_quantized_and_non_negative():
    values = draws(qlognormal(1, 0.3, 0.25))
    assert all(is_multiple(v, 0.25) and v >= 0 for v in values)
    assert statistics.median(values) == pytest.approx(math.e, abs=0.25)


ALL_EXPRESSIONS = [choice(1, "b", 2.5, True, None), randint(7), uniform(-1, 1),
                   quniform(0, 8, 2), loguniform(-5, 0), qloguniform(0, 3, 1), normal(0, 1),
                   qnormal(1, 2, 0.5), lognormal(0, 1), qlognormal(0, 1, 0.1)]


@pytest.mark.parametrize("expr", ALL_EXPRESSIONS, ids=lambda e: e.kind)
def test_expression_round_trips_through_json(expr):
    rebuilt = expression_from_dict(json.loads(json.dumps(expr.to_dict())))
    assert rebuilt == expr
    assert draws(rebuilt, n=20, seed=3) == draws(expr, n=20, seed=3)


def test_unknown_expression_type_raises():
    with pytest.raises(ConfigurationError, match="unknown parameter expression"):
        expression_from_dict({"type": "beta", "a": 1})


def test_to_arguments_prepends_dashes_like_azure():
    assert to_arguments({"alpha": 0.35, "--layers": 3, "-v": "x"}) == [
        "--alpha", "0.35", "--layers", "3", "-v", "x"]


# --- random sampling ----------------------------------------------------------------------

SPACE = {"--lr": loguniform(-6, -1), "batch": quniform(16, 128, 16), "act": choice("relu", "tanh"),
         "noise": normal(0, 1)}


def test_random_sampling_is_reproducible_with_a_seed_property():
    sampling = RandomParameterSampling(SPACE, properties={"seed": 42})
    first = sampling.create_sampler().suggest(10)
    assert first == sampling.create_sampler().suggest(10)
    assert first != RandomParameterSampling(SPACE, properties={"seed": 43}).create_sampler().suggest(10)
    # an explicit seed wins over the property
    assert sampling.create_sampler(seed=43).suggest(10) != first
    assert sampling.create_sampler(seed=42).suggest(10) == first


def test_random_sampler_is_never_exhausted_and_stays_in_bounds():
    sampler = RandomParameterSampling(SPACE).create_sampler(seed=1)
    batch = sampler.suggest(500)
    assert len(batch) == 500 and not sampler.exhausted
    assert all(math.exp(-6) <= p["--lr"] <= math.exp(-1) and 16 <= p["batch"] <= 128
               and p["act"] in ("relu", "tanh") for p in batch)
    sampler.observe(batch[0], 1.0)  # ignored, must not fail


@pytest.mark.parametrize("space", [{}, {"": uniform(0, 1)}, {"x": 0.5}, [("x", uniform(0, 1))]])
def test_bad_parameter_space_raises(space):
    with pytest.raises(ConfigurationError):
        RandomParameterSampling(space)


def test_random_seed_property_must_be_an_integer():
    with pytest.raises(ConfigurationError, match="seed"):
        RandomParameterSampling(SPACE, properties={"seed": "x"})


# --- grid sampling ------------------------------------------------------------------------

def test_grid_enumerates_the_cartesian_product_exactly_in_order():
    sampling = GridParameterSampling({"a": choice(1, 2), "b": choice("x", "y", "z"),
                                      "--c": choice(True, False)})
    assert sampling.size == 12
    sampler = sampling.create_sampler()
    got = sampler.suggest(5) + sampler.suggest(5)
    tail = sampler.suggest(5)
    assert len(tail) == 2 and sampler.exhausted and sampler.suggest(5) == []
    expected = [{"a": a, "b": b, "--c": c} for a in (1, 2) for b in "xyz" for c in (True, False)]
    assert got + tail == expected


def test_grid_refuses_non_choice_parameters():
    with pytest.raises(ConfigurationError, match="only choice"):
        GridParameterSampling({"a": choice(1, 2), "lr": uniform(0, 1)})


# --- bayesian sampling --------------------------------------------------------------------

def bowl(p):
    return (p["x"] - 0.3) ** 2 + (p["y"] + 0.2) ** 2


def best_after(sampling, seed, trials=40):
    sampler = sampling.create_sampler(seed=seed, goal="MINIMIZE")
    best = math.inf
    for _ in range(trials):
        (params,) = sampler.suggest(1)
        value = bowl(params)
        sampler.observe(params, value)
        best = min(best, value)
    return best


def test_bayesian_beats_random_on_a_known_bowl():
    space = {"x": uniform(-1, 1), "y": uniform(-1, 1)}
    wins = sum(best_after(BayesianParameterSampling(space), seed)
               < best_after(RandomParameterSampling(space), seed) for seed in range(5))
    assert wins >= 4


@pytest.mark.parametrize("expr", [normal(0, 1), qnormal(0, 1, 1), lognormal(0, 1),
                                  qlognormal(0, 1, 1)], ids=lambda e: e.kind)
def test_bayesian_refuses_what_it_cannot_model(expr):
    with pytest.raises(ConfigurationError, match=f"cannot model {expr.kind}"):
        BayesianParameterSampling({"x": uniform(0, 1), "bad": expr})


def test_bayesian_values_stay_in_each_expressions_support():
    space = {"c": choice("a", "b"), "r": randint(4), "u": uniform(-1, 1),
             "q": quniform(0, 10, 2.5), "l": loguniform(-4, 1), "ql": qloguniform(0, 3, 2)}
    sampler = BayesianParameterSampling(space).create_sampler(seed=0)
    for i in range(25):
        (p,) = sampler.suggest(1)
        assert p["c"] in ("a", "b") and p["r"] in range(4) and -1 <= p["u"] <= 1
        assert p["q"] in (0.0, 2.5, 5.0, 7.5, 10.0)
        assert math.exp(-4) <= p["l"] <= math.exp(1)
        assert is_multiple(p["ql"], 2) and 0 <= p["ql"] <= 20
        sampler.observe(p, float(i % 3) if i % 5 else None)  # some trials fail


def test_bayesian_is_reproducible_and_accepts_replayed_observations():
    space = {"x": uniform(-1, 1), "n": quniform(0, 4, 0.5)}
    a = BayesianParameterSampling(space).create_sampler(seed=3)
    b = BayesianParameterSampling(space).create_sampler(seed=3)
    assert a.suggest(3) == b.suggest(3)
    # results from trials this sampler never suggested (e.g. a restarted controller) are learnt
    fresh = BayesianParameterSampling(space).create_sampler(seed=3, goal="MINIMIZE")
    for i in range(12):
        fresh.observe({"x": -1 + i / 6, "n": 0.5 * (i % 9)}, float(i))
    assert len(fresh.suggest(2)) == 2
    with pytest.raises(ConfigurationError, match="lack"):
        fresh.observe({"x": 0.1}, 1.0)


# --- serialisation of samplings -----------------------------------------------------------

@pytest.mark.parametrize("sampling", [
    RandomParameterSampling(SPACE, properties={"seed": 5}),
    GridParameterSampling({"a": choice(1, 2), "b": choice("x")}),
    BayesianParameterSampling({"x": uniform(-1, 1), "c": choice(1, 2), "l": loguniform(-3, 0)}),
], ids=lambda s: s.kind)
def test_sampling_round_trips_through_json(sampling):
    rebuilt = sampling_from_dict(json.loads(json.dumps(sampling.to_dict())))
    assert type(rebuilt) is type(sampling) and rebuilt == sampling
    assert list(rebuilt.parameter_space) == list(sampling.parameter_space)
    assert rebuilt.create_sampler(seed=1).suggest(3) == sampling.create_sampler(seed=1).suggest(3)


def test_unknown_sampling_type_raises():
    with pytest.raises(ConfigurationError, match="unknown sampling"):
        sampling_from_dict({"type": "sobol", "parameter_space": {}})
