"""The simulated benchmark: event order of the simulator, and the quick mode end to end."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.trial import TrialState

from benchmarks import protocol, report
from benchmarks.simulator import simulate
from benchmarks.tables import Evaluation, Parameter, Table, halving_results, load_table


def three_config_table() -> Table:
    """Configs x=1, 2, 3: 1, 1.6 and 2.5 s per unit; the third is bad (0.9) from the first unit."""
    return Table(
        name="tiny",
        parameters=[Parameter("x", "int", (1, 2, 3))],
        configs=[{"x": 1}, {"x": 2}, {"x": 3}],
        curves=np.array([[0.5, 0.4, 0.3], [0.6, 0.5, 0.2], [0.9, 0.9, 0.9]]),
        seconds_per_unit=np.array([1.0, 1.6, 2.5]),
        max_resource=3,
    )


class FixedSampler(BaseSampler):
    """Suggests ``x`` from a fixed list; records the RUNNING trials it can see at each new trial."""

    def __init__(self, xs: list[int]) -> None:
        self._xs = itertools.cycle(xs)
        self.seen_running: list[dict[int, dict[int, float]]] = []

    def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> dict:
        return {}

    def sample_relative(self, study: optuna.Study, trial: Any, search_space: dict) -> dict:
        return {}

    def before_trial(self, study: optuna.Study, trial: Any) -> None:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        self.seen_running.append({t.number: dict(t.intermediate_values) for t in running if t.number != trial.number})

    def sample_independent(self, study: optuna.Study, trial: Any, name: str, distribution: Any) -> Any:
        return next(self._xs)


class ThresholdPruner(BasePruner):
    """Prunes any trial whose last value is 0.85 or worse."""

    def prune(self, study: optuna.Study, trial: Any) -> bool:
        return trial.last_step is not None and trial.intermediate_values[trial.last_step] >= 0.85


def test_events_in_simulated_order_and_pending_trials_visible() -> None:
    sampler = FixedSampler([1, 2, 3, 1, 2])
    sim = simulate(
        three_config_table(), sampler, ThresholdPruner(), workers=2, budget=6.0, scale=1.0,
        clock=lambda: 0.0, keep_events=True,
    )
    got = [(round(e.time, 6), e.kind, e.trial, e.step) for e in sim.events]
    assert got == [
        (0.0, "start", 0, 0), (0.0, "start", 1, 0),
        (1.0, "report", 0, 1), (1.6, "report", 1, 1), (2.0, "report", 0, 2),
        (3.0, "report", 0, 3), (3.0, "complete", 0, 3), (3.0, "start", 2, 0),
        (3.2, "report", 1, 2), (4.8, "report", 1, 3), (4.8, "complete", 1, 3), (4.8, "start", 3, 0),
        (5.5, "report", 2, 1), (5.5, "prune", 2, 1), (5.5, "start", 4, 0),
        (5.8, "report", 3, 1),
    ]  # fmt: skip
    # What the sampler saw when each trial was created: the other worker's trial, with its values so far.
    assert sampler.seen_running == [{}, {0: {}}, {1: {1: 0.6}}, {2: {}}, {3: {}}]
    assert sim.completions == [(3.0, 3.0, 0.3), (pytest.approx(4.8), pytest.approx(4.8), 0.2)]
    assert sim.n_trials == 5 and sim.n_pruned == 1 and sim.final_incumbent() == 0.2
    assert [s.trials_before for s in sim.suggestions] == [0, 1, 2, 3, 4]


def test_charged_decisions_delay_the_clock_and_free_clock_removes_them() -> None:
    ticks = itertools.count()

    def clock() -> float:  # read before and after each decision: every decision takes 0.25 s
        return next(ticks) * 0.25

    def run(**kwargs: Any) -> Any:
        return simulate(
            three_config_table(), FixedSampler([1, 2, 3]), ThresholdPruner(), workers=1, budget=50.0, scale=1.0,
            **kwargs,
        )

    charged, free = run(clock=clock, keep_events=True), run(clock=lambda: 0.0)
    n = len(charged.completions)
    assert 3 <= n < len(free.completions)  # decisions cost budget: fewer trainings finish
    assert [c[2] for c in charged.completions] == [c[2] for c in free.completions[:n]]
    # One worker: the free clock is exactly the run without decision costs.
    assert [c[1] for c in charged.completions] == pytest.approx([c[0] for c in free.completions[:n]])
    # The first completion waited for the ask and the first two report/should_prune decisions.
    assert charged.completions[0][0] == pytest.approx(3.0 + 3 * 0.25)
    decisions = sum(e.kind != "start" for e in charged.events) + charged.n_trials  # reports, tells, asks
    assert charged.decision_seconds == pytest.approx(0.25 * decisions)


def test_quick_mode_writes_table_json_and_plots(tmp_path: Any, capsys: Any) -> None:
    from benchmarks import run

    text = run.main(["--quick", "--tables", run.QUICK_TABLE, "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "| benchmark | method |" in printed and "time to target" in text
    summary = json.loads((tmp_path / "summary.json").read_text())
    (bench,) = summary["benchmarks"]
    assert bench["table"] == run.QUICK_TABLE
    methods = {m["method"]: m for m in bench["methods"]}
    assert set(methods) == set(run.QUICK_METHODS)
    asha = methods["asha"]
    assert math.isfinite(asha["ttt_median"]) and asha["ttt_ratio"] == pytest.approx(1.0)
    assert bench["group"] == "real" and set(asha["level_ratios"]) == set(bench["levels"]) == {"at 25%", "at 50%"}
    assert asha["ttt_earlier_share"] == pytest.approx(0.5)  # against itself: every pair is a tie or a swap
    assert asha["seeds"] == run.QUICK_SEEDS and asha["reached"] >= 1
    # How rare the target is in the table: at least the configuration that set it reaches it.
    finals = np.round(load_table(run.QUICK_TABLE).curves[:, -1], report.ERROR_DECIMALS)
    assert bench["configurations"] == len(finals)
    assert bench["reaching_target"] == int((finals <= bench["target"]).sum()) >= 1
    assert f"{bench['reaching_target']} of {len(finals):,} configurations reach it" in text
    # One step of the metric above the target: the next distinct final error, and its reach.
    above = finals[finals > bench["target"]]
    assert bench["next_error"] == pytest.approx(above.min()) and bench["next_error"] > bench["target"]
    assert bench["reaching_next"] == int((finals <= above.min()).sum()) > bench["reaching_target"]
    assert f", {bench['reaching_next']} reach the next error above it, {above.min():.5f}" in text
    for m in methods.values():
        assert m["regret_median"] >= 0 and m["ask_p50"] >= 0
    png = tmp_path / f"regret_{run.QUICK_TABLE}.png"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "summary.md").read_text().startswith("| benchmark |")
    runs = report.load_runs(tmp_path)
    assert len(runs) == run.QUICK_SEEDS * len(run.QUICK_METHODS)
    assert all(r["completions"] == sorted(r["completions"], key=lambda c: c[0]) for r in runs)


def test_median_ratio_conventions_for_never() -> None:
    inf = math.inf
    assert protocol.median_ratio(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])) == 0.5
    assert protocol.median_ratio(np.array([1.0, inf, inf]), np.array([2.0, 4.0, 6.0])) == inf
    assert protocol.median_ratio(np.array([1.0, 2.0, inf]), np.array([2.0, inf, inf])) == 0.0
    assert protocol.median_ratio(np.array([inf]), np.array([inf])) == inf  # no evidence of being faster


def test_ratio_interval_brackets_the_ratio_and_narrows_with_agreeing_seeds() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(900, 1100, 30)
    same = protocol.ratio_interval(base * 0.5, base)
    # Seeds of both methods are resampled independently, so even a constant factor has an interval.
    assert same.ratio == pytest.approx(0.5) and same.low < 0.5 < same.high and same.high - same.low < 0.1
    noisy = protocol.ratio_interval(rng.uniform(100, 1900, 30), base)
    assert noisy.low < noisy.ratio < noisy.high and noisy.high - noisy.low > 5 * (same.high - same.low)
    # With half the runs never reaching, some resamples have an infinite median: the upper end is inf.
    half = protocol.ratio_interval(np.r_[np.full(5, 500.0), np.full(5, math.inf)], base[:10])
    assert half.high == math.inf and half.low < 1
    assert protocol.ratio_interval(base, base, seed=1) == protocol.ratio_interval(base, base, seed=1)


def test_quality_levels_are_ashas_median_incumbent_at_the_end_and_at_25_and_50_percent() -> None:
    # Three ASHA runs; incumbent at time t is 1 / (1 + t / scale): run i improves at its own pace.
    scales = [100.0, 200.0, 400.0]
    levels = protocol.quality_levels(
        [0.1, 0.3, 0.2], lambda t: [1 / (1 + t / s) for s in scales], budget=1000.0
    )
    assert levels["final"] == 0.2
    assert levels["at 25%"] == pytest.approx(1 / (1 + 250 / 200))  # the middle of three
    assert levels["at 50%"] == pytest.approx(1 / (1 + 500 / 200))
    assert protocol.quality_levels([0.1, 0.2], lambda t: [math.inf, 0.5], budget=10.0)["at 25%"] == math.inf


def test_mean_ranks_average_each_benchmarks_ranks_of_median_incumbents() -> None:
    inf = math.inf
    incumbents = {
        # a is better than b on the first benchmark at both times, b is better on the second at the
        # end; at time 0 neither has finished anything on the second (a tie: rank 1.5 each).
        "one": {"a": np.array([[0.2, 0.1]] * 3), "b": np.array([[0.3, 0.3]] * 3)},
        "two": {"a": np.array([[inf, 0.5]] * 3), "b": np.array([[inf, 0.4]] * 3)},
        "three": {"a": np.array([[0.1, 0.1]])},  # b did not run here: left out
    }
    ranks, used = protocol.mean_ranks(incumbents, ["a", "b"])
    assert used == ["one", "two"]
    assert ranks.tolist() == [[1.25, 1.5], [1.75, 1.5]]


def test_ratio_distribution_counts_shares_and_leaves_undefined_out() -> None:
    d = protocol.ratio_distribution([0.2, 0.5, 0.9, 1.5, math.inf, math.nan])
    assert d.benchmarks == 5 and d.median == 0.9
    assert d.at_most_half == pytest.approx(2 / 5) and d.at_most_one == pytest.approx(3 / 5)
    assert math.isnan(protocol.ratio_distribution([math.nan]).median)
    clear = protocol.ratio_distribution([0.3, 0.9, 2.0], [(0.1, 0.6), (0.5, 1.4), (1.2, 3.0)])
    assert (clear.faster, clear.slower) == (1, 1)  # the middle one's interval holds 1: within noise


def test_earlier_share_counts_pairs_and_ties_half() -> None:
    inf = math.inf
    # (1 vs 2) first, (1 vs inf) first, (inf vs 2) not, (inf vs inf) a tie.
    assert report.earlier_share([1.0, inf], [2.0, inf]) == pytest.approx(2.5 / 4)
    assert report.earlier_share([5.0, 6.0], [1.0, 2.0]) == 0.0
    assert report.earlier_share([inf], [inf]) == 0.5
    assert math.isnan(report.earlier_share([], [1.0]))


def _stored_run(method: str, seed: int, completions: list[tuple[float, float]], table: str = "t") -> dict[str, Any]:
    """The fields of a stored run that the figures of merit read: (time, error) completions."""
    return {
        "table": table,
        "method": method,
        "seed": seed,
        "workers": 4,
        "charged": True,
        "completions": [[time, time, error] for time, error in completions],
    }


def test_pooled_takes_each_block_against_its_own_target_over_shared_seeds(tmp_path: Any, capsys: Any) -> None:
    from benchmarks import pooled

    first, second = tmp_path / "first", tmp_path / "second"
    # First block: ASHA finals 0.3 / 0.2 / 0.1 -> target 0.2. Ours 100 s and never; the
    # reference 200 s and never; ours' seed 2 has no reference run and is left out.
    report.save_runs(first, [_stored_run("asha", s, [(9.0, e)]) for s, e in enumerate([0.3, 0.2, 0.1])])
    report.save_runs(first, [_stored_run("mobster", 0, [(100.0, 0.15)]), _stored_run("mobster", 1, [(300.0, 0.25)])])
    report.save_runs(first, [_stored_run("mobster", 2, [(1.0, 0.01)])])
    report.save_runs(first, [_stored_run("ref-mobster", 0, [(200.0, 0.1)]), _stored_run("ref-mobster", 1, [(9.0, 0.3)])])
    # Second block: target 0.5, which 0.4 reaches here though it would not in the first block.
    report.save_runs(second, [_stored_run("asha", 5, [(9.0, 0.5)])])
    report.save_runs(second, [_stored_run("mobster", 5, [(10.0, 0.4)]), _stored_run("ref-mobster", 5, [(20.0, 0.45)])])

    blocks = [report.load_runs(first), report.load_runs(second)]
    row = pooled.pooled(blocks, "t", "mobster", "ref-mobster")
    assert row is not None and row.seeds == 3
    assert (row.ours_median, row.theirs_median, row.ratio) == (100.0, 200.0, 0.5)
    assert (row.ours_reached, row.theirs_reached) == (2, 2)
    # First block 2.5 of 4 pairs (2 seeds), second 1 of 1 (1 seed): (0.625 * 2 + 1) / 3.
    assert row.ours_first == pytest.approx(0.75)
    assert pooled.pooled(blocks, "t", "mobster", "tpe-hyperband") is None
    pooled.main(["--folders", str(first), str(second)])
    # Pooled times: ours 100, 10, inf; theirs 200, 20, inf. Resamples of three runs can hold
    # two infs (median never) on either side, so the interval runs from 0 to inf and holds 0.5.
    low, high = row.interval
    assert (low, high) == (0.0, math.inf)
    out = capsys.readouterr().out
    assert "| t | 3 | 100 | 200 | 0.50x [0.00x, inf] | 2 / 2 | 0.75 |" in out


def test_pooled_interval_brackets_the_ratio_and_narrows_when_every_run_agrees(tmp_path: Any) -> None:
    from benchmarks import pooled

    # ASHA finals all 0.5: the target. Ours reaches it at 50 s in every run, theirs at 100 s:
    # every resample gives 0.5x.
    report.save_runs(tmp_path, [_stored_run("asha", s, [(9.0, 0.5)]) for s in range(8)])
    report.save_runs(tmp_path, [_stored_run("mobster", s, [(50.0, 0.4)]) for s in range(8)])
    report.save_runs(tmp_path, [_stored_run("ref-mobster", s, [(100.0, 0.4)]) for s in range(8)])
    # Theirs varies on a second table: 40 to 320 s; ours 100 s throughout.
    report.save_runs(tmp_path, [_stored_run("asha", s, [(9.0, 0.5)], table="u") for s in range(8)])
    report.save_runs(tmp_path, [_stored_run("mobster", s, [(100.0, 0.4)], table="u") for s in range(8)])
    report.save_runs(tmp_path, [_stored_run("ref-mobster", s, [(40.0 * (s + 1), 0.4)], table="u") for s in range(8)])
    blocks = [report.load_runs(tmp_path)]
    agreeing = pooled.pooled(blocks, "t", "mobster", "ref-mobster")
    assert agreeing is not None and agreeing.interval == (0.5, 0.5)
    varying = pooled.pooled(blocks, "u", "mobster", "ref-mobster")
    assert varying is not None
    low, high = varying.interval
    assert low < varying.ratio < high and 100 / 320 <= low and high <= 100 / 40


def test_pooled_groups_count_benchmarks_at_the_level_and_undefined_ratios_by_who_reached() -> None:
    from benchmarks import pooled

    inf = math.inf

    def row(table: str, ours: float, theirs: float, first: float) -> pooled.Pooled:
        return pooled.Pooled(table, 10, ours, theirs, 5, 5, first)

    rows = [
        row("mlp_digits", 80.0, 100.0, 0.6),  # 0.8x: at the level
        row("kernel_sgd_digits", 90.0, 100.0, 0.4),  # 0.9x: not
        row("lcbench-34539", 10.0, inf, 0.9),  # only ours reaches the target: at the level
        row("lcbench-126025", inf, inf, 0.5),  # neither: not
        row("lcbench-3945", inf, 100.0, 0.1),
    ]
    lines = pooled.format_groups(rows, "ours", "ref").splitlines()
    assert lines == [
        "- real: ours at <= 0.8x ref's time on 1 of 2; mean P(ours first) 0.50",
        "- lcbench-tuning: ours at <= 0.8x ref's time on 1 of 2; mean P(ours first) 0.70",
        "- lcbench-evaluation: ours at <= 0.8x ref's time on 0 of 1; mean P(ours first) 0.10",
    ]


def test_halving_results_send_the_best_third_on_at_every_rung() -> None:
    n, max_resource = 27, 9
    quality = np.arange(n) / n
    curves = quality[:, None] + 1 / np.arange(1, max_resource + 1)[None, :]  # the same order throughout
    parameters = [Parameter("i", "int", tuple(range(n)))]
    table = Table("order", parameters, [{"i": i} for i in range(n)], curves, np.ones(n), max_resource)
    results = halving_results(table, np.arange(n)[::-1])
    assert [sum(level in r for r in results.values()) for level in (1, 3, 9)] == [27, 9, 3]
    assert sorted(row for row, r in results.items() if 9 in r) == [0, 1, 2]  # the best three
    assert results[5] == {1: pytest.approx(5 / n + 1), 3: pytest.approx(5 / n + 1 / 3)}


def test_model_check_ranks_unseen_configurations_far_better_than_chance() -> None:
    from benchmarks.model_check import check

    table = load_table("kernel_sgd_digits")
    for data in ("halving", "full"):
        result = check(table, 30, 0, "exp-decay-combined", data)
        # Chance: spearman 0 and picks at the table's median (0.5).
        assert result.spearman > 0.4
        assert result.top_percentile < 0.2


def test_probe_check_measures_skill_on_few_configurations_and_rejects_too_few() -> None:
    from benchmarks.model_check import probe_check

    table = load_table("kernel_sgd_digits")
    result = probe_check(table, 30, 0, probes=10, draws=20)
    assert result.model.shape == result.first_rung.shape == (20,)
    assert np.all(np.abs(result.model) <= 1) and np.all(np.abs(result.first_rung) <= 1)
    # On this table both the model and the first rung rank configurations well (about 0.7 over
    # the whole table); ten probes scatter around that, far from chance.
    assert np.median(result.model) > 0.4 and np.median(result.first_rung) > 0.4
    assert len(set(result.model.round(6))) > 5  # different draws, different estimates
    with pytest.raises(ValueError, match="probes must be >= 3"):
        probe_check(table, 30, 0, probes=2)


def test_scale_benchmark_measures_the_core_and_times_callbacks() -> None:
    from benchmarks import scale

    row = scale.measure_core(observations=120, pending=4, device="cpu", repeats=1)
    assert row["observations"] == 120 and row["clock"] == "cpu"
    assert 0 < row["fit_warm_s"] and 0 < row["suggest_s"] and 0 < row["rescue_s"] and row["peak_rss_mb"] > 0
    history = scale.core_history(120, 4)
    assert sum(len(r.results) for r in history if r.pending_at is None) == 120
    assert sum(r.pending_at is not None for r in history) == 4

    class Callbacks:
        def on_trial_result(self, value: float) -> float:
            return 2 * value

    callbacks, timer = Callbacks(), scale.CallTimer()
    timer.wrap(callbacks, "scheduler", ["on_trial_result"])
    assert callbacks.on_trial_result(1.5) == 3.0 and callbacks.on_trial_result(2.0) == 4.0
    summary = timer.summary(wall=10.0)
    assert summary["calls"] == 2 and summary["per_callback"]["scheduler.on_trial_result"]["calls"] == 2
    assert 0 <= summary["share"] < 1 and summary["max_s"] >= summary["p99_s"] > 0


def test_scale_benchmark_runs_optuna_processes_on_one_study_and_a_control_beside_busy_ones(tmp_path) -> None:
    from benchmarks import scale

    rows = scale.run_optuna([1, 2], ["sqlite"], trials=6, seed=0, busy=1, repeats=2)
    runs = [(r["processes"], r["busy_beside"], r["repeat"], r["trials"]) for r in rows]
    assert runs == [(1, 0, 0, 6), (2, 0, 0, 6), (1, 1, 0, 6), (1, 0, 1, 6), (2, 0, 1, 6), (1, 1, 1, 6)]
    assert all(r["sampler_cpu_per_trial_s"] > 0 and r["ask_p99_s"] >= r["ask_p50_s"] > 0 for r in rows)
    assert rows[0]["ratio_to_one_process"] == rows[3]["ratio_to_one_process"] == 1.0
    assert rows[5]["ratio_to_one_process"] == rows[5]["sampler_cpu_per_trial_s"] / rows[3]["sampler_cpu_per_trial_s"]
    assert [len(r["per_process"]) for r in rows] == [1, 2, 1] * 2
    summary = {s["run"]: s for s in scale.optuna_summary(rows)}
    assert list(summary) == ["1", "2", "1+1 busy"] and all(s["repeats"] == 2 for s in summary.values())
    two = (rows[1]["sampler_cpu_per_trial_s"] + rows[4]["sampler_cpu_per_trial_s"]) / 2
    one = (rows[0]["sampler_cpu_per_trial_s"] + rows[3]["sampler_cpu_per_trial_s"]) / 2
    assert summary["2"]["ratio_of_means"] == pytest.approx(two / one)
    assert summary["2"]["ratio_min"] <= summary["2"]["ratio_max"]
    scale.plot("optuna", rows, tmp_path / "optuna.png")
    assert (tmp_path / "optuna.png").stat().st_size > 0


def test_mo_hypervolume_over_time_of_hand_made_completions() -> None:
    from benchmarks import multiobjective as mo

    # (charged time, free time, error, cost); the box spans error 0.2..0.6 and cost 100..300.
    completions = [
        (10.0, 9.0, 0.2, 300.0),  # best error, dearest: normalised (0, 1)
        (20.0, 18.0, 0.6, 100.0),  # worst error, cheapest: (1, 0)
        (25.0, 22.0, 0.6, 300.0),  # dominated by both: adds nothing
        (30.0, 27.0, 0.4, 200.0),  # the middle: (0.5, 0.5)
    ]
    box = mo.ObjectiveBox.of_runs([{"completions": completions}])
    assert box.low == (0.2, 100.0) and box.high == (0.6, 300.0)
    box_area = mo.REFERENCE**2
    first = 1.1 * 0.1  # (0, 1) against the reference (1.1, 1.1)
    both = first + 0.1 * 1.1 - 0.1 * 0.1  # (1, 0) adds its own box less the shared corner
    all_three = 1.1 * 0.1 + 0.6 * 0.5 + 0.1 * 0.5  # the staircase (0, 1), (0.5, 0.5), (1, 0)
    times = np.array([0.0, 9.99, 10.0, 15.0, 20.0, 25.0, 29.0, 30.0, 1000.0])
    expected = np.array([0, 0, first, first, both, both, both, all_three, all_three]) / box_area
    assert mo.hypervolume_at(completions, times, box) == pytest.approx(expected)
    run = {"completions": completions}
    assert mo.final_hypervolume(run, box) == pytest.approx(all_three / box_area)
    assert mo.time_to_hypervolume(run, both / box_area, box) == 20.0
    assert mo.time_to_hypervolume(run, 0.99, box) == math.inf
    # The cost objective: mean seconds per unit so far x the maximum resource x the time scale.
    curve = Evaluation(errors=np.array([0.5, 0.4, 0.3]), seconds=np.array([1.0, 3.0, 2.0]), key=0)
    assert mo.ErrorAndTrainingCost(max_resource=3).values(curve, 2, scale=10.0) == pytest.approx((0.4, 60.0))


def test_mo_quick_mode_on_one_table_writes_runs_summary_and_plot(tmp_path: Any, capsys: Any) -> None:
    from benchmarks import multiobjective as mo

    table = mo.QUICK_TABLE
    text = mo.main(["--quick", "--tables", table, "--budget-trainings", "6", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "front" in printed and "| benchmark | method |" in printed and "final HV" in text
    runs = report.load_runs(tmp_path)
    assert sorted((r["method"], r["seed"]) for r in runs) == sorted(
        itertools.product(mo.DEFAULT_METHODS, range(mo.QUICK_SEEDS))
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    (bench,) = summary["benchmarks"]
    assert bench["table"] == table and [m["method"] for m in bench["methods"]] == list(mo.DEFAULT_METHODS)
    baseline = next(m for m in bench["methods"] if m["method"] == mo.BASELINE)
    assert baseline["first_share"] == pytest.approx(0.5) and baseline["reached"] >= 1
    box = mo.ObjectiveBox(tuple(bench["box"]["low"]), tuple(bench["box"]["high"]))
    times = np.linspace(0.0, bench["budget"], 200)
    for run in runs:
        assert run["objectives"] == ["error", "cost"] and all(len(c) == 4 and c[3] > 0 for c in run["completions"])
        volumes = mo.hypervolume_at(run["completions"], times, box)
        assert np.all((volumes >= 0) & (volumes <= 1)) and np.all(np.diff(volumes) >= 0)
        assert volumes[-1] == pytest.approx(mo.final_hypervolume(run, box))
    png = tmp_path / f"hypervolume_{table}.png"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "summary.md").read_text().startswith("| benchmark |")
    # Stored runs are skipped on a second invocation.
    mo.main(["--quick", "--tables", table, "--budget-trainings", "6", "--out", str(tmp_path), "--skip-done", "--no-report"])
    assert capsys.readouterr().out.startswith("0 runs")


def test_proposal_sources_tags_every_trial_and_restores_the_searcher() -> None:
    from benchmarks.proposal_sources import SOURCES, measure, tagged_sources
    from mobster.searcher import ModelBasedSearcher

    original = ModelBasedSearcher.suggest_ranked
    summary = measure("mlp_digits", [0], budget_trainings=6)
    assert ModelBasedSearcher.suggest_ranked is original  # the wrappers are removed after the run
    assert summary.started["initial"] >= 1 and summary.started["model"] >= 1
    first = summary.levels[0]
    # Every trial is recorded at its first rung (one bracket): the sources account for them all.
    assert sum(summary.recorded.get((first, name), 0) for name in SOURCES) == sum(summary.started.values())
    for level in summary.levels:
        for name in ("model", "random"):
            mean = summary.mean_percentile(level, name)
            assert math.isnan(mean) or 0.0 <= mean <= 1.0
    with tagged_sources() as tags:
        assert tags == {}
    assert ModelBasedSearcher.suggest_ranked is original
