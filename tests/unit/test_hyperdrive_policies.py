"""Early-termination policies and HyperDriveConfig of runner.hyperdrive, checked against
hand-computed expectations (pure: no store, no processes)."""
from __future__ import annotations

import json

import pytest

from runner.hyperdrive import (BanditPolicy, BayesianParameterSampling, Decision,
                               GridParameterSampling, HyperDriveConfig, MedianStoppingPolicy,
                               NoTerminationPolicy, PolicyState, PrimaryMetricGoal,
                               RandomParameterSampling, TruncationSelectionPolicy, choice,
                               policy_from_dict, uniform)
from tracking.errors import ConfigurationError

STEPS = range(1, 21)
# MINIMIZE a loss over 20 reports. Best is 10.0 at every interval, so with slack_factor 0.1
# the bandit threshold is 10.0 * (1 + 0.1) = 11.0 everywhere.
LOSSES = {
    "best": [10.0 for k in STEPS],
    "near": [10.5 for k in STEPS],                # always within slack
    "drifting": [10 + 0.19 * k for k in STEPS],   # 10.95 at k=5 (kept), 11.14 at k=6 (out)
    "bad": [12 + 0.5 * k for k in STEPS],         # out of slack from k=1
}
BANDIT = BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=5)


def test_policy_schedule_follows_azure_every_multiple_at_or_after_the_delay():
    assert [k for k in range(1, 13) if BANDIT.is_evaluation_interval(k)] == list(range(5, 13))
    every3 = MedianStoppingPolicy(evaluation_interval=3, delay_evaluation=4)
    assert [k for k in range(1, 13) if every3.is_evaluation_interval(k)] == [6, 9, 12]
    no_delay = TruncationSelectionPolicy(10, evaluation_interval=2)
    assert [k for k in range(1, 7) if no_delay.is_evaluation_interval(k)] == [2, 4, 6]


def test_bandit_cancels_worsening_trials_at_the_hand_computed_interval():
    decisions = BANDIT.evaluate(LOSSES, PrimaryMetricGoal.MINIMIZE, metric_name="loss")
    assert [(d.trial_id, d.interval) for d in decisions] == [("bad", 5), ("drifting", 6)]
    bad, drifting = decisions
    assert bad.metric_value == 14.5 and bad.threshold == pytest.approx(11.0)
    assert drifting.metric_value == pytest.approx(11.14)
    assert drifting.action == "cancel"
    assert drifting.reason == "bandit: loss 11.14 > best 10 * (1+0.1) = 11 at interval 6"


def test_bandit_fed_step_by_step_decides_the_same_and_nothing_before_the_delay():
    state, seen = PolicyState(), {}
    for step in STEPS:
        partial = {t: values[:step] for t, values in LOSSES.items()}
        for d in BANDIT.evaluate(partial, "MINIMIZE", state):
            seen[d.trial_id] = (step, d.interval)
    assert seen == {"bad": (5, 5), "drifting": (6, 6)}
    assert state.cancelled == {"bad", "drifting"}


def test_bandit_maximize_with_slack_factor_and_slack_amount():
    # best 0.8: factor 0.2 allows down to 0.8 / 1.2 = 0.6667; amount 0.05 down to 0.75
    reports = {"top": [0.8], "ok": [0.67], "low": [0.66], "mid": [0.76], "worse": [0.74]}
    by_factor = BanditPolicy(slack_factor=0.2).evaluate(reports, "MAXIMIZE")
    assert [d.trial_id for d in by_factor] == ["low"]
    assert by_factor[0].threshold == pytest.approx(0.8 / 1.2)
    assert "< best 0.8 / (1+0.2) = 0.666667" in by_factor[0].reason
    by_amount = BanditPolicy(slack_amount=0.05).evaluate(reports, "MAXIMIZE")
    assert [d.trial_id for d in by_amount] == ["low", "ok", "worse"]
    assert by_amount[0].threshold == pytest.approx(0.75)


def test_bandit_slack_factor_keeps_the_best_trial_when_metrics_are_negative():
    # maximize a negative score: best -10, factor 0.1 allows down to -11
    reports = {"best": [-10.0], "close": [-10.9], "far": [-11.5]}
    decisions = BanditPolicy(slack_factor=0.1).evaluate(reports, "MAXIMIZE")
    assert [(d.trial_id, round(d.threshold, 9)) for d in decisions] == [("far", -11.0)]
    # minimize a negative loss: best -10, factor 0.1 allows up to -10 / 1.1 = -9.0909
    decisions = BanditPolicy(slack_factor=0.1).evaluate(
        {"best": [-10.0], "close": [-9.2], "far": [-9.0]}, "MINIMIZE")
    assert [d.trial_id for d in decisions] == ["far"]


def test_median_stopping_against_hand_computed_running_averages():
    # interval 3 (first after delay_evaluation=3): running averages A .6, B .5, C .2,
    # D .36667 -> median (0.36667 + 0.5) / 2 = 0.43333. Best so far: A .7, B .6, C .3, D .9.
    reports = {"A": [0.5, 0.6, 0.7], "B": [0.4, 0.5, 0.6], "C": [0.1, 0.2, 0.3],
               "D": [0.9, 0.1, 0.1]}
    policy, state = MedianStoppingPolicy(evaluation_interval=1, delay_evaluation=3), PolicyState()
    decisions = policy.evaluate(reports, "MAXIMIZE", state, metric_name="acc")
    assert [(d.trial_id, d.interval) for d in decisions] == [("C", 3)]
    assert decisions[0].metric_value == 0.3
    assert decisions[0].threshold == pytest.approx((1.1 / 3 + 0.5) / 2)
    assert "best acc so far 0.3 < median 0.433333" in decisions[0].reason
    # interval 4 (C stopped at 3): averages A .65, B .4625, D .3 -> median .4625;
    # B's best .6 and D's best .9 beat it, so nobody is cancelled.
    reports = {"A": reports["A"] + [0.8], "B": reports["B"] + [0.35], "C": reports["C"],
               "D": reports["D"] + [0.1]}
    assert policy.evaluate(reports, "MAXIMIZE", state) == []


def test_median_stopping_minimize():
    # interval 2: averages 1.5, 2.5, 5.5 -> median 2.5; best so far 1, 2, 5 -> only "c" (5 > 2.5)
    reports = {"a": [2, 1], "b": [3, 2], "c": [6, 5]}
    decisions = MedianStoppingPolicy(delay_evaluation=2).evaluate(reports, "MINIMIZE")
    assert [(d.trial_id, d.interval, d.threshold) for d in decisions] == [("c", 2, 2.5)]


TRUNC_FIVE = {"A": [0.1] * 4 + [0.9], "B": [0.9] * 4 + [0.8], "C": [0.5] * 4 + [0.7],
              "D": [0.3] * 4 + [0.6], "E": [0.99] * 4 + [0.5]}


def test_truncation_cancels_the_lowest_percentage_at_the_interval():
    policy = TruncationSelectionPolicy(truncation_percentage=20, delay_evaluation=5)
    decisions = policy.evaluate(TRUNC_FIVE, "MAXIMIZE")   # floor(5 * 20%) = 1 trial: E (0.5)
    assert [(d.trial_id, d.interval, d.metric_value, d.threshold) for d in decisions] == [
        ("E", 5, 0.5, 0.5)]
    assert "worst 20% (1 of 5 trials) at interval 5" in decisions[0].reason
    forty = TruncationSelectionPolicy(40, delay_evaluation=5).evaluate(TRUNC_FIVE, "MAXIMIZE")
    assert [(d.trial_id, d.threshold) for d in forty] == [("D", 0.6), ("E", 0.6)]
    minimize = TruncationSelectionPolicy(20, delay_evaluation=5).evaluate(TRUNC_FIVE, "MINIMIZE")
    assert [d.trial_id for d in minimize] == ["A"]


def test_truncation_too_few_trials_or_ties_cancel_nobody():
    four = {t: v for t, v in TRUNC_FIVE.items() if t != "A"}       # floor(4 * 20%) = 0
    assert TruncationSelectionPolicy(20, delay_evaluation=5).evaluate(four, "MAXIMIZE") == []
    tied = dict(TRUNC_FIVE, D=[0.5] * 5)                            # D and E tie at the bottom
    assert TruncationSelectionPolicy(20, delay_evaluation=5).evaluate(tied, "MAXIMIZE") == []


def test_truncation_compares_a_young_trial_with_older_trials_at_the_same_interval():
    policy, state = TruncationSelectionPolicy(20, delay_evaluation=5), PolicyState()
    assert [d.trial_id for d in policy.evaluate(TRUNC_FIVE, "MAXIMIZE", state)] == ["E"]
    # A-D go on to 10 reports at 0.95; young F reaches interval 5 with 0.55. At interval 5
    # the pool is A-F (6 trials, cut 1) and E's 0.5 is the worst, so F survives; at 6..10 the
    # pool is A-D (cut 0).
    grown = {t: v + [0.95] * 5 for t, v in TRUNC_FIVE.items() if t != "E"}
    grown.update(E=TRUNC_FIVE["E"], F=[0.2] * 4 + [0.55])
    assert policy.evaluate(grown, "MAXIMIZE", state) == []


def test_each_trial_interval_pair_is_judged_once_with_the_pool_known_then():
    policy, state = BanditPolicy(slack_factor=0.1), PolicyState()
    fast = [10.0, 10.0, 10.0, 15.0, 15.0, 15.0]
    assert policy.evaluate({"fast": fast}, "MINIMIZE", state) == []   # alone: it is the best
    assert state.evaluated == {("fast", k) for k in range(1, 7)}
    # "slow" catches up with 10.0 everywhere: fast's 15 at 4..6 is not judged again
    slow = [10.0] * 6
    assert policy.evaluate({"fast": fast, "slow": slow}, "MINIMIZE", state) == []
    assert policy.evaluate({"fast": fast, "slow": slow}, "MINIMIZE", state) == []
    decisions = policy.evaluate({"fast": fast + [15.0], "slow": slow + [10.0]}, "MINIMIZE", state)
    assert [(d.trial_id, d.interval) for d in decisions] == [("fast", 7)]
    # a cancelled trial that keeps reporting gets no second decision
    assert policy.evaluate({"fast": fast + [15.0] * 3, "slow": slow + [10.0] * 3},
                           "MINIMIZE", state) == []
    # without a state, everything is judged afresh against the full pool
    fresh = policy.evaluate({"fast": fast, "slow": slow}, "MINIMIZE")
    assert [(d.trial_id, d.interval) for d in fresh] == [("fast", 4)]


def test_nan_reports_never_cancel_and_stay_out_of_pools():
    nan = float("nan")
    reports = {"a": [nan, 10.0], "b": [100.0, nan], "c": [10.0, 10.0]}
    decisions = BanditPolicy(slack_factor=0.1).evaluate(reports, "MINIMIZE")
    assert [(d.trial_id, d.interval) for d in decisions] == [("b", 1)]
    # median at 2 over finite values only: averages a 1.0, b 2.0 -> 1.5; b's best 2 > 1.5
    decisions = MedianStoppingPolicy().evaluate({"a": [nan, 1.0], "b": [2.0, 2.0]}, "MINIMIZE")
    assert [(d.trial_id, d.interval, d.threshold) for d in decisions] == [("b", 2, 1.5)]


def test_no_termination_policy_never_decides():
    state = PolicyState()
    assert NoTerminationPolicy().evaluate(LOSSES, "MINIMIZE", state) == []
    assert state.evaluated == set()


@pytest.mark.parametrize("policy", [
    BanditPolicy(evaluation_interval=2, slack_factor=0.15, delay_evaluation=10),
    BanditPolicy(slack_amount=0.2), MedianStoppingPolicy(evaluation_interval=1, delay_evaluation=5),
    TruncationSelectionPolicy(truncation_percentage=30, evaluation_interval=3), NoTerminationPolicy(),
], ids=lambda p: p.kind)
def test_policy_round_trips_through_json(policy):
    rebuilt = policy_from_dict(json.loads(json.dumps(policy.to_dict())))
    assert rebuilt == policy and type(rebuilt) is type(policy)


def test_policy_state_and_decision_serialise():
    state = PolicyState()
    BANDIT.evaluate(LOSSES, "MINIMIZE", state)
    assert PolicyState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    decision = Decision("t1", 6, 11.14, 11.0, "why")
    assert json.loads(json.dumps(decision.to_dict()))["action"] == "cancel"
    assert policy_from_dict(None) == NoTerminationPolicy()


@pytest.mark.parametrize("make", [
    lambda: BanditPolicy(), lambda: BanditPolicy(slack_factor=0.1, slack_amount=0.1),
    lambda: BanditPolicy(slack_factor=-0.1), lambda: BanditPolicy(evaluation_interval=0, slack_amount=1),
    lambda: MedianStoppingPolicy(delay_evaluation=-1), lambda: TruncationSelectionPolicy(0),
    lambda: TruncationSelectionPolicy(100), lambda: TruncationSelectionPolicy(12.5),
    lambda: policy_from_dict({"type": "hyperband"}),
    lambda: policy_from_dict({"type": "bandit", "slack": 1}),
])
def test_bad_policy_arguments_raise(make):
    with pytest.raises(ConfigurationError):
        make()


def test_primary_metric_goal():
    assert PrimaryMetricGoal.MAXIMIZE.value == "MAXIMIZE" and PrimaryMetricGoal.MINIMIZE == "MINIMIZE"
    assert PrimaryMetricGoal.parse("minimize") is PrimaryMetricGoal.MINIMIZE
    with pytest.raises(ConfigurationError):
        PrimaryMetricGoal.parse("lowest")


# --- HyperDriveConfig ---------------------------------------------------------------------

RUN_CONFIG = object()   # stands in for the user's ScriptRunConfig
RANDOM = RandomParameterSampling({"--lr": uniform(0.01, 0.1)}, properties={"seed": 1})


def make_config(**overrides):
    args = dict(run_config=RUN_CONFIG, hyperparameter_sampling=RANDOM,
                primary_metric_name="val_loss", primary_metric_goal="MINIMIZE", max_total_runs=20)
    return HyperDriveConfig(**{**args, **overrides})


def test_bayesian_sampling_refuses_early_termination_like_azure():
    bayes = BayesianParameterSampling({"x": uniform(0, 1)})
    with pytest.raises(ConfigurationError, match="Bayesian sampling does not support early termination"):
        make_config(hyperparameter_sampling=bayes, policy=BanditPolicy(slack_factor=0.1))
    assert isinstance(make_config(hyperparameter_sampling=bayes).policy, NoTerminationPolicy)
    make_config(hyperparameter_sampling=bayes, policy=NoTerminationPolicy())


@pytest.mark.parametrize("overrides", [
    {"max_total_runs": 0}, {"max_total_runs": 2.5}, {"max_concurrent_runs": 0},
    {"max_duration_minutes": 0}, {"primary_metric_name": ""}, {"primary_metric_goal": "best"},
    {"hyperparameter_sampling": {"--lr": uniform(0, 1)}}, {"policy": "bandit"},
    {"run_config": None},
])
def test_bad_config_raises(overrides):
    with pytest.raises(ConfigurationError):
        make_config(**overrides)


def test_grid_smaller_than_max_total_runs_is_fine():
    grid = GridParameterSampling({"a": choice(1, 2), "b": choice(3, 4, 5)})
    config = make_config(hyperparameter_sampling=grid, max_total_runs=100)
    assert config.effective_total_runs == 6 and make_config().effective_total_runs == 20
    sampler = config.create_sampler()
    assert len(sampler.suggest(100)) == 6 and sampler.exhausted


def test_config_positional_order_follows_azure():
    config = HyperDriveConfig(RANDOM, "acc", PrimaryMetricGoal.MAXIMIZE, 10, 2, 60,
                              MedianStoppingPolicy(), run_config=RUN_CONFIG)
    assert (config.max_concurrent_runs, config.max_duration_minutes) == (2, 60)
    assert config.primary_metric_goal is PrimaryMetricGoal.MAXIMIZE


def test_spec_dict_round_trips_without_run_config():
    config = make_config(max_concurrent_runs=4, policy=BanditPolicy(slack_factor=0.1,
                                                                     delay_evaluation=5))
    spec = json.loads(json.dumps(config.spec_dict()))
    assert "run_config" not in spec and spec["primary_metric_goal"] == "MINIMIZE"
    rebuilt = HyperDriveConfig.from_spec_dict(spec, run_config=RUN_CONFIG)
    assert rebuilt.spec_dict() == config.spec_dict() and rebuilt.run_config is RUN_CONFIG
    assert rebuilt.create_sampler().suggest(3) == config.create_sampler().suggest(3)
