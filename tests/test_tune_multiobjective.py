"""Several objectives on real Ray Tune: MobsterSearcher (ParEGO over the one GP) with
MobsterScheduler (MO-ASHA's Pareto order at the rungs), stopping and promotion; non-finite
values in one objective; lists that do not match, rejected before the experiment runs."""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile

import pytest
from ray import tune

from mobster import pareto
from mobster.rung_table import RungTable
from mobster.searcher import ModelBasedSearcher
from ray_session import local_ray
from tune_mobster import MobsterScheduler, MobsterSearcher

METRICS = ["error", "params"]
MODES = ["min", "max"]  # "params" maximised: its sign is flipped at the rungs
SPACE = {"x": tune.uniform(0.0, 1.0), "n": tune.randint(0, 3)}


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    with local_ray(sys.modules[__name__]):
        yield


def two_objectives(config: dict) -> None:
    """A trade-off along ``x`` (error falls, "params" falls too, and is maximised), ``n`` bad for
    both; learning curves in the error. A checkpoint with every report, for promotion."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder, open(os.path.join(folder, "state.json")) as file:
            start = json.load(file)["iteration"]
    for iteration in range(start + 1, 10):
        error = (1.0 - config["x"]) ** 2 + 0.2 * config["n"] + 0.5 / iteration
        params = 2.0 - config["x"] - 0.3 * config["n"]
        if config.get("kind") == "nan":
            params = math.nan
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "state.json"), "w") as file:
                json.dump({"iteration": iteration}, file)
            metrics = {"error": error, "params": params, "resumed": start > 0}
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _run(space, searcher, scheduler, tmp_path, **tune_config):
    return tune.Tuner(
        two_objectives,
        param_space=space,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, reuse_actors=True, **tune_config),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    ).fit()


@pytest.fixture
def model_based_count(monkeypatch) -> list[int]:
    """How many suggestions the GP made (not random): the core's acquisition, counted."""
    calls = [0]
    original = ModelBasedSearcher._model_based_units

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ModelBasedSearcher, "_model_based_units", counted)
    return calls


def _minimised(row) -> tuple[float, ...]:
    return tuple(float(row[m]) * (1.0 if mode == "min" else -1.0) for m, mode in zip(METRICS, MODES))


def _creation_index(result) -> int:
    """The trial's number in the order Tune created it (in its folder's name; ids are random)."""
    found = re.search(rf"_{result.metrics['trial_id']}_(\d+)_", os.path.basename(result.path))
    assert found, result.path
    return int(found.group(1))


def test_stopping_by_the_pareto_order_with_model_based_suggestions(tmp_path, model_based_count) -> None:
    searcher = MobsterSearcher(METRICS, MODES, seed=0, num_initial_random=4, background=False)
    scheduler = MobsterScheduler(metric=METRICS, mode=MODES, max_t=9, reduction_factor=3)
    results = _run(SPACE, searcher, scheduler, tmp_path, num_samples=12, max_concurrent_trials=1)
    assert not results.errors and len(results) == 12
    assert model_based_count[0] >= 2  # the GP proposed, not only random draws
    assert searcher._core is not None and searcher._core.model_failures == 0

    # One trial at a time: each trial met, at each rung, the values of the trials before it.
    # Replay that from the reported learning curves and check every decision against the rule.
    rung_values: dict[int, dict] = {1: {}, 3: {}}
    final = {}
    for result in sorted(results, key=_creation_index):
        trial_id = result.metrics["trial_id"]
        history = result.metrics_dataframe.set_index("training_iteration")
        last = int(history.index.max())
        final[trial_id] = last
        for level in (1, 3):
            rung_values[level][trial_id] = _minimised(history.loc[level])
            stops = pareto.should_stop(trial_id, rung_values[level], 3)
            assert (last == level) == stops, (trial_id, level, last, rung_values[level])
            if stops:
                break
        # The searcher recorded tuples as reported (not negated), the stopping result included.
        reported = searcher.reported_results(trial_id)
        assert reported[last] == pytest.approx(tuple(history.loc[last, m] for m in METRICS))
    assert 1 < sum(last == 9 for last in final.values()) < 12  # some stopped at a rung, some finished
    for level in (1, 3):  # the scheduler's rung table holds what the replay recorded
        table = scheduler._table.trials_at(level)
        assert set(table) == set(rung_values[level])
        assert all(table[t] == pytest.approx(rung_values[level][t]) for t in table)
    assert searcher.predicted_final(trial_id, {"training_iteration": 1}) is None  # no rescue with several


@pytest.fixture
def promotions(monkeypatch) -> list[tuple]:
    """Every promotion the scheduler's rung table marks: (trial, rung, the rung's values then)."""
    seen: list[tuple] = []
    original = RungTable.mark_promoted

    def recorded(self, trial):
        level = self.recorded_level(trial)
        seen.append((trial, level, self.trials_at(level) if level is not None else {}))
        original(self, trial)

    monkeypatch.setattr(RungTable, "mark_promoted", recorded)
    return seen


def test_promotion_by_the_pareto_order(tmp_path, promotions) -> None:
    searcher = MobsterSearcher(METRICS, MODES, seed=1, num_initial_random=4, background=False)
    scheduler = MobsterScheduler(metric=METRICS, mode=MODES, max_t=9, reduction_factor=3, type="promotion")
    results = _run(SPACE, searcher, scheduler, tmp_path, num_samples=9)
    assert not results.errors and len(results) == 9
    lasts, histories = {}, {}
    resumed = 0
    for result in results:
        iterations = list(result.metrics_dataframe["training_iteration"])
        assert iterations == list(range(1, len(iterations) + 1))  # continued from checkpoints
        assert iterations[-1] in (1, 3, 9)
        lasts[result.metrics["trial_id"]] = iterations[-1]
        histories[result.metrics["trial_id"]] = result.metrics_dataframe.set_index("training_iteration")
        resumed += bool(result.metrics_dataframe["resumed"].any())
    assert resumed >= 1 and "num_paused=" in scheduler.debug_string()
    assert 9 in lasts.values() and min(lasts.values()) < 9
    for level in (1, 3):
        at_rung = scheduler._table.trials_at(level)
        for trial, value in at_rung.items():  # minimised tuples of what the trial reported there
            assert value == pytest.approx(_minimised(histories[trial].loc[level]))
        assert {t for t, last in lasts.items() if last > level} <= set(at_rung)
        # The first in the rung's Pareto order is always sent on (at the latest once no trial comes).
        assert lasts[pareto.pareto_order(at_rung)[0]] > level
    # Each promotion took a trial from the top ceil(n / eta) of its rung's Pareto order at the
    # time (floor(n / eta) while new trials still come).
    assert promotions
    for trial, level, values in promotions:
        assert trial in pareto.pareto_order(values)[: math.ceil(len(values) / 3)], (trial, level, values)


def test_nan_in_one_objective_stops_the_trial_without_crashing(tmp_path) -> None:
    space = {"x": tune.uniform(0.0, 1.0), "n": 0, "kind": tune.choice(["ok", "nan"])}
    points = [{"x": 0.9, "kind": "ok"}, {"x": 0.5, "kind": "nan"}, {"x": 0.8, "kind": "ok"}]
    searcher = MobsterSearcher(METRICS, MODES, points_to_evaluate=points, num_initial_random=100)
    scheduler = MobsterScheduler(metric=METRICS, mode=MODES, max_t=9, reduction_factor=3)
    with pytest.warns(RuntimeWarning) as caught:
        results = _run(space, searcher, scheduler, tmp_path, num_samples=3, max_concurrent_trials=1)
    assert not results.errors
    by_kind = {(r.config["kind"], r.config["x"]): r for r in results}
    nan_trial = by_kind[("nan", 0.5)]
    assert nan_trial.metrics["training_iteration"] == 1  # stopped at the first rung
    assert by_kind[("ok", 0.9)].metrics["training_iteration"] == 9
    trial_id = nan_trial.metrics["trial_id"]
    messages = [str(w.message) for w in caught if trial_id in str(w.message)]
    assert len([m for m in messages if m.startswith("MobsterScheduler") and "params=nan" in m]) == 1
    assert len([m for m in messages if m.startswith("MobsterSearcher") and "params=nan" in m]) == 1
    assert searcher.reported_results(trial_id) == {}  # left out of the model
    assert trial_id not in scheduler._table.trials_at(1)


@pytest.mark.parametrize(
    "metric, mode, message",
    [
        (["error", "params"], ["min"], r"same length, got 2 metrics \['error', 'params'\] and 1 modes"),
        (["error", "error"], ["min", "min"], r"metric names must differ, got \['error', 'error'\]"),
        (["error", "params"], ["min", "maximize"], "mode must be 'min' or 'max', got 'maximize'"),
        (["error", "params"], "min", r"metric=\['error', 'params'\] and mode='min'.*lists of the same length"),
        ("error", ["min", "min"], r"metric='error' and mode=\['min', 'min'\]"),
    ],
)
def test_invalid_lists_are_rejected_at_construction(metric, mode, message) -> None:
    with pytest.raises(ValueError, match=message):
        MobsterSearcher(metric, mode)
    with pytest.raises(ValueError, match=message):
        MobsterScheduler(metric=metric, mode=mode)


def test_what_several_objectives_do_not_combine_with_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="rescue_by_model needs one objective"):
        MobsterScheduler(metric=METRICS, mode=MODES, rescue_by_model=True)
    with pytest.raises(ValueError, match="brackets='auto' ranks one objective"):
        MobsterScheduler(metric=METRICS, mode=MODES, brackets="auto")


def test_a_list_on_one_side_and_a_string_on_the_other_fails_before_any_trial_runs(tmp_path) -> None:
    searcher = MobsterSearcher(METRICS, MODES, num_initial_random=100)
    with pytest.raises(ValueError, match=r"MobsterScheduler has metric='error' but MobsterSearcher has metric=\['error'"):
        _run(SPACE, searcher, MobsterScheduler(metric="error", mode="min", max_t=9), tmp_path, num_samples=2)
    # TuneConfig's single metric against the searcher's list: refused when Tune sets it.
    searcher = MobsterSearcher(METRICS, MODES, num_initial_random=100)
    with pytest.raises(ValueError, match=r"MobsterSearcher has metric=\['error', 'params'\] but tune.TuneConfig sets metric='error'"):
        _run(SPACE, searcher, None, tmp_path, num_samples=2, metric="error", mode="min")
    # Ray itself refuses a list mode in TuneConfig: the lists go to our searcher and scheduler.
    with pytest.raises(ValueError, match="mode"):
        _run(SPACE, MobsterSearcher(num_initial_random=100), None, tmp_path, num_samples=2, metric=METRICS, mode=MODES)
