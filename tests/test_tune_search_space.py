"""Ray Tune search spaces to the core space: every domain type, Ray's bound conventions, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ray import tune

from mobster.space import Categorical, Float, Integer, InvalidSpaceError
from tune_mobster.search_space import convert_search_space


def _support(param_space: dict, key: str = "p") -> list:
    """Every Ray value the converted parameter can take (discrete domains only)."""
    converted = convert_search_space(param_space)
    (parameter,) = converted.parameters
    domain = parameter.domain
    if isinstance(domain, Categorical):
        values = range(len(domain.choices))
    else:
        values = range(domain.low, domain.high + 1, domain.step)
    return [converted.to_ray({key: v})[key] for v in values]


def _ray_samples(domain, n: int = 4000) -> set:
    return set(domain.sample(size=n, random_state=np.random.default_rng(0)))


@pytest.mark.parametrize(
    "domain, expected",
    [
        (tune.randint(2, 7), [2, 3, 4, 5, 6]),  # upper bound exclusive
        (tune.lograndint(1, 9), [1, 2, 3, 4, 5, 6, 7, 8]),  # upper bound exclusive
        (tune.qrandint(0, 20, 5), [0, 5, 10, 15, 20]),  # q > 1: upper bound inclusive
        (tune.qrandint(2, 7, 1), [2, 3, 4, 5, 6]),  # q == 1: exclusive, like randint
        (tune.qrandint(1, 11, 5), [5, 10]),  # multiples of q inside the bounds
        (tune.qlograndint(5, 40, 5), [5, 10, 15, 20, 25, 30, 35, 40]),
        (tune.quniform(0.0, 1.0, 0.25), [0.0, 0.25, 0.5, 0.75, 1.0]),  # inclusive
        (tune.qloguniform(0.1, 0.5, 0.1), [0.1, 0.2, 0.30000000000000004, 0.4, 0.5]),
        (tune.choice(["a", "b", "c"]), ["a", "b", "c"]),
    ],
)
def test_discrete_supports_match_ray_conventions(domain, expected) -> None:
    support = _support({"p": domain})
    assert support == expected
    # Exactly the values Ray's own sampler draws, as plain Python values of the domain's type.
    assert _ray_samples(domain) == set(support)
    assert {type(v) for v in support} == {type(domain.cast(expected[0]))}


def test_float_domains_keep_bounds_and_scale() -> None:
    converted = convert_search_space({"u": tune.uniform(-1.0, 2.0), "l": tune.loguniform(1e-4, 1e-1)})
    assert converted.space.domains == {"u": Float(-1.0, 2.0), "l": Float(1e-4, 1e-1, log=True)}
    assert converted.to_ray({"u": 0.5, "l": 1e-3}) == {"u": 0.5, "l": 1e-3}


def test_log_and_quantized_domains_are_modelled_on_their_grid_index() -> None:
    converted = convert_search_space(
        {
            "qlog": tune.qloguniform(1e-4, 1e-1, 1e-4),
            "qlogint": tune.qlograndint(4, 64, 4),
            "qu": tune.quniform(0, 2, 0.5),
        }
    )
    assert converted.space.domains["qlog"] == Integer(1, 1000, log=True)
    assert converted.space.domains["qlogint"] == Integer(1, 16, log=True)
    assert converted.space.domains["qu"] == Integer(0, 4)
    expected = {"qlog": pytest.approx(3e-4), "qlogint": 64, "qu": 1.5}
    assert converted.to_ray({"qlog": 3, "qlogint": 16, "qu": 3}) == expected


def test_nested_dicts_lists_and_constants() -> None:
    param_space = {
        "lr": tune.loguniform(1e-4, 1e-1),
        "model": {"depth": tune.randint(1, 4), "act": tune.choice(["relu", "tanh"]), "name": "mlp"},
        "layers": [64, tune.choice([32, 128])],
        "epochs": 10,
    }
    converted = convert_search_space(param_space)
    assert converted.space.variables == ["lr", "model/depth", "model/act", "layers/1"]
    suggestion = converted.to_ray({"lr": 0.01, "model/depth": 3, "model/act": 1, "layers/1": 1})
    # Dicts hold only the searched keys (Ray merges them); a list comes back whole.
    assert suggestion == {"lr": 0.01, "model": {"depth": 3, "act": "tanh"}, "layers": [64, 128]}
    point = {"lr": 0.01, "model": {"depth": 3, "act": "tanh", "name": "mlp"}, "layers": [64, 128], "epochs": 10}
    assert converted.to_core(point) == {"lr": 0.01, "model/depth": 3, "model/act": 1, "layers/1": 1}


def test_unhashable_choices_are_modelled_by_index() -> None:
    converted = convert_search_space({"arch": tune.choice([[64, 64], [128], {"kind": "cnn"}])})
    assert converted.space.domains["arch"] == Categorical((0, 1, 2))
    assert converted.to_ray({"arch": 2}) == {"arch": {"kind": "cnn"}}
    assert converted.to_core({"arch": [128]}) == {"arch": 1}


def test_single_value_domains_are_constants() -> None:
    converted = convert_search_space({"one": tune.randint(3, 4), "x": tune.uniform(0, 1), "c": tune.choice(["only"])})
    assert converted.space.variables == ["x"]
    assert converted.space.constants == {"one": 3, "c": 0}
    assert converted.to_ray(converted.space.from_unit([0.5])) == {"one": 3, "x": 0.5, "c": "only"}


@pytest.mark.parametrize(
    "param_space, key, words",
    [
        ({"a": {"b": tune.grid_search([1, 2])}, "x": tune.uniform(0, 1)}, "a/b", "grid_search"),
        ({"f": tune.sample_from(lambda spec: 1), "x": tune.uniform(0, 1)}, "f", "sample_from"),
        ({"n": tune.randn(0, 1)}, "n", "normal"),
        ({"n": tune.qrandn(0, 1, 0.1)}, "n", "normal"),
        ({"m": {"lr": tune.loguniform(1e-1, 1e-4)}}, "m/lr", "greater than"),
    ],
)
def test_unsupported_domains_are_rejected_naming_the_key(param_space, key, words) -> None:
    with pytest.raises(InvalidSpaceError, match=f"'{key}'.*{words}"):
        convert_search_space(param_space)


def test_space_without_domains_is_rejected() -> None:
    with pytest.raises(InvalidSpaceError, match="no tune"):
        convert_search_space({"epochs": 10})


@pytest.mark.parametrize(
    "point, words",
    [
        ({"x": 2.0, "k": 1}, "'x'.*out of its bounds"),
        ({"x": 0.5, "k": 5}, "'k'.*out of its bounds"),  # randint(0, 5) excludes 5
        ({"x": 0.5}, "no value for \\['k'\\]"),
        ({"x": math.nan, "k": 1}, "'x'.*finite"),
    ],
)
def test_invalid_points_name_the_key(point, words) -> None:
    converted = convert_search_space({"x": tune.uniform(0, 1), "k": tune.randint(0, 5)})
    with pytest.raises(ValueError, match=words):
        converted.to_core(point)


def test_core_round_trip_of_random_configurations() -> None:
    converted = convert_search_space(
        {
            "a": tune.uniform(0, 1),
            "b": tune.qloguniform(1e-3, 1.0, 1e-3),
            "c": tune.lograndint(1, 1000),
            "d": tune.qrandint(-10, 10, 2),
            "e": tune.choice([None, "x", 3]),
        }
    )
    rng = np.random.default_rng(1)
    for unit in converted.space.sample_unit(rng, 200):
        core = converted.space.from_unit(unit)
        ray_config = converted.to_ray(core)
        assert converted.to_core(ray_config) == core
        assert 1e-3 <= ray_config["b"] <= 1.0 and 1 <= ray_config["c"] <= 999 and ray_config["d"] % 2 == 0
