"""Search-space validation and the unit-cube encoding."""

import math

import numpy as np
import pytest
import torch

from mobster.space import Categorical, Float, Integer, InvalidSpaceError, SearchSpace

SPACE = SearchSpace(
    {
        "lr": Float(1e-5, 1.0, log=True),
        "momentum": Float(0.0, 0.99),
        "dropout": Float(0.0, 0.5, step=0.1),
        "layers": Integer(1, 4),
        "width": Integer(16, 1024, log=True),
        "act": Categorical(("relu", "gelu", "tanh")),
        "bn": Categorical((True, False)),
        "fixed": Integer(3, 3),
        "only": Categorical(("sgd",)),
    }
)


def test_constants_are_not_encoded_but_returned():
    assert SPACE.variables == ["lr", "momentum", "dropout", "layers", "width", "act", "bn"]
    assert SPACE.constants == {"fixed": 3, "only": "sgd"}
    config = SPACE.from_unit(np.full(SPACE.dim, 0.5))
    assert config["fixed"] == 3 and config["only"] == "sgd"


def test_round_trip_of_valid_configs():
    rng = np.random.default_rng(0)
    for unit in SPACE.sample_unit(rng, 200):
        config = SPACE.from_unit(unit)
        assert SPACE.from_unit(SPACE.to_unit(config)) == config
        assert 1e-5 <= config["lr"] <= 1.0
        assert config["layers"] in (1, 2, 3, 4)
        assert 16 <= config["width"] <= 1024 and isinstance(config["width"], int)
        assert math.isclose(config["dropout"] * 10, round(config["dropout"] * 10))


def test_log_float_is_log_scaled_and_integers_relaxed_by_half():
    space = SearchSpace({"lr": Float(1e-4, 1.0, log=True), "n": Integer(1, 4)})
    assert space.to_unit({"lr": 1e-2, "n": 1}) == pytest.approx([0.5, 0.125])
    # Every integer owns an equal share of [0, 1].
    assert [space.from_unit([0.0, u])["n"] for u in (0.01, 0.26, 0.51, 0.99)] == [1, 2, 3, 4]


def test_features_one_hot_for_many_choices_single_coordinate_for_two():
    unit = torch.tensor(SPACE.to_unit({**SPACE.from_unit(np.zeros(SPACE.dim)), "act": "tanh", "bn": False}))
    features = SPACE.features(unit)
    assert SPACE.num_features == 5 + 3 + 1
    assert features[5:8].tolist() == [0.0, 0.0, 1.0]
    assert features[8].item() == 1.0


def test_discrete_and_categorical_coordinates_for_the_optimiser():
    discrete = SPACE.discrete_values()
    # dropout (6 steps) and layers (4); width has 1009 values, so it is relaxed and rounded.
    assert set(discrete) == {2, 3}
    assert len(discrete[3]) == 4
    assert SPACE.categorical_values() == {5: [0.0, 1.0, 2.0], 6: [0.0, 1.0]}


@pytest.mark.parametrize(
    "domains, message",
    [
        ({"a": Categorical(())}, "'a'.*no choices"),
        ({"b": Float(2.0, 1.0)}, "'b'.*greater than"),
        ({"c": Float(0.0, 1.0, log=True)}, "'c'.*log scale needs low > 0"),
        ({"d": Integer(-1, 5, log=True)}, "'d'.*log scale"),
        ({"e": Float(0.0, math.inf)}, "'e'.*finite"),
        ({"f": "uniform"}, "'f'.*unknown domain type"),
        ({}, "no parameters"),
    ],
)
def test_invalid_spaces_name_the_parameter(domains, message):
    with pytest.raises(InvalidSpaceError, match=message):
        SearchSpace(domains)


def test_value_outside_choices_is_named():
    with pytest.raises(ValueError, match="'act'"):
        SPACE.to_unit({**SPACE.from_unit(np.zeros(SPACE.dim)), "act": "swish"})
