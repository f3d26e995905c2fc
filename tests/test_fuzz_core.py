"""Property-based tests (Hypothesis) of the framework-agnostic core.

* Random search spaces (floats, log floats, stepped floats, integers, log and stepped integers,
  categoricals of mixed types, constants): every search point maps to a valid configuration,
  configurations round-trip through the unit cube, and the duplicate key is stable.
* Random result sequences (ties, constants, huge and tiny values, NaN, inf, out-of-order
  resources) through ``RungTable``, stopping and promotion, with Hyperband brackets: decisions
  are always allowed ones, non-finite values stop, stopping follows the rank form of the rung
  rule, promotions pick a paused trial in the top ``1/eta`` and never twice from one rung.
* Random interleavings of suggest / report / complete / fail through ``ModelBasedSearcher`` on
  small and tiny spaces: no crash, no duplicate, ``LookupError`` only once the space is exhausted.

Examples are few and models tiny (``num_fantasies=2``, a small data cap) to keep the file under
a minute. Separate, deterministic tests (at the end) keep the bugs the fuzzing found fixed.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mobster import rungs
from mobster.history import TrialRecord
from mobster.rung_table import RungTable
from mobster.searcher import ModelBasedSearcher
from mobster.space import Categorical, Float, Integer, SearchSpace, _num_values

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ----- spaces -------------------------------------------------------------------------------


@st.composite
def float_domains(draw) -> Float:
    kind = draw(st.sampled_from(["plain", "log", "step", "constant", "tiny", "huge"]))
    if kind == "log":
        low = draw(st.floats(1e-12, 1e6))
        # Ratios just above 1 too: bounds a few ulps apart share a logarithm (a constant).
        return Float(low, low * draw(st.one_of(st.floats(1.0, 1.0 + 1e-14), st.floats(1.0, 1e8))), log=True)
    if kind == "step":
        if draw(st.booleans()):  # decimal steps, high exactly on the grid as low + k * step
            low = draw(st.floats(-1e3, 1e3))
            step = draw(st.sampled_from([0.001, 0.1, 0.3, 0.25]))
            return Float(low, low + draw(st.integers(0, 300)) * step, step=step)
        # Binary-exact grids with ``high`` anywhere, on or off the grid (an off-grid high holds
        # the grid points below it). Decimal steps with an arbitrary high: see the test below.
        low = float(draw(st.integers(-1000, 1000)))
        step = draw(st.sampled_from([0.25, 0.5, 1.0, 3.0]))
        return Float(low, low + draw(st.integers(0, 300)) * step + draw(st.floats(0.0, 0.99)) * step, step=step)
    if kind == "constant":
        value = draw(st.floats(-1e6, 1e6))
        return Float(value, value)
    if kind == "tiny":
        low = draw(st.floats(-1.0, 1.0))
        return Float(low, low + draw(st.floats(1e-9, 1e-6)))
    if kind == "huge":
        return Float(-draw(st.floats(1.0, 1e150)), draw(st.floats(1.0, 1e150)))
    low = draw(st.floats(-1e6, 1e6))
    return Float(low, low + draw(st.floats(0.0, 1e6)))


@st.composite
def integer_domains(draw) -> Integer:
    if draw(st.booleans()):
        low = draw(st.integers(1, 10**6))
        return Integer(low, low + draw(st.integers(0, 10**7)), log=True)
    low = draw(st.integers(-10**6, 10**6))
    step = draw(st.sampled_from([1, 1, 2, 3, 7]))
    return Integer(low, low + draw(st.integers(0, 400)) * step + draw(st.integers(0, step - 1)), step=step)


CHOICE_VALUES = st.one_of(
    st.text(max_size=3), st.integers(-5, 5), st.floats(-2.0, 2.0), st.none(), st.booleans()
)


@st.composite
def categorical_domains(draw) -> Categorical:
    choices = draw(st.lists(CHOICE_VALUES, min_size=1, max_size=5))
    unique: list = []
    for choice in choices:  # distinct under ==, as Optuna and Ray require (1 == 1.0 == True)
        if not any(choice == other for other in unique):
            unique.append(choice)
    return Categorical(tuple(unique))


DOMAINS = st.one_of(float_domains(), integer_domains(), categorical_domains())
SPACES = st.dictionaries(st.text("abcdefgh", min_size=1, max_size=4), DOMAINS, min_size=1, max_size=5).map(SearchSpace)


def assert_valid(space: SearchSpace, config: dict) -> None:
    assert list(config) == list(space.domains)
    for name, domain in space.domains.items():
        value = config[name]
        if isinstance(domain, Categorical):
            assert any(value is choice or value == choice for choice in domain.choices), (name, value)
        elif isinstance(domain, Integer):
            assert isinstance(value, int) and domain.low <= value <= domain.high, (name, value)
            assert (value - domain.low) % domain.step == 0, (name, value)
        else:
            assert isinstance(value, float) and domain.low <= value <= domain.high, (name, value)
            if domain.step is not None:
                index = (value - domain.low) / domain.step
                assert abs(index - round(index)) < 1e-6, (name, value)


def same_config(space: SearchSpace, a: dict, b: dict) -> bool:
    for name, domain in space.domains.items():
        if isinstance(domain, Float) and domain.step is None:
            scale = max(abs(domain.low), abs(domain.high), 1e-300)
            if not math.isclose(a[name], b[name], rel_tol=1e-9, abs_tol=1e-12 * scale):
                return False
        elif a[name] != b[name]:
            return False
    return True


@FAST
@given(space=SPACES, data=st.data())
def test_random_spaces_map_the_unit_cube_to_valid_configurations(space, data):
    assert space.dim == len(space.variables) and set(space.constants) | set(space.variables) == set(space.domains)
    categorical = space.categorical_values()
    unit = np.array(
        [
            data.draw(st.floats(-0.5, len(categorical[j]) - 0.5)) if j in categorical else data.draw(st.floats(0.0, 1.0))
            for j in range(space.dim)
        ]
    )
    config = space.from_unit(unit)
    assert_valid(space, config)
    for name, value in space.constants.items():
        assert config[name] == value
    # Round trip, duplicate key, and the encodings' shapes and ranges.
    back = space.to_unit(config)
    assert same_config(space, space.from_unit(back), config)
    assert space.config_key(space.from_unit(back)) == space.config_key(config)
    for j in range(space.dim):
        if j in categorical:
            assert back[j] in categorical[j]
        else:
            assert 0.0 <= back[j] <= 1.0
    features = space.features(torch.tensor(back))
    assert features.shape == (space.num_features,) and torch.isfinite(features).all()
    # Random and rounded search points are valid and fixed points of the rounding.
    rows = space.sample_unit(np.random.default_rng(data.draw(st.integers(0, 2**16))), 4)
    assert rows.shape == (4, space.dim)
    for row in rows:
        assert_valid(space, space.from_unit(row))
    np.testing.assert_allclose(space.round_unit(rows), rows, rtol=1e-9, atol=1e-12)


# ----- rungs --------------------------------------------------------------------------------

# Subnormal values (5e-324, ...) are left to a deterministic test below.
VALUES = st.one_of(
    st.sampled_from([0.0, 1.0, 1.0, -1.0, 0.5, 1e-300, -1e-300, 1e300, -1e300, 1.7e308, -1.7e308, math.nan, math.inf, -math.inf]),
    st.floats(-10.0, 10.0, allow_subnormal=False),
    st.integers(-3, 3).map(float),  # ties
)


def rank_rule_stops(value: float, rung_values: list[float], eta: float) -> bool | None:
    """The rung rule in rank form: stop iff (n-1)/eta < #values strictly better (None: on the edge)."""
    finite = [v for v in rung_values if math.isfinite(v)]
    better = sum(v < value for v in finite)
    edge = (len(finite) - 1) / eta - better
    return None if abs(edge) < 1e-9 else edge < 0


@st.composite
def rung_scenarios(draw):
    eta = draw(st.sampled_from([1.5, 2, 2.5, 3, 4]))
    r_min = draw(st.integers(1, 3))
    levels = rungs.rung_levels(r_min, draw(st.integers(r_min, 40)), eta)
    events = draw(
        st.lists(
            st.tuples(st.sampled_from(["report", "report", "report", "promote", "jump_back"]), st.integers(0, 7), VALUES),
            max_size=60,
        )
    )
    return eta, levels, draw(st.booleans()), draw(st.integers(1, 3)), events


@FAST
@given(scenario=rung_scenarios(), seed=st.integers(0, 100))
def test_rung_table_decisions_are_allowed_and_follow_the_rule(scenario, seed):
    eta, levels, promotion, brackets, events = scenario
    table = RungTable(levels, eta, promotion=promotion, brackets=brackets, seed=seed)
    allowed = {"continue", "stop", "complete"} | ({"pause"} if promotion else set())
    resource: dict[int, int] = {}
    status: dict[int, str] = {}  # running, paused, done
    promoted_from: set[tuple[int, int]] = set()
    for action, trial, value in events:
        if action == "promote":
            paused = {t for t, s in status.items() if s == "paused"}
            chosen = table.choose_promotion(paused)
            if chosen is None:
                continue
            assert chosen in paused
            level = table.recorded_level(chosen)
            assert (chosen, level) not in promoted_from  # never twice from one rung
            rank = sorted((v, str(t)) for t, v in table.values[level].items() if math.isfinite(v))
            assert (table.values[level][chosen], str(chosen)) in rank[: int(len(table.values[level]) // eta)]
            promoted_from.add((chosen, level))
            table.mark_promoted(chosen)
            status[chosen] = "running"
            continue
        if status.get(trial, "running") != "running":
            continue
        first = trial not in resource
        table.add_trial(trial)
        if first:
            resource[trial] = table.trial_levels(trial)[0] - 1
        if action == "jump_back":
            resource[trial] = max(0, resource[trial] - 2)  # an out-of-order report
        else:
            resource[trial] += 1
        r = resource[trial]
        reached = [lv for lv in table.trial_levels(trial)[:-1] if lv <= r and trial not in table.values[lv]]
        decision = table.on_result(trial, r, value)
        assert decision in allowed
        event(f"decision {decision}")
        if r >= table.max_resource:
            assert decision == "complete"
        elif not math.isfinite(value):
            assert decision == "stop"  # NaN and inf always stop (except at the end)
        elif not reached:
            assert decision == "continue"  # between rungs
        elif promotion:
            assert decision == "pause"
        else:
            level = reached[-1]
            assert table.values[level][trial] == value
            expected = rank_rule_stops(value, list(table.values[level].values()), eta)
            if expected is not None:
                assert (decision == "stop") == expected, (value, table.values[level])
        if decision in ("stop", "complete"):
            status[trial] = "done"
        elif decision == "pause":
            status[trial] = "paused"


# ----- the searcher -------------------------------------------------------------------------

LEVELS = [1, 3, 9]
SMALL_SPACES = st.one_of(
    st.sampled_from(
        [
            SearchSpace({"n": Integer(1, 3), "c": Categorical(("a", "b"))}),  # 6 configurations
            SearchSpace({"c": Categorical((True, False))}),  # 2
            SearchSpace({"k": Integer(0, 2), "fixed": Float(0.5, 0.5)}),  # 3, and a constant
            SearchSpace({"x": Float(0.0, 1.0), "c": Categorical(("a", "b", "c"))}),
        ]
    ),
    st.dictionaries(st.sampled_from("xyz"), DOMAINS, min_size=1, max_size=3).map(SearchSpace),  # constants only too
    st.tuples(
        st.dictionaries(st.sampled_from("xyz"), DOMAINS, max_size=2),
        st.sampled_from([Integer(0, 4), Float(0.0, 1.0), Categorical(("p", "q")), Float(1e-3, 1.0, log=True)]),
    ).map(lambda parts: SearchSpace({**parts[0], "w": parts[1]})),
)


def num_configurations(space: SearchSpace) -> float:
    count = 1.0
    for name in space.variables:
        values = _num_values(space.domains[name])
        if values is None:
            values = _distinct_decoded_values(space.domains[name])
        count *= values
    return count


def _distinct_decoded_values(domain: Float) -> float:
    """A continuous range holds infinitely many configurations, unless it is so narrow that only a
    handful of doubles lie in it (then decoding merges search coordinates: count what is left)."""
    one = SearchSpace({"x": domain})
    if not one.has_coarse_floats():
        return math.inf
    return len({one.from_unit([u])["x"] for u in np.linspace(0.0, 1.0, 20001)})


@st.composite
def searcher_scenarios(draw):
    space = draw(SMALL_SPACES)
    ops = draw(
        st.lists(
            st.tuples(st.sampled_from(["suggest", "suggest", "report", "report", "complete", "fail"]), st.integers(0, 20), VALUES),
            min_size=6,
            max_size=16,
        )
    )
    return space, ops, draw(st.integers(1, 3)), draw(st.integers(2, 12)), draw(st.sampled_from(["min", "max"]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=searcher_scenarios(), seed=st.integers(0, 1000))
def test_searcher_survives_random_interleavings(scenario, seed):
    space, ops, num_initial_random, max_observations, mode = scenario
    searcher = ModelBasedSearcher(
        space,
        max_resource=LEVELS[-1],
        levels=LEVELS,
        mode=mode,
        num_initial_random=num_initial_random,
        num_fantasies=2,
        max_observations=max_observations,
        seed=seed,
    )
    total = num_configurations(space)
    records: list = []
    suggestions = 0
    for action, index, value in ops:
        if suggestions >= 6 and action == "suggest":
            continue  # keeps the example fast; the interleaving around it is what matters
        running = [r for r in records if r.pending_at is not None]
        if action == "suggest":
            keys = {space.config_key(r.config) for r in records}
            model_based = len(records) >= num_initial_random
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")  # NaN notices and model fallbacks are allowed
                    config = searcher.suggest(records)
            except LookupError:
                assert len(keys) >= total, "LookupError before the space was exhausted"
                event("exhausted")
                continue
            if model_based:
                fell_back = any("model failed" in str(w.message) for w in caught)
                event("model failed, random fallback" if fell_back else "model-based suggestion")
            suggestions += 1
            assert_valid(space, config)
            assert space.config_key(config) not in keys, "duplicate suggestion"
            records.append(TrialRecord(config, {}, pending_at=LEVELS[0], name=str(len(records))))
        elif running:
            record = running[index % len(running)]
            if action == "report":
                record.results[record.pending_at] = value
                later = [lv for lv in LEVELS if lv > record.pending_at]
                record.pending_at = later[0] if later else None
            elif action == "complete":
                record.pending_at = None
            else:  # fail: Optuna drops its results, Ray keeps them
                record.pending_at = None
                if index % 2:
                    record.results.clear()


# ----- bugs found by the fuzzing, fixed; these tests keep them fixed ---------------------------


def test_stepped_domain_with_high_off_the_grid_stays_on_the_grid():
    # Float(0, 1, step=0.3) holds 0, 0.3, 0.6, 0.9. _unit_range used to pad ``high`` (1.0), not
    # the last grid point (0.9), so the top of the unit interval rounded to step 4 (1.2) and was
    # clipped to 1.0, off the grid. Same for Integer(0, 10, step=3) -> 10.
    floats, integers = SearchSpace({"x": Float(0.0, 1.0, step=0.3)}), SearchSpace({"n": Integer(0, 10, step=3)})
    assert_valid(floats, floats.from_unit([1.0]))
    assert_valid(integers, integers.from_unit([1.0]))


def test_stepped_domain_with_high_off_the_grid_is_never_suggested_twice():
    # The unit point of the off-grid 1.0 was not excluded, but from_unit(to_unit(1.0)) is 0.9:
    # the searcher proposed 0.9 again and never reported the 4-value space as exhausted.
    space = SearchSpace({"x": Float(0.0, 1.0, step=0.3)})
    searcher = ModelBasedSearcher(space, max_resource=1, num_initial_random=100, seed=0)
    records: list[TrialRecord] = []
    with pytest.raises(LookupError):
        for i in range(5):
            config = searcher.suggest(records)
            assert space.config_key(config) not in {space.config_key(r.config) for r in records}, config
            records.append(TrialRecord(config, {1: float(i)}))


def test_huge_finite_bounds_are_rejected_or_mapped_correctly():
    # Float(-1e308, 1e308) used to pass validation (both bounds finite), but hi - lo = inf, so
    # every value mapped to unit 0 and unit 0.5 to 1e308.
    try:
        space = SearchSpace({"x": Float(-1e308, 1e308)})
    except ValueError as error:
        assert "'x'" in str(error)
        return
    assert abs(space.from_unit([0.5])["x"]) < 1e300
    assert space.to_unit({"x": 0.0})[0] == pytest.approx(0.5)


def test_stopping_rule_survives_values_near_the_float_limit():
    # The 1/3 quantile of [-1e308, 1e308] is about -3.3e307, but np.quantile computes
    # a + (b - a) * t with b - a = inf: the threshold was inf and the worse value continued.
    assert rank_rule_stops(1e308, [-1e308, 1e308], 3) is True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert rungs.should_stop(1e308, [-1e308, 1e308], 3)
        table = RungTable([1, 3], 3)
        table.on_result("a", 1, -1e308)
        assert table.on_result("b", 1, 1e308) == "stop"


def test_space_of_constants_is_exhausted_after_one_suggestion():
    space = SearchSpace({"fixed": Integer(3, 3), "only": Categorical(("sgd",))})
    searcher = ModelBasedSearcher(space, max_resource=1)
    first = searcher.suggest([])
    with pytest.raises(LookupError):
        searcher.suggest([TrialRecord(first, {1: 0.5})])  # it used to return the same one again


def test_lookup_error_only_once_the_space_is_exhausted():
    # 999 of 1000 integers tried: _random_config draws 256 random points (maximize_acquisition
    # 512 + anchors) and used to raise LookupError when all of them were taken, one being left.
    space = SearchSpace({"n": Integer(0, 999)})
    records = [TrialRecord({"n": n}, {1: float(n % 7)}) for n in range(1000) if n != 500]
    for seed in range(3):
        searcher = ModelBasedSearcher(space, max_resource=1, num_initial_random=10**6, seed=seed)
        assert searcher.suggest(records) == {"n": 500}


def test_log_domain_whose_bounds_share_a_logarithm():
    # 9.0 < 9.000000000000002, but math.log maps both to the same float: (x - lo) / (hi - lo)
    # divided by zero in to_unit. Found by the space property above.
    space = SearchSpace({"a": Float(9.0, 9.000000000000002, log=True)})
    assert_valid(space, space.from_unit(space.to_unit({"a": 9.0})))


def test_stepped_float_top_value_never_exceeds_high():
    # The fix for off-grid highs clips to _top = low + (count - 1) * step, which for
    # Float(0.1, 0.3, step=0.1) is 0.30000000000000004 > high. Optuna's FloatDistribution(0.1,
    # 0.3, step=0.1) does not contain that value, so Optuna drops the model's suggestion for the
    # parameter and samples it at random instead. Fix: _top = min(low + (count-1) * step, high).
    import optuna

    space = SearchSpace({"x": Float(0.1, 0.3, step=0.1)})
    top = space.from_unit([1.0])["x"]
    assert top <= 0.3
    assert optuna.distributions.FloatDistribution(0.1, 0.3, step=0.1)._contains(top)


def test_stopping_rule_separates_the_smallest_values():
    # should_stop compares value / 2 with the quantile of the halved values; 5e-324 / 2 == 0.0,
    # so 5e-324 ties with 0.0 and continues although it is the worse of the two. Fix: decide in
    # rank form, stop iff #(finite values < value) > (#finite values - 1) / eta, exactly the
    # quantile rule with no arithmetic on the values (no overflow, no underflow).
    assert rank_rule_stops(5e-324, [0.0, 5e-324], 1.5) is True
    assert rungs.should_stop(5e-324, [0.0, 5e-324], 1.5)
