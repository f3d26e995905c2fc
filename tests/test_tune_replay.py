"""benchmarks/ray_replay.py: the figures it reports, and (with -m benchmark) a short real run."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
from ray import tune

from benchmarks.ray_replay import (
    Run,
    SimulatedBudget,
    main,
    plot,
    ray_param_space,
    stored_runs,
    summarise,
    time_to_target,
)
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


def test_budget_runs_on_compressed_wall_clock_time_and_records_the_incumbent() -> None:
    now = [100.0]
    stopper = SimulatedBudget(budget=600.0, compression=50.0, max_resource=3, clock=lambda: now[0])
    now[0] += 5.0  # Ray starting up: not counted
    assert stopper.now() == 0.0 and not stopper.stop_all()
    now[0] += 2.0  # 100 simulated seconds after the first epoch began
    stopper("a", {"training_iteration": 1, "error": 0.2, "epoch_began": now[0] - 2.0})  # not at the full resource
    stopper("a", {"training_iteration": 3, "error": 0.4})
    now[0] += 4.0
    stopper("b", {"training_iteration": 3, "error": 0.3})
    stopper("c", {"training_iteration": 3, "error": 0.5})
    assert not stopper.stop_all()
    now[0] += 6.0  # 12 wall seconds since the first epoch began: 600 simulated
    assert stopper.stop_all()
    assert stopper.trace == [(100.0, 0.4), (300.0, 0.3)] and stopper.trials == {"a", "b", "c"}
    assert stopper.epochs == 4


def test_summary_uses_ashas_median_as_the_target(tmp_path) -> None:
    runs = [
        Run("asha", 0, 0.30, [(1000.0, 0.40), (2000.0, 0.30)], 30, 5, 1.0),
        Run("asha", 1, 0.20, [(1500.0, 0.20)], 30, 5, 1.0),
        Run("mobster-stopping", 0, 0.10, [(500.0, 0.25), (800.0, 0.10)], 30, 4, 2.0),
        Run("mobster-stopping", 1, 0.35, [(500.0, 0.35)], 30, 4, 2.0),
    ]
    text, figures = summarise(_table(), runs)
    assert figures["target"] == pytest.approx(0.30)  # the higher middle of (0.20, 0.30)
    assert [r.time_to_target for r in runs] == [2000.0, 1500.0, 500.0, math.inf]
    assert figures["methods"]["asha"]["time_to_target_median"] == 1750.0
    assert figures["methods"]["mobster-stopping"]["time_to_target_median"] == math.inf  # median of (500, inf)
    assert figures["methods"]["mobster-stopping"]["reached"] == 1
    assert "| asha | 2 | 1750 | 1.00x |" in text
    assert time_to_target([], 0.1) == math.inf
    plot(_table(), runs, 4800.0, tmp_path / "regret.png")
    assert (tmp_path / "regret.png").read_bytes().startswith(b"\x89PNG")


def test_stored_runs_come_back_as_recorded_filtered_by_keep(tmp_path) -> None:
    runs = [
        Run("asha", 0, 0.30, [(1000.0, 0.40), (2000.0, 0.30)], 30, 5, 1.0),
        Run("mobster-stopping", 0, 0.10, [(500.0, 0.25)], 30, 4, 2.0),
    ]
    path = tmp_path / "runs_toy.json"
    path.write_text(json.dumps([asdict(r) for r in runs]))
    kept = stored_runs(path, keep=lambda run: run.method != "mobster-stopping")
    assert kept == runs[:1]  # traces come back as tuples, as the stopper records them
    assert stored_runs(tmp_path / "missing.json", keep=lambda run: True) == []


@pytest.mark.benchmark
def test_a_short_side_by_side_run(tmp_path) -> None:
    figures = main(
        ["--methods", "mobster-stopping", "asha", "--seeds", "0", "--compression", "400", "--out", str(tmp_path)]
    )
    assert set(figures["methods"]) == {"mobster-stopping", "asha"}
    assert (tmp_path / "summary_mlp_digits.md").exists()


def test_rerunning_one_method_with_merge_keeps_the_stored_asha_target(tmp_path) -> None:
    import ray

    stored = [Run("asha", 0, 0.03, [(1000.0, 0.05), (2000.0, 0.03)], 30, 5, 1.0)]
    (tmp_path / "runs_mlp_digits.json").write_text(json.dumps([asdict(r) for r in stored]))

    def fake_run(table, method, seed, compression, workers, storage) -> Run:  # no Ray trials
        return Run(method, seed, 0.02, [(500.0, 0.02)], 10, 3, 1.0)

    try:
        main(["--methods", "mobster-rescue", "--seeds", "0", "--merge", "--out", str(tmp_path)], run=fake_run)
    finally:
        ray.shutdown()
    summary = (tmp_path / "summary_mlp_digits.md").read_text()
    assert "| mobster-rescue |" in summary and "| asha |" in summary
    assert "no ASHA runs" not in summary  # the stored ASHA runs define the target


def test_merge_adds_seeds_and_replaces_only_the_runs_made_again(tmp_path) -> None:
    import ray

    stored = [Run("asha", seed, 0.03, [(1000.0, 0.03)], 30, 5, 1.0) for seed in (0, 1)]
    (tmp_path / "runs_mlp_digits.json").write_text(json.dumps([asdict(r) for r in stored]))

    def fake_run(table, method, seed, compression, workers, storage) -> Run:  # no Ray trials
        return Run(method, seed, 0.02, [(500.0, 0.02)], 10, 3, 1.0)

    try:
        main(["--methods", "asha", "--seeds", "1", "2", "--merge", "--out", str(tmp_path)], run=fake_run)
    finally:
        ray.shutdown()
    runs = json.loads((tmp_path / "runs_mlp_digits.json").read_text())
    by_seed = {r["seed"]: r["final_incumbent"] for r in runs}
    assert len(runs) == 3 and by_seed == {0: 0.03, 1: 0.02, 2: 0.02}  # seed 0 kept, 1 replaced, 2 added
