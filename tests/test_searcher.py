"""The core searcher: random start, no duplicates, fantasies spread concurrent suggestions, fallbacks."""

import math
import warnings

import numpy as np
import pytest

from mobster import Categorical, Float, Integer, ModelBasedSearcher, SearchSpace, TrialRecord, rung_levels
from mobster.known import RESOLUTION, KnownConfigurations

SPACE = SearchSpace({"x": Float(0.0, 1.0), "y": Float(0.0, 1.0), "n": Integer(1, 6), "c": Categorical(("a", "b", "c"))})
LEVELS = rung_levels(1, 27, 3)


def curve(config: dict, r: int) -> float:
    base = (config["x"] - 0.3) ** 2 + (config["y"] - 0.7) ** 2 + 0.05 * abs(config["n"] - 4)
    return base + {"a": 0.0, "b": 0.1, "c": 0.2}[config["c"]] + 0.5 * math.exp(-r / 4)


def history(n: int, seed: int = 0) -> list[TrialRecord]:
    rng = np.random.default_rng(seed)
    records = []
    for unit in SPACE.sample_unit(rng, n):
        config = SPACE.from_unit(unit)
        top = LEVELS[rng.integers(0, len(LEVELS))]
        records.append(TrialRecord(config, {r: curve(config, r) for r in LEVELS if r <= top}))
    return records


def test_first_suggestion_is_the_centre_then_random():
    searcher = ModelBasedSearcher(SPACE, max_resource=27, levels=LEVELS, seed=0)
    first = searcher.suggest([])
    assert first["x"] == first["y"] == 0.5 and first["n"] in (3, 4) and first["c"] == "b"
    second = searcher.suggest([TrialRecord(first, {1: 0.3})])
    assert second != first


def test_same_seed_same_suggestions():
    records = history(20)
    a = ModelBasedSearcher(SPACE, max_resource=27, levels=LEVELS, seed=3).suggest(records)
    b = ModelBasedSearcher(SPACE, max_resource=27, levels=LEVELS, seed=3).suggest(records)
    assert a == b


def test_model_based_suggestion_is_in_a_good_region():
    # No random share: this is about the model's proposals.
    searcher = ModelBasedSearcher(SPACE, max_resource=27, levels=LEVELS, random_fraction=0.0, seed=1)
    records = history(40, seed=1)
    suggestions = []
    for _ in range(4):
        config = searcher.suggest(records)
        suggestions.append(curve(config, 27))
        records.append(TrialRecord(config, {r: curve(config, r) for r in LEVELS}))
    random_values = [curve(SPACE.from_unit(u), 27) for u in SPACE.sample_unit(np.random.default_rng(9), 400)]
    assert np.median(suggestions) < np.quantile(random_values, 0.2)


def test_fantasies_make_concurrent_suggestions_distinct_and_spread():
    searcher = ModelBasedSearcher(SPACE, max_resource=27, levels=LEVELS, seed=2)
    records = history(30, seed=2)
    picks = []
    for _ in range(4):
        config = searcher.suggest(records)
        picks.append(SPACE.to_unit(config))
        records.append(TrialRecord(config, {}, pending_at=1))  # running, nothing reported yet
    keys = {tuple(np.round(p, 9)) for p in picks}
    assert len(keys) == 4
    continuous = np.array(picks)[:, :2]
    distances = [np.linalg.norm(a - b) for i, a in enumerate(continuous) for b in continuous[i + 1 :]]
    assert min(distances) > 1e-3


def test_never_suggests_a_known_configuration():
    tiny = SearchSpace({"n": Integer(1, 3), "c": Categorical(("a", "b"))})  # 6 configurations
    searcher = ModelBasedSearcher(tiny, max_resource=9, levels=[1, 3, 9], num_initial_random=2, seed=0)
    records: list[TrialRecord] = []
    for i in range(6):
        config = searcher.suggest(records)
        records.append(TrialRecord(config, {1: float(i % 3), 3: float(i % 2)}))
    assert len({tuple(sorted(r.config.items())) for r in records}) == 6
    with pytest.raises(LookupError):
        searcher.suggest(records)


def test_nan_values_are_left_out_with_one_warning_naming_the_trial():
    searcher = ModelBasedSearcher(SPACE, max_resource=27, levels=LEVELS, seed=0)
    records = history(12)
    records[3] = TrialRecord(records[3].config, {1: math.nan, 3: math.inf}, name="7")
    with pytest.warns(UserWarning, match="trial 7 reported a NaN/inf"):
        searcher.suggest(records)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        searcher.suggest(records)  # warned once only


def test_constant_objective_still_suggests():
    searcher = ModelBasedSearcher(SPACE, max_resource=27, levels=LEVELS, seed=0)
    records = [TrialRecord(r.config, {k: 1.0 for k in r.results}) for r in history(15)]
    config = searcher.suggest(records)
    assert config not in [r.config for r in records]


def test_maximisation_prefers_the_other_end():
    space = SearchSpace({"x": Float(0.0, 1.0)})
    records = [TrialRecord({"x": x}, {1: x, 3: x}) for x in np.linspace(0.05, 0.95, 10)]
    high = ModelBasedSearcher(space, max_resource=3, levels=[1, 3], mode="max", seed=0).suggest(records)
    low = ModelBasedSearcher(space, max_resource=3, levels=[1, 3], mode="min", seed=0).suggest(records)
    assert high["x"] > 0.9 and low["x"] < 0.1


def test_numerical_failure_falls_back_to_random(monkeypatch):
    searcher = ModelBasedSearcher(SPACE, max_resource=27, levels=LEVELS, seed=0)

    def broken_fit(*args, **kwargs):
        raise RuntimeError("Cholesky failed")

    monkeypatch.setattr("mobster.searcher.fit_model", broken_fit)
    with pytest.warns(UserWarning, match="model failed"):
        config = searcher.suggest(history(12))
    assert set(config) == {"x", "y", "n", "c"}


def test_invalid_arguments():
    with pytest.raises(ValueError, match="unknown kernel 'rbf'"):
        ModelBasedSearcher(SPACE, max_resource=27, kernel="rbf")
    with pytest.raises(ValueError, match="mode"):
        ModelBasedSearcher(SPACE, max_resource=27, mode="maximize")


def test_known_configurations_cover_their_neighbourhood_but_not_beyond():
    known = KnownConfigurations([np.array([0.5, 0.5, 2.0])], dim=3)  # two numbers, one choice index
    assert np.array([0.505, 0.495, 2.0]) in known  # under 1% of the range on every number
    assert np.array([0.52, 0.5, 2.0]) not in known  # one number moved by 2%
    assert np.array([0.5, 0.5, 1.0]) not in known  # another choice
    assert not known.holds_exactly(np.array([0.505, 0.495, 2.0]))
    assert known.holds_exactly(np.array([0.5, 0.5, 2.0]))


def test_suggestions_keep_their_distance_from_every_known_configuration():
    searcher = ModelBasedSearcher(SPACE, max_resource=27, levels=LEVELS, reduction_factor=3, seed=4)
    records = history(30, seed=4)
    for _ in range(6):
        config = searcher.suggest(records)
        unit = SPACE.to_unit(config)
        nearest = min(np.abs(SPACE.to_unit(r.config) - unit).max() for r in records)
        assert nearest >= RESOLUTION
        records.append(TrialRecord(config, {}, pending_at=1))


def test_random_fraction_one_never_asks_the_model(monkeypatch):
    def broken_fit(*args, **kwargs):
        raise RuntimeError("the model was asked")

    monkeypatch.setattr("mobster.searcher.fit_model", broken_fit)
    always_random = ModelBasedSearcher(SPACE, max_resource=27, levels=LEVELS, random_fraction=1.0, seed=0)
    records = history(12)
    for _ in range(5):
        records.append(TrialRecord(always_random.suggest(records), {1: 0.5}))
    assert always_random.model_failures == 0
    model_based = ModelBasedSearcher(SPACE, max_resource=27, levels=LEVELS, random_fraction=0.0, seed=0)
    with pytest.warns(UserWarning, match="model failed"):
        model_based.suggest(records)
    assert model_based.model_failures == 1


def test_by_default_about_a_third_of_model_phase_suggestions_are_random(monkeypatch):
    def broken_fit(*args, **kwargs):
        raise RuntimeError("the model was asked")

    monkeypatch.setattr("mobster.searcher.fit_model", broken_fit)
    searcher = ModelBasedSearcher(SPACE, max_resource=27, levels=LEVELS, seed=0)
    records = history(12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each model-based suggestion warns that the model failed
        for _ in range(90):
            records.append(TrialRecord(searcher.suggest(records), {1: 0.5}))
    asked_the_model = searcher.model_failures / 90
    assert 0.5 < asked_the_model < 0.8


def test_suggest_random_skips_the_model_and_known_configurations(monkeypatch):
    def broken_fit(*args, **kwargs):
        raise RuntimeError("the model was asked")

    monkeypatch.setattr("mobster.searcher.fit_model", broken_fit)
    tiny = SearchSpace({"n": Integer(1, 3), "c": Categorical(("a", "b"))})  # 6 configurations
    searcher = ModelBasedSearcher(tiny, max_resource=9, levels=[1, 3, 9], num_initial_random=0, seed=0)
    records: list[TrialRecord] = []
    for i in range(6):
        records.append(TrialRecord(searcher.suggest_random(records), {1: float(i)}))
    assert len({tuple(sorted(r.config.items())) for r in records}) == 6
    assert searcher.model_failures == 0
    with pytest.raises(LookupError):
        searcher.suggest_random(records)


def test_is_among_judges_like_the_known_configurations():
    searcher = ModelBasedSearcher(SPACE, max_resource=27, levels=LEVELS, seed=0)
    config = {"x": 0.5, "y": 0.5, "n": 3, "c": "b"}
    assert searcher.is_among(config, [{**config, "x": 0.5 + RESOLUTION / 2}])
    assert not searcher.is_among(config, [{**config, "x": 0.5 + 2 * RESOLUTION}, {**config, "c": "a"}])
    assert not searcher.is_among(config, [{"x": 0.5}])  # outside the space: never matched
    assert not searcher.is_among(config, [])


def late_bloomer(x: float, r: int, r_max: int = 9) -> float:
    """Large x starts worst and ends best: the learning curves cross."""
    return x * (1 - r / r_max) + (1 - x) * r / r_max


def test_final_means_rank_configurations_by_their_modelled_full_resource_value():
    space = SearchSpace({"x": Float(0.0, 1.0)})
    searcher = ModelBasedSearcher(
        space, max_resource=9, levels=[1, 3, 9], num_initial_random=4, random_fraction=0.0, seed=0
    )
    xs = np.linspace(0.05, 0.85, 9)
    records = [TrialRecord({"x": float(x)}, {r: late_bloomer(x, r) for r in (1, 3, 9)}) for x in xs]
    searcher.suggest(records[:3])  # still in the random start: no model
    assert searcher.final_means(records[:3]) is None
    running = TrialRecord({"x": 0.45}, {}, pending_at=1)
    searcher.suggest([*records, running])  # the model answers from here on, without fitting again
    posterior = searcher._posterior
    assert posterior is not None and posterior.missing([searcher._unit_or_none(running).tobytes()]) == []  # computed ahead
    # A new trial with one early result, the worst so far: the model expects it to finish
    # better than every configuration but its nearest neighbour (x = 0.85).
    records.append(TrialRecord({"x": 0.95}, {1: late_bloomer(0.95, 1)}))
    means = searcher.final_means(records, fresh=[len(records) - 1])
    assert means is not None and means.shape == (len(records),)
    assert means[-1] < means[:-2].min()
    assert means[0] > means[-2]  # x = 0.05 finishes worse than x = 0.85
    outside = searcher.final_means([*records, TrialRecord({"y": 1.0}, {1: 0.5})])
    assert outside is not None and outside[-1] == np.inf  # outside the space: never ranked


def test_a_range_holding_few_doubles_is_used_up_without_repeating_a_configuration() -> None:
    # Between 2 and 2 + 1.5e-14 lie only 34 doubles: nearby search coordinates decode to one value,
    # so the searcher must compare candidates after decoding (Hypothesis found the repeat).
    space = SearchSpace({"x": Float(2.0, 2.0000000000000147, log=True)})
    assert space.has_coarse_floats() and not SearchSpace({"x": Float(2.0, 3.0)}).has_coarse_floats()
    searcher = ModelBasedSearcher(space, max_resource=9, levels=[1, 3, 9], num_initial_random=1, num_fantasies=2, seed=0)
    records: list[TrialRecord] = []
    seen: set[float] = set()
    for step in range(40):
        try:
            config = searcher.suggest(records)
        except LookupError:
            break
        assert config["x"] not in seen
        seen.add(config["x"])
        records.append(TrialRecord(config, {1: float(step % 7)}, name=str(step)))
    assert 1 < len(seen) <= 34


def test_a_kept_model_given_new_data_suggests_what_a_new_model_would() -> None:
    """Between hyperparameter fits the searcher gives its last GP the new data instead of
    building the modules again; its suggestions must be those of a GP built afresh each time."""
    kept = ModelBasedSearcher(SPACE, max_resource=27, levels=LEVELS, random_fraction=0.0, seed=5)
    rebuilt = ModelBasedSearcher(SPACE, max_resource=27, levels=LEVELS, random_fraction=0.0, seed=5)
    records = history(60, seed=5)
    models = []
    for _ in range(4):  # a trial more each time: under the 10% of new data that refits
        rebuilt._last_model = None
        config = kept.suggest(records)
        assert rebuilt.suggest(records) == config
        models.append(kept._last_model[0])
        records.append(TrialRecord(config, {1: curve(config, 1)}))
    assert models[1] is models[2] is models[3]  # the kept GP answered: the test saw that path
