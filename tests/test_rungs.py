"""Rung levels, brackets and the successive-halving rules against hand-computed cases."""

import math

import numpy as np
import pytest

from mobster import rungs
from mobster.rung_table import RungTable


@pytest.mark.parametrize(
    "r_min, r_max, eta, expected",
    [
        (1, 81, 3, [1, 3, 9, 27, 81]),
        (1, 100, 3, [1, 3, 9, 27, 81, 100]),
        (1, 27, 2, [1, 2, 4, 8, 16, 27]),
        (2, 20, 3, [2, 6, 18, 20]),
        (5, 5, 3, [5]),
        (1, 10, 1.5, [1, 2, 3, 5, 8, 10]),  # round(1.5**k): 1, 2(1.5), 2(2.25) dropped, 3, 5, 8
    ],
)
def test_rung_levels(r_min, r_max, eta, expected):
    assert rungs.rung_levels(r_min, r_max, eta) == expected


@pytest.mark.parametrize(
    "args, message",
    [
        ((0, 10, 3), "min_resource"),
        ((5, 3, 3), "smaller than min_resource"),
        ((1, 10, 1), "reduction_factor must be > 1"),
        ((1, 10, 0.5), "reduction_factor"),
    ],
)
def test_invalid_resources_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        rungs.rung_levels(*args)


def test_bracket_probabilities_follow_hyperband_shares():
    levels = [1, 3, 9, 27, 81]
    # (K+1)/((K+1-s) r_s) with K+1 = 5: 5/5, 5/12, 5/27 for s = 0, 1, 2.
    weights = np.array([1.0, 5 / 12, 5 / 27])
    assert rungs.bracket_probabilities(levels, 3) == pytest.approx(weights / weights.sum())
    assert rungs.bracket_probabilities(levels, 1) == pytest.approx([1.0])
    draws = [rungs.sample_bracket(levels, 3, u) for u in np.linspace(0, 0.999, 1000)]
    assert np.bincount(draws) / 1000 == pytest.approx(weights / weights.sum(), abs=0.01)


def test_stopping_rule_keeps_top_third():
    # Values at a rung, the new one included; quantile(., 1/3) by linear interpolation.
    values = [0.5, 0.1, 0.9, 0.3]  # sorted 0.1 0.3 0.5 0.9 -> 1/3 quantile = 0.3
    assert not rungs.should_stop(0.1, values, 3)
    assert not rungs.should_stop(0.3, values, 3)
    assert rungs.should_stop(0.5, values, 3)
    assert not rungs.should_stop(0.7, [0.7], 3)  # first at its rung always continues
    assert rungs.should_stop(math.nan, [math.nan, 0.1], 3)
    assert rungs.continue_threshold([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], 3) == pytest.approx(3.0)


def test_promotable_trial_is_best_unpromoted_in_top_fraction():
    values = {"a": 0.4, "b": 0.1, "c": 0.9, "d": 0.2, "e": 0.5, "f": 0.6}  # top 6 // 3 = 2: b, d
    assert rungs.promotable_trial(values, set(), {"a", "b", "c", "d"}, 3) == "b"
    assert rungs.promotable_trial(values, {"b"}, {"a", "b", "c", "d"}, 3) == "d"
    assert rungs.promotable_trial(values, {"b", "d"}, {"a", "c"}, 3) is None
    assert rungs.promotable_trial({"a": 0.1, "b": 0.2}, set(), {"a"}, 3) is None  # 2 // 3 = 0


def test_rung_table_stopping_decisions():
    table = RungTable([1, 3, 9], 3)
    assert table.on_result("t1", 1, 0.5) == "continue"
    assert table.on_result("t2", 1, 0.7) == "stop"  # [0.5, 0.7]: threshold 0.5667
    assert table.on_result("t3", 1, 0.2) == "continue"
    assert table.on_result("t1", 2, 0.45) == "continue"  # between rungs
    assert table.on_result("t1", 3, 0.4) == "continue"
    assert table.on_result("t3", 4, 0.6) == "stop"  # skipped report at 3: recorded at rung 3
    assert table.values[3] == {"t1": 0.4, "t3": 0.6}
    assert table.on_result("t1", 9, 0.3) == "complete"
    assert table.on_result("t4", 1, math.nan) == "stop"


def test_rung_table_promotion():
    table = RungTable([1, 3, 9], 3, promotion=True)
    for trial, value in [("a", 0.5), ("b", 0.2), ("c", 0.9)]:
        assert table.on_result(trial, 1, value) == "pause"
    assert table.choose_promotion({"a", "c"}) is None  # only b qualifies (3 // 3 = 1)
    assert table.choose_promotion({"a", "b", "c"}) == "b"
    table.mark_promoted("b")
    assert table.choose_promotion({"a", "c"}) is None
    assert table.on_result("b", 3, 0.1) == "pause"
    for trial, value in [("d", 0.05), ("e", 0.3), ("f", 0.35)]:
        table.on_result(trial, 1, value)
    # Rung 1 now has 6 values: top 2 are d (0.05) and b (promoted) -> d.
    assert table.choose_promotion({"a", "c", "d", "e", "f"}) == "d"


def test_rung_table_brackets_start_at_higher_rungs():
    table = RungTable([1, 3, 9, 27], 3, brackets=3, seed=0)
    for trial in range(300):
        table.add_trial(trial)
    counts = np.bincount(list(table.bracket_of.values()), minlength=3)
    assert counts[0] > counts[1] > counts[2] > 0
    late = next(t for t, b in table.bracket_of.items() if b == 2)
    assert table.trial_levels(late) == [9, 27]
    assert table.on_result(late, 1, 0.9) == "continue"  # rung 1 is not in its bracket


def test_model_rescues_a_trial_only_when_its_prediction_ranks_in_the_top_share():
    at_rung = ["a", "b", "c", "d", "e", "f"]
    predicted = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6, "e": 0.5, "f": 0.1}
    assert rungs.rescued_by_model("f", at_rung, predicted, 3)  # predicted best at r_max
    assert not rungs.rescued_by_model("a", at_rung, predicted, 3)  # predicted worst
    # Only trials with a prediction count: among b and f, b is not in the top third.
    assert not rungs.rescued_by_model("b", ["b", "f"], predicted, 3)
    assert rungs.rescued_by_model("b", ["a", "b"], predicted, 3)
    assert not rungs.rescued_by_model("f", at_rung, None, 3)  # no model yet
    assert not rungs.rescued_by_model("g", at_rung, predicted, 3)  # no prediction for it


def test_rank_correlation_of_the_trials_recorded_at_both_rungs():
    first = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4, "only-first": 0.0}
    assert rungs.rank_correlation(first, {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}) == (pytest.approx(1.0), 4)
    assert rungs.rank_correlation(first, {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}) == (pytest.approx(-1.0), 4)
    correlation, pairs = rungs.rank_correlation(first, {"a": 1.0, "b": 1.0, "c": 1.0})  # constant
    assert math.isnan(correlation) and pairs == 3
    correlation, pairs = rungs.rank_correlation(first, {"a": 1.0, "b": math.nan})  # nan is not a pair
    assert math.isnan(correlation) and pairs == 1


def _first_rung_led_by(n: int) -> dict[int, float]:
    """First-rung values where trials 0..n-1 are the top third, in key order, followed by twice
    as many worse trials that stopped there."""
    return {t: float(t) for t in range(3 * n)}


def test_auto_brackets_close_only_on_enough_evidence_that_the_first_rung_ranks_well():
    levels, eta, n = 5, 3, rungs.AUTO_MIN_PAIRS  # levels: e.g. 1, 3, 9, 27, 81
    many = rungs.AUTO_MAX_BRACKETS
    assert rungs.auto_bracket_count({}, {}, levels, eta) == many  # no evidence yet
    same_order = {t: float(t) for t in range(n)}
    first = _first_rung_led_by(n)
    assert rungs.auto_bracket_count(first, same_order, levels, eta) == 1
    reversed_second = {t: float(-t) for t in range(n)}
    assert rungs.auto_bracket_count(first, reversed_second, levels, eta) == many  # the evidence turned
    fewer = {t: float(t) for t in range(n - 1)}
    assert rungs.auto_bracket_count(_first_rung_led_by(n - 1), fewer, levels, eta) == many  # too few pairs
    assert rungs.auto_bracket_count({}, {}, 2, eta) == 1  # a 2nd bracket would be the full resource
    # Only the first rung's top third counts: trials the model sent on from below do not.
    rescued = {t: float(t) for t in range(2 * n, 3 * n)}
    assert rungs.auto_bracket_count(first, {**reversed_second, **rescued}, levels, eta) == many


def _fill_rung_table(table: RungTable, same_ranking: bool) -> None:
    """Twice AUTO_MIN_PAIRS bracket-0 trials stopped at rung 1, then AUTO_MIN_PAIRS that each
    lead rung 1 (so they go on) and rank at rung 3 in the same order or in the reverse order."""
    n = rungs.AUTO_MIN_PAIRS
    for trial in range(2 * n):
        table.add_trial(trial, bracket=0)
        table.on_result(trial, 1, 2.0 + 0.01 * trial)
    for k in range(n):
        trial = 2 * n + k
        table.add_trial(trial, bracket=0)
        assert table.on_result(trial, 1, 1.0 - 0.01 * k) == "continue"
        table.on_result(trial, 3, 0.5 - 0.01 * k if same_ranking else 0.5 + 0.01 * k)


def test_rung_table_auto_brackets_sample_several_until_the_rungs_agree_and_keep_given_brackets():
    table = RungTable([1, 3, 9, 27, 81], 3, brackets="auto", seed=0)
    early = [table.add_trial(trial) for trial in range(100, 200)]
    assert 0 < sum(b > 0 for b in early) < 100 and set(early) <= {0, 1, 2}
    _fill_rung_table(table, same_ranking=True)
    assert table.bracket_count() == 1
    assert [table.add_trial(trial) for trial in range(200, 300)] == [0] * 100
    assert [table.add_trial(trial) for trial in range(100, 200)] == early  # kept


def test_rung_table_auto_brackets_stay_several_while_the_rungs_disagree():
    table = RungTable([1, 3, 9, 27, 81], 3, brackets="auto", seed=0)
    _fill_rung_table(table, same_ranking=False)
    assert table.bracket_count() == rungs.AUTO_MAX_BRACKETS


def test_one_rule_says_which_step_stands_for_a_rung():
    levels = [1, 3, 9, 27]
    assert [rungs.rung_of(r, levels) for r in (0, 1, 2, 3, 8.5, 9, 26, 27, 40)] == [None, 1, 1, 3, 3, 9, 9, 27, 27]
    # The first report inside each rung's interval stands for it; empty rungs are left out.
    assert rungs.rung_steps([10, 1, 2, 4, 5], levels) == {1: 1, 3: 4, 9: 10}
    assert rungs.rung_steps([2, 30], [1, 3, 9, 27]) == {1: 2, 27: 30}
    assert rungs.rung_steps([], levels) == {}


def test_finishing_promotion_sends_on_the_best_of_a_rung_too_small_for_the_quota():
    values = {"a": 0.3, "b": 0.1}  # two values, eta 3: floor(2/3) = 0 qualify, ceil(2/3) = 1
    assert rungs.promotable_trial(values, set(), {"a", "b"}, 3) is None
    assert rungs.promotable_trial(values, set(), {"a", "b"}, 3, finishing=True) == "b"
    assert rungs.promotable_trial(values, {"b"}, {"a", "b"}, 3, finishing=True) is None


def test_lower_is_better_is_one_sign_for_every_caller():
    assert rungs.minimising_sign("min") == 1.0 and rungs.minimising_sign("max") == -1.0
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'maximize'"):
        rungs.minimising_sign("maximize")
