"""Rung rules for several objectives (mobster.pareto, RungTable with vectors) and the ParEGO
searcher, against fronts computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mobster import Float, SearchSpace, TrialRecord
from mobster import pareto
from mobster import rungs as rung_rules
from mobster.multiobjective import MultiObjectiveSearcher, scalarise
from mobster.rung_table import RungTable


def test_fronts_by_hand() -> None:
    points = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [6, 6], [2, 6], [4, 4]])
    # Front 0: (1,5) (2,2) (5,1); front 1: (3,3) (2,6); front 2: (4,4); front 3: (6,6).
    assert pareto.nondominated_fronts(points).tolist() == [0, 0, 0, 1, 3, 1, 2]


def test_equal_points_share_a_front() -> None:
    assert pareto.nondominated_fronts(np.array([[1, 1], [1, 1], [2, 2]])).tolist() == [0, 0, 1]


def test_crowding_extremes_are_infinite_and_middle_is_the_normalised_gap() -> None:
    front = np.array([[0.0, 4.0], [1.0, 2.0], [4.0, 0.0]])
    distance = pareto.crowding_distances(front)
    assert math.isinf(distance[0]) and math.isinf(distance[2])
    assert distance[1] == pytest.approx((4 - 0) / 4 + (4 - 0) / 4)


def test_order_puts_fronts_first_then_crowding() -> None:
    values = {"a": (0.0, 4.0), "b": (1.0, 2.9), "c": (1.1, 3.0), "d": (4.0, 0.0), "e": (2.0, 1.0), "bad": (math.nan, 0.0)}
    order = pareto.pareto_order(values)
    # Front 0: a, b, d, e (c is dominated by b). Extremes a, d first (names break the tie),
    # then e and b by crowding: b's neighbours span 2/4 (a, e) and 3/4 (e, a): 1.25; e's span
    # 3/4 (b, d) and 2.9/4 (d, b): 1.475.
    assert order[:2] == ["a", "d"]
    assert order[2:4] == ["e", "b"]
    assert order[4:] == ["c", "bad"]


def test_stopping_rule_keeps_the_top_third_by_pareto_order() -> None:
    rung = {f"t{i}": (float(i), float(9 - i)) for i in range(9)}  # one front of 9
    rung["dominated"] = (5.0, 8.0)
    # 10 values: a trial goes on when at most 3 come before it. The extremes t0, t8 and the
    # middle ones by crowding (all equal here, names break ties): t1, t2 come next.
    order = pareto.pareto_order(rung)
    assert order[:4] == ["t0", "t8", "t1", "t2"]
    assert [t for t in rung if not pareto.should_stop(t, rung, 3)] == ["t0", "t1", "t2", "t8"]
    assert pareto.should_stop("dominated", rung, 3)


def test_non_finite_vector_is_stopped_and_ranks_last() -> None:
    rung = {"a": (1.0, 1.0), "nan": (math.nan, 0.0)}
    assert pareto.should_stop("nan", rung, 3)
    assert not pareto.should_stop("a", rung, 3)


def test_promotion_takes_the_best_paused_candidate_in_the_top_share() -> None:
    rung = {"a": (0.0, 3.0), "b": (3.0, 0.0), "c": (2.0, 2.0), "d": (4.0, 4.0), "e": (5.0, 5.0), "f": (6.0, 6.0)}
    # floor(6 / 3) = 2 qualify: a and b (extremes of front 0; c is its middle).
    assert pareto.promotable_trial(rung, set(), {"b", "c"}, 3) == "b"
    assert pareto.promotable_trial(rung, {"b"}, {"b", "c"}, 3) is None
    # Finishing: ceil(6 / 3) = 2 as well; with 7 values ceil gives 3 and c qualifies.
    rung["g"] = (7.0, 7.0)
    assert pareto.promotable_trial(rung, {"b"}, {"b", "c"}, 3, finishing=True) == "c"


def test_rung_table_with_two_objectives_stops_and_promotes_by_front() -> None:
    table = RungTable([1, 3, 9], 3, objectives=2)
    decisions = [table.on_result(f"t{i}", 1, (float(i), float(i))) for i in range(4)]
    # Points on a diagonal: each dominates the next. t0 first (0 before), t1 has 1 before it with
    # 2 values ((2 - 1) / 3 < 1: stop), t2 and t3 also stop.
    assert decisions == ["continue", "stop", "stop", "stop"]
    assert table.on_result("nan", 1, (math.nan, 0.0)) == "stop"
    with pytest.raises(ValueError, match="expected 2 objective values"):
        table.on_result("short", 1, (1.0,))  # type: ignore[arg-type]

    paused = RungTable([1, 3, 9], 3, promotion=True, objectives=2)
    for i, point in enumerate([(0.0, 5.0), (5.0, 0.0), (6.0, 6.0)]):
        assert paused.on_result(f"p{i}", 1, point) == "pause"
    assert paused.choose_promotion({"p0", "p1", "p2"}) == "p0"  # floor(3/3) = 1: the first by name


def test_auto_brackets_refused_with_two_objectives() -> None:
    with pytest.raises(ValueError, match="brackets='auto'"):
        RungTable([1, 3, 9], 3, brackets="auto", objectives=2)


def test_single_objective_rule_is_the_pareto_rule_on_distinct_values() -> None:
    rng = np.random.default_rng(0)
    values = {f"t{i}": float(v) for i, v in enumerate(rng.permutation(20))}
    for trial, value in values.items():
        as_vectors = {t: (v, v) for t, v in values.items()}
        assert rung_rules.should_stop(value, list(values.values()), 3) == pareto.should_stop(trial, as_vectors, 3)


def test_hypervolume_2d_by_hand() -> None:
    points = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [5.0, 5.0]])
    # Reference (4, 4): strips 3x1 + 2x1 + 1x1 = 6; (5, 5) lies outside.
    assert pareto.hypervolume_2d(points, (4.0, 4.0)) == pytest.approx(6.0)
    assert pareto.hypervolume_2d(np.zeros((0, 2)), (1.0, 1.0)) == 0.0


def test_validate_objectives_names_the_problem() -> None:
    with pytest.raises(ValueError, match="same length"):
        pareto.validate_objectives(["error", "params"], ["min"])
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        pareto.validate_objectives(["error", "params"], ["min", "smallest"])
    with pytest.raises(ValueError, match="must differ"):
        pareto.validate_objectives(["error", "error"], ["min", "min"])


def test_scalarisation_is_augmented_chebyshev() -> None:
    low, high = np.array([0.0, 0.0]), np.array([2.0, 4.0])
    value = scalarise(np.array([[1.0, 1.0]]), np.array([0.5, 0.5]), low, high)
    assert value[0] == pytest.approx(max(0.25, 0.125) + 0.05 * (0.25 + 0.125))


def test_multi_objective_searcher_suggests_new_configurations_toward_the_front() -> None:
    space = SearchSpace({"x": Float(0.0, 1.0)})
    searcher = MultiObjectiveSearcher(
        space, modes=["min", "max"], max_resource=9, levels=[1, 3, 9], reduction_factor=3, seed=0, num_initial_random=4
    )
    rng = np.random.default_rng(1)
    trials: list[TrialRecord] = []
    for _ in range(14):
        config = searcher.suggest(trials)
        assert not searcher.is_among(config, [t.config for t in trials])
        x = config["x"]
        # Objective 1 (min) grows with x, objective 2 (max) too: every x is on the front.
        trials.append(TrialRecord(config, {r: (x + 0.1 / r + 0.01 * rng.random(), x - 0.1 / r) for r in (1, 3, 9)}))
    trials.append(TrialRecord({"x": 0.5}, {1: (math.nan, 1.0)}))  # left out of the model
    with pytest.warns(UserWarning, match="NaN"):
        config = searcher.suggest(trials)
    assert 0.0 <= config["x"] <= 1.0
    assert searcher.model_failures == 0
    weights = searcher.draw_weights()
    assert weights.shape == (2,) and weights.sum() == pytest.approx(1.0)


def test_multi_objective_searcher_refuses_one_objective() -> None:
    with pytest.raises(ValueError, match="two or more objectives"):
        MultiObjectiveSearcher(SearchSpace({"x": Float(0.0, 1.0)}), modes=["min"], max_resource=9)


def test_nehvi_acquisition_suggests_new_configurations_from_the_model() -> None:
    space = SearchSpace({"x": Float(0.0, 1.0), "y": Float(0.0, 1.0)})
    searcher = MultiObjectiveSearcher(
        space, modes=["min", "min"], max_resource=9, levels=[1, 3, 9], reduction_factor=3, seed=0,
        num_initial_random=4, multi_objective_acquisition="nehvi",
    )
    trials: list[TrialRecord] = []
    for i in range(10):
        config = searcher.suggest(trials)
        assert not searcher.is_among(config, [t.config for t in trials])
        x, y = config["x"], config["y"]
        results = {r: (x + y + 0.3 / r, (1 - x) ** 2 + y) for r in (1, 3, 9)}
        trials.append(TrialRecord(config, results, pending_at=3 if i == 9 else None))
    # The model's own proposal (not a random draw), away from the pending configuration.
    unit = searcher._nehvi_unit(trials)
    assert not searcher.is_among(space.from_unit(unit), [t.config for t in trials])
    assert searcher.model_failures == 0


def test_unknown_multi_objective_acquisition_is_refused() -> None:
    with pytest.raises(ValueError, match="multi_objective_acquisition must be 'parego' or 'nehvi'"):
        MultiObjectiveSearcher(SearchSpace({"x": Float(0.0, 1.0)}), modes=["min", "min"], max_resource=9,
                               multi_objective_acquisition="ehvi")
