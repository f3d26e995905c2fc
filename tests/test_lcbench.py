"""LCBench through YAHPO Gym's surrogate: exact evaluation, the data folder, and a quick run end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import spearmanr

from benchmarks import lcbench, report
from benchmarks.simulator import MEDIAN_FULL_TRAINING_SECONDS, distributions, time_scale
from benchmarks.suite import expand, groups, load_benchmark, task_group


def _have_data() -> bool:
    try:
        lcbench.require_data()
    except lcbench.MissingDataError:
        return False
    return True


needs_data = pytest.mark.skipif(
    not _have_data(),
    reason=f"LCBench surrogate files not found in {lcbench.data_folder()} (set YAHPO_DATA to a folder holding lcbench/)",
)


def test_groups_split_the_34_tasks_into_ten_for_tuning_and_24_for_evaluation() -> None:
    tuning, evaluation = groups()["lcbench-tuning"], groups()["lcbench-evaluation"]
    assert len(tuning) == 10 and len(evaluation) == 24 and not set(tuning) & set(evaluation)
    assert sorted(tuning + evaluation) == sorted(groups()["lcbench"]) and len(groups()["lcbench"]) == 34
    assert task_group("lcbench-34539") == "lcbench-tuning" and task_group("lcbench-7593") == "lcbench-evaluation"
    assert task_group("mlp_digits") == "real"
    assert expand(["lcbench-7593", "lcbench-evaluation"])[:2] == ["lcbench-7593", "lcbench-3945"]
    assert len(expand(["lcbench-7593", "lcbench-evaluation"])) == 24  # no repeats
    with pytest.raises(ValueError, match="unknown benchmark 'lcbench-1'"):
        load_benchmark("lcbench-1")


def test_missing_data_folder_says_where_it_looked_and_how_to_get_the_files(tmp_path: Path, monkeypatch: Any) -> None:
    from benchmarks import run

    monkeypatch.setenv("YAHPO_DATA", str(tmp_path))
    assert lcbench.data_folder() == tmp_path / "lcbench"
    with pytest.raises(lcbench.MissingDataError, match="yahpo_data") as error:
        lcbench.require_data()
    assert str(tmp_path / "lcbench") in str(error.value) and "model.onnx" in str(error.value)
    # The command line stops before any run with that one message (no traceback).
    with pytest.raises(SystemExit) as stop:
        run.main(["--tables", "lcbench-7593", "--out", str(tmp_path / "out")])
    assert "yahpo_data" in str(stop.value) and not (tmp_path / "out").exists()
    # The quick mode leaves the task out and says why.
    assert run.quick_benchmarks() == [run.QUICK_TABLE]


@needs_data
def test_a_suggestion_is_evaluated_at_exactly_its_values() -> None:
    bench = load_benchmark("lcbench-7593")
    assert bench.max_resource == 52
    assert [p.name for p in bench.parameters] == sorted(lcbench.INPUTS[1:])
    config = bench.random_configs(1, seed=3)[0]
    a = bench.evaluate(config)
    nudged = {**config, "learning_rate": config["learning_rate"] * 1.001}
    b = bench.evaluate(nudged)
    assert a.key != b.key and not np.array_equal(a.errors, b.errors)  # no grid to snap to
    assert a.errors.shape == a.seconds.shape == (52,)
    assert np.all((a.errors >= 0) & (a.errors <= 1)) and np.all(a.seconds > 0)
    # The same configuration again: the same curve and key.
    again = bench.evaluate(dict(config))
    assert again.key == a.key and np.array_equal(again.errors, a.errors)
    # Each epoch is the surrogate's own prediction at that epoch: error = 1 - accuracy / 100, and
    # the epochs' seconds add up to its cumulative time.
    raw = bench.predict([config], np.array([1, 26, 52]))[0]
    assert a.errors[[0, 25, 51]] == pytest.approx(np.clip(1 - raw[:, lcbench.ACCURACY_COLUMN] / 100, 0, 1))
    assert a.seconds.sum() == pytest.approx(raw[2, lcbench.TIME_COLUMN], rel=0.02)


@needs_data
def test_early_epochs_rank_poorly_and_epoch_four_well_as_measured_for_lcbench() -> None:
    # If the inputs were in the wrong order, the surrogate would not reproduce LCBench's known
    # property: epoch 1 ranks configurations close to chance, epoch 4 already fairly well.
    bench = load_benchmark("lcbench-3945")
    errors, _ = bench.curves(bench.random_configs(1000, seed=1))
    assert spearmanr(errors[:, 0], errors[:, -1])[0] < 0.5
    assert spearmanr(errors[:, 3], errors[:, -1])[0] > 0.45
    assert errors[:, -1].min() < np.median(errors[:, -1]) < errors[:, 0].max()


@needs_data
def test_time_scale_and_space_follow_the_protocol() -> None:
    bench = load_benchmark("lcbench-7593")
    assert bench.median_full_training_seconds() * time_scale(bench) == pytest.approx(MEDIAN_FULL_TRAINING_SECONDS)
    space = distributions(bench)
    assert space["learning_rate"].log and space["batch_size"].log and not space["momentum"].log
    assert (space["num_layers"].low, space["num_layers"].high) == (1, 5)
    # Random configurations respect the space, ints included.
    for config in bench.random_configs(200, seed=0):
        for name, dist in space.items():
            assert dist._contains(dist.to_internal_repr(config[name])), (name, config[name])
    assert 0 < bench.best_final_error() < 1


@needs_data
def test_quick_run_on_an_lcbench_task_writes_the_v2_summary_and_figures(tmp_path: Path) -> None:
    from benchmarks import run

    text = run.main(["--quick", "--tables", run.QUICK_LCBENCH, "--methods", "asha", "mobster", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    (bench,) = summary["benchmarks"]
    assert bench["table"] == run.QUICK_LCBENCH and bench["group"] == "lcbench-evaluation"
    assert set(bench["levels"]) == {"at 25%", "at 50%"}
    ours = {m["method"]: m for m in bench["methods"]}["mobster"]
    if ours["ttt_ratio"] not in ("inf", "nan"):
        assert ours["ttt_ratio_low"] <= ours["ttt_ratio"] <= ours["ttt_ratio_high"]
    assert summary["across_tasks"]["lcbench-evaluation"]["mobster"]["benchmarks"] == 1
    assert "lcbench-evaluation: median time to target vs ASHA's, across tasks" in text
    for png in ("lcbench_mean_rank.png", "ratios.png", f"regret_{run.QUICK_LCBENCH}.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    space = distributions(load_benchmark(run.QUICK_LCBENCH))
    for r in report.load_runs(tmp_path):
        # The final incumbent's configuration is stored, inside the space, with the error it reached.
        config = r["incumbent_config"]
        assert config is not None and set(config) == set(space)
        assert all(space[k]._contains(space[k].to_internal_repr(v)) for k, v in config.items())
        assert math.isfinite(report.final_incumbent(r))


@needs_data
def test_corners_are_scored_against_the_best_random_configuration() -> None:
    bench = load_benchmark("lcbench-7593")
    best_corner, better = bench.corners()
    assert 0 <= better <= 2 ** len(bench.parameters)
    assert (better > 0) == (best_corner < bench.best_final_error())
    corner = {p.name: p.values[-1] for p in bench.parameters}
    assert sorted(bench.at_bounds(corner)) == sorted(p.name for p in bench.parameters)
    assert bench.at_bounds(bench.random_configs(1, seed=0)[0] | {"momentum": 0.5}).count("momentum") == 0


def test_distributions_split_off_the_tasks_whose_corners_win() -> None:
    def summary(table: str, ratio: float) -> report.BenchmarkSummary:
        ours = report.MethodSummary("mobster", 10, 1.0, ratio, ratio, ratio, {}, 0.5, 1.0, ratio, 10, 0, 0, 0, 0, 0, 0, 0, 1.0, 0, 0)
        return report.BenchmarkSummary(table, 0.1, 0.0, 4800, 4, [ours], task_group(table))

    summaries = [summary("lcbench-7593", 0.2), summary("lcbench-3945", 0.8), summary("lcbench-34539", 1.5)]
    dists = report.distributions(summaries, corner_tasks={"lcbench-7593"})
    assert dists["lcbench-evaluation"]["mobster"] == report.protocol.Distribution(2, 0.5, 0.5, 1.0, faster=2, slower=0)
    assert dists["lcbench-evaluation, without tasks whose corners beat random"]["mobster"].benchmarks == 1
    assert dists["lcbench-tuning"]["mobster"].at_most_one == 0.0
    assert "lcbench-tuning, without tasks whose corners beat random" in dists
    assert set(report.distributions(summaries)) == {"lcbench-tuning", "lcbench-evaluation"}


def test_overview_gives_each_real_table_a_row_and_each_lcbench_group_its_distribution() -> None:
    def method(name: str, ratio: float) -> report.MethodSummary:
        return report.MethodSummary(name, 30, 1.0, ratio, ratio / 2, ratio * 2, {}, 0.6, 1.0, ratio, 30, 0, 0, 0, 0, 0, 0, 0, 1.0, 0, 0)

    summaries = [
        report.BenchmarkSummary("mlp_digits", 0.1, 0.0, 4800, 4, [method("mobster", 0.8), method("asha", 1.0)], "real"),
        report.BenchmarkSummary("lcbench-7593", 0.1, 0.0, 4800, 4, [method("mobster", 0.4)], "lcbench-evaluation"),
    ]
    text = report.format_overview(summaries, report.distributions(summaries))
    header, rule, real, lc = text.strip().split("\n")
    assert header == "| benchmark | MOBSTER (ours, Optuna) |"  # methods that did not run are left out
    assert real == "| `mlp_digits` (30 seeds) | 0.80x [0.40x, 1.60x], P 0.60 |"
    assert lc == "| LCBench, 1 evaluation tasks (median) | 0.40x; 100% at <= 0.5x, 100% at <= 1x |"
