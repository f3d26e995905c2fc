"""The stored learning-curve tables load, are well formed, and map configurations onto the grid."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from benchmarks.tables import Parameter, Table, list_tables, load_table, save_table

NAMES = list_tables()


def test_at_least_four_tables() -> None:
    assert len(NAMES) >= 4


@pytest.fixture(scope="module", params=NAMES)
def table(request: pytest.FixtureRequest) -> Table:
    return load_table(request.param)


def test_shapes_and_values(table: Table) -> None:
    n = len(table.configs)
    assert n >= 500
    assert 27 <= table.max_resource <= 100
    assert table.curves.shape == (n, table.max_resource)
    assert np.isfinite(table.curves).all()
    assert table.seconds_per_unit.shape[0] == n
    assert (table.seconds_per_unit > 0).all() and np.isfinite(table.seconds_per_unit).all()
    # Costs must really differ between configurations, not be one constant.
    assert table.seconds_per_unit.max() > 1.5 * table.seconds_per_unit.min()
    # Final errors spread out: the best is clearly better than the median.
    assert table.best_final_error() < np.median(table.curves[:, -1])
    assert len({tuple(sorted(c.items())) for c in table.configs}) == n


def test_parameters(table: Table) -> None:
    assert 4 <= len(table.parameters) <= 8
    kinds = {p.kind for p in table.parameters}
    assert "categorical" in kinds and kinds & {"float", "int"}
    for p in table.parameters:
        assert len(p.values) >= 2
        if p.kind != "categorical":
            assert list(p.values) == sorted(p.values)
            assert not p.log or p.values[0] > 0
        for c in table.configs[:50]:
            assert c[p.name] in p.values


def _towards_neighbour(p: Parameter, value: Any, fraction: float) -> Any:
    """``value`` moved ``fraction`` of the way to an adjacent grid value (on log scale if ``log``)."""
    if p.kind == "categorical":
        return value
    k = p.values.index(value)
    other = p.values[k + 1] if k + 1 < len(p.values) else p.values[k - 1]
    if p.log:
        return float(np.exp(np.log(value) + fraction * (np.log(other) - np.log(value))))
    return value + fraction * (other - value)


def test_nearest_snaps_perturbed_configs_back(table: Table) -> None:
    for i in range(0, len(table.configs), 37):
        config = table.configs[i]
        assert table.nearest(config) == i
        perturbed = {p.name: _towards_neighbour(p, config[p.name], 0.4) for p in table.parameters}
        assert table.nearest(perturbed) == i


def test_tables_are_full_grids(table: Table) -> None:
    # Every combination of grid values is a row, so snapping each parameter to its nearest grid
    # value always finds the configuration: no tuner is pushed onto a far-away stored row.
    assert len(table.configs) == math.prod(len(p.values) for p in table.parameters)
    assert table.metadata["full_grid"] is True


def test_moving_one_parameter_to_a_neighbouring_value_changes_the_row(table: Table) -> None:
    rng = np.random.default_rng(0)
    for i in rng.choice(len(table.configs), 40, replace=False):
        config = table.configs[i]
        p = table.parameters[rng.integers(len(table.parameters))]
        k = p.values.index(config[p.name])
        moved = {**config, p.name: p.values[k + 1 if k + 1 < len(p.values) else k - 1]}
        assert table.nearest(moved) != i
        assert table.configs[table.nearest(moved)] == moved


def _toy_table() -> Table:
    params = [
        Parameter("lr", "float", (1e-3, 1e-2, 1e-1), log=True),
        Parameter("units", "int", (1, 2, 3, 4)),
        Parameter("act", "categorical", ("relu", "tanh")),
    ]
    configs = [
        {"lr": 1e-3, "units": 1, "act": "relu"},
        {"lr": 1e-1, "units": 4, "act": "tanh"},
        {"lr": 1e-2, "units": 2, "act": "tanh"},
    ]
    curves = np.array([[0.5, 0.4], [0.6, 0.2], [0.3, 0.3]])
    return Table("toy", params, configs, curves, np.array([1.0, 2.0, 3.0]), 2, {"metric": "toy"})


def test_nearest_falls_back_to_closest_existing_config() -> None:
    table = _toy_table()
    # Log scale: 0.07 is nearer 0.1 than 0.01 in log space although nearer 0.01 in linear terms.
    assert table.nearest({"lr": 0.07, "units": 4.2, "act": "tanh"}) == 1
    assert table.nearest({"lr": 1e6, "units": -5, "act": "relu"}) == 0  # out of range: clipped
    # Not in the table: (1e-2, 2, relu). The relu config is two numeric steps away (squared
    # normalised distance 0.25 + 1/9), the tanh config at that very point one categorical (1).
    assert table.nearest({"lr": 1e-2, "units": 2, "act": "relu"}) == 0
    # Not in the table: (1e-1, 4, relu). A categorical mismatch (1) beats the full numeric range (2).
    assert table.nearest({"lr": 1e-1, "units": 4, "act": "relu"}) == 1
    with pytest.raises(ValueError):
        table.nearest({"lr": 1e-2, "units": 2, "act": "gelu"})
    assert table.best_final_error() == 0.2


def test_save_load_round_trip(tmp_path: Any) -> None:
    table = _toy_table()
    save_table(table, tmp_path)
    assert list_tables(tmp_path) == ["toy"]
    loaded = load_table("toy", tmp_path)
    assert loaded.parameters == table.parameters
    assert loaded.configs == table.configs
    assert loaded.metadata == {"metric": "toy"}
    np.testing.assert_allclose(loaded.curves, table.curves)
    np.testing.assert_allclose(loaded.seconds_per_unit, table.seconds_per_unit)


def _curves_table(curves: np.ndarray) -> Table:
    n, max_resource = curves.shape
    params = [Parameter("i", "int", tuple(range(n)))]
    return Table("curves", params, [{"i": i} for i in range(n)], curves, np.ones(n), max_resource)


def test_halving_keeps_the_best_when_early_errors_rank_them_first_and_loses_them_when_they_start_slowly() -> None:
    from benchmarks.build_tables import halving_keeps

    quality = np.arange(90) / 90  # configuration i: the smaller, the better at the end
    resources = np.arange(1, 10)
    parallel = quality[:, None] + 1 / resources[None, :]  # same order at every resource
    assert halving_keeps(_curves_table(parallel)) == 1.0
    late_bloomers = np.repeat((1 - quality)[:, None], 9, axis=1)  # best finishers worst until the end
    late_bloomers[:, -1] = quality
    assert halving_keeps(_curves_table(late_bloomers)) == 0.0
    # Half of the best two start among the best third, half among the worst: one is kept.
    mixed = parallel.copy()
    mixed[1, :-1] = 5.0
    assert halving_keeps(_curves_table(mixed)) == 0.5


def test_first_rung_agreement_is_high_when_survivors_keep_their_order_and_low_when_it_reverses() -> None:
    from benchmarks.build_tables import first_rung_agreement

    quality = np.arange(90) / 90
    resources = np.arange(1, 10)
    parallel = quality[:, None] + 1 / resources[None, :]  # same order at every resource
    assert first_rung_agreement(_curves_table(parallel), draws=20) == pytest.approx(1.0)
    reversing = parallel.copy()
    reversing[:, 2:] = (1 - quality)[:, None]  # from epoch 3 on, the order flips
    assert first_rung_agreement(_curves_table(reversing), draws=20) == pytest.approx(-1.0)
