"""benchmarks/ray_replay.py: the figures it reports, and (with -m benchmark) a short real run."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ray import tune

from benchmarks.ray_replay import EpochBudget, Run, epochs_to_target, main, ray_param_space, summarise
from benchmarks.tables import Parameter, Table


def _table() -> Table:
    parameters = [
        Parameter("lr", "float", (0.001, 0.01, 0.1), log=True),
        Parameter("width", "int", (16, 32, 64), log=True),
        Parameter("act", "categorical", ("relu", "tanh")),
    ]
    configs = [
        {"lr": lr, "width": w, "act": a} for lr in (0.001, 0.01, 0.1) for w in (16, 32, 64) for a in ("relu", "tanh")
    ]
    curves = np.linspace(0.5, 0.1, len(configs))[:, None] + 1.0 / np.arange(1, 4)[None, :]
    return Table("toy", parameters, configs, curves.astype(np.float32), np.ones(len(configs), np.float32), 3)


def test_param_space_covers_the_grid_ranges() -> None:
    space = ray_param_space(_table())
    assert (space["lr"].lower, space["lr"].upper) == (0.001, 0.1)
    assert (space["width"].lower, space["width"].upper) == (16, 65)  # randint's upper bound is exclusive
    assert isinstance(space["width"].get_sampler(), type(tune.lograndint(1, 2).get_sampler()))
    assert space["act"].categories == ["relu", "tanh"]


def test_budget_stopper_records_the_incumbent_at_the_full_resource() -> None:
    stopper = EpochBudget(budget=4, max_resource=3)
    stopper("a", {"training_iteration": 1, "error": 0.2})  # not at the full resource: no incumbent
    stopper("a", {"training_iteration": 3, "error": 0.4})
    stopper("b", {"training_iteration": 3, "error": 0.3})
    assert not stopper.stop_all()
    stopper("c", {"training_iteration": 3, "error": 0.5})
    assert stopper.stop_all() and stopper.trace == [(2, 0.4), (3, 0.3)] and stopper.trials == {"a", "b", "c"}


def test_summary_uses_ashas_median_as_the_target() -> None:
    runs = [
        Run("asha", 0, 0.30, [(10, 0.40), (20, 0.30)], 30, 5, 1.0),
        Run("asha", 1, 0.20, [(15, 0.20)], 30, 5, 1.0),
        Run("mobster-stopping", 0, 0.10, [(5, 0.25), (8, 0.10)], 30, 4, 2.0),
        Run("mobster-stopping", 1, 0.35, [(5, 0.35)], 30, 4, 2.0),
    ]
    text, figures = summarise(_table(), runs)
    assert figures["target"] == pytest.approx(0.30)  # the higher middle of (0.20, 0.30)
    assert [r.epochs_to_target for r in runs] == [20, 15, 5, math.inf]
    assert figures["methods"]["mobster-stopping"]["epochs_to_target_median"] == math.inf  # median of (5, inf)
    assert "| asha | 2 |" in text
    assert epochs_to_target([], 0.1) == math.inf


@pytest.mark.benchmark
def test_a_short_side_by_side_run(tmp_path) -> None:
    figures = main(["--methods", "mobster-stopping", "asha", "--seeds", "0", "--budget", "2", "--out", str(tmp_path)])
    assert set(figures["methods"]) == {"mobster-stopping", "asha"}
    assert (tmp_path / "summary.md").exists()
