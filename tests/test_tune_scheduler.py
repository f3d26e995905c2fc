"""MobsterScheduler on real Ray Tune: stopping decisions, brackets, promotion from checkpoints,
the checkpoint errors, and bad metric values."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import warnings

import pytest
from ray import tune

from mobster import rungs
from ray_session import local_ray
from tune_mobster import MissingCheckpointError, MobsterScheduler, MobsterSearcher


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    with local_ray(sys.modules[__name__]):
        yield


def constant_loss(config: dict) -> None:
    """Reports ``config["v"]`` at every iteration: the rung values are the ``v`` themselves."""
    for _ in range(config.get("iterations", 9)):
        tune.report({"loss": config["v"], "score": -config["v"]})


def checkpointing_trainable(config: dict) -> None:
    """A learning curve with a checkpoint at every report; marks results after a resume."""
    start, resumed = 0, False
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            with open(os.path.join(folder, "state.json")) as file:
                start = json.load(file)["iteration"]
        resumed = True
    for iteration in range(start, 9):
        if config.get("checkpoint_every", 1) and (iteration + 1) % config.get("checkpoint_every", 1) == 0:
            with tempfile.TemporaryDirectory() as folder:
                with open(os.path.join(folder, "state.json"), "w") as file:
                    json.dump({"iteration": iteration + 1}, file)
                tune.report(
                    {"loss": config["v"] + 1.0 / (iteration + 1), "resumed": resumed},
                    checkpoint=tune.Checkpoint.from_directory(folder),
                )
        else:
            tune.report({"loss": config["v"] + 1.0 / (iteration + 1), "resumed": resumed})


def _run(trainable, param_space, scheduler, tmp_path, **tune_config):
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(scheduler=scheduler, reuse_actors=True, **tune_config),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    ).fit()


def _final_iterations(results, key: str = "v") -> dict:
    return {r.config[key]: r.metrics["training_iteration"] for r in results}


# Rungs 1, 3, 9 (eta = 3). Trials run one at a time in this order; at each rung a trial goes on
# iff its value is <= the 1/3 quantile (numpy, linear) of the values recorded there so far:
#   v=5  rung1 [5] q=5 go          rung3 [5] q=5 go                  -> 9
#   v=3  rung1 [3,5] q=3.67 go     rung3 [3,5] q=3.67 go             -> 9
#   v=8  rung1 [3,5,8] q=4.33 stop                                   -> 1
#   v=1  rung1 [1,3,5,8] q=3 go    rung3 [1,3,5] q=2.33 go           -> 9
#   v=4  rung1 [1,3,4,5,8] q=3.33 stop                               -> 1
#   v=9  rung1 [1,3,4,5,8,9] q=3.67 stop                             -> 1
#   v=2  rung1 [1,2,3,4,5,8,9] q=3 go  rung3 [1,2,3,5] q=2 go        -> 9
#   v=6  rung1 [..8 values..] q=3.33 stop                            -> 1
#   v=2.5 rung1 [1,2,2.5,3,4,5,6,8,9] q=3 go  rung3 [1,2,2.5,3,5] q=2.33 stop -> 3
HAND_TABLE = {5: 9, 3: 9, 8: 1, 1: 9, 4: 1, 9: 1, 2: 9, 6: 1, 2.5: 3}


@pytest.mark.parametrize("mode, metric", [("min", "loss"), ("max", "score")])
def test_stopping_decisions_match_a_hand_computed_rung_table(tmp_path, mode, metric) -> None:
    scheduler = MobsterScheduler(max_t=9, reduction_factor=3)
    results = _run(
        constant_loss,
        {"v": tune.grid_search(list(HAND_TABLE))},
        scheduler,
        tmp_path,
        metric=metric,
        mode=mode,
        max_concurrent_trials=1,
    )
    assert not results.errors
    assert _final_iterations(results) == HAND_TABLE
    assert scheduler.rung_levels == [1, 3, 9]


def test_brackets_start_trials_at_their_bracket_rung(tmp_path) -> None:
    scheduler = MobsterScheduler(max_t=9, reduction_factor=3, brackets=3, seed=3)
    results = _run(
        constant_loss,
        {"v": tune.grid_search([5, 3, 8, 1, 4, 9, 2, 6, 7, 0])},
        scheduler,
        tmp_path,
        metric="loss",
        mode="min",
    )
    assert not results.errors
    starts = {r.config["v"]: scheduler.trial_rung_levels(r.metrics["trial_id"])[0] for r in results}
    assert set(starts.values()) <= {1, 3, 9} and len(set(starts.values())) > 1
    for result in results:
        levels = scheduler.trial_rung_levels(result.metrics["trial_id"])
        assert result.metrics["training_iteration"] in levels  # stopped only at its own rungs


def test_auto_brackets_close_once_the_first_rung_ranks_as_the_second(tmp_path) -> None:
    scheduler = MobsterScheduler(max_t=9, reduction_factor=3, brackets="auto", seed=0)
    # One trial at a time, each the best yet at every rung: bracket-0 trials all go on, and the
    # first rung's top third ranks at rung 3 as at rung 1. Until 8 of them are there, trials
    # sample from three brackets; then from one.
    values = [1.0 - 0.01 * k for k in range(60)]
    results = _run(
        constant_loss,
        {"v": tune.grid_search(values)},
        scheduler,
        tmp_path,
        metric="loss",
        mode="min",
        max_concurrent_trials=1,
    )
    assert not results.errors
    starts = [scheduler.trial_rung_levels(r.metrics["trial_id"])[0] for r in sorted(results, key=lambda r: -r.config["v"])]
    assert set(starts[:10]) > {1}  # before the evidence
    assert starts[-10:] == [1] * 10


def test_promotion_pauses_and_resumes_trials_from_checkpoints(tmp_path) -> None:
    scheduler = MobsterScheduler(max_t=9, reduction_factor=3, type="promotion")
    searcher = MobsterSearcher(seed=1, num_initial_random=100)  # random: this test is about scheduling
    results = _run(
        checkpointing_trainable,
        {"v": tune.uniform(0, 1)},
        scheduler,
        tmp_path,
        metric="loss",
        mode="min",
        search_alg=searcher,
        num_samples=9,
    )
    assert not results.errors
    resumed_trials = 0
    for result in results:
        history = result.metrics_dataframe
        iterations = list(history["training_iteration"])
        # training_iteration continues across pauses: never restarted, never repeated.
        assert iterations == list(range(1, len(iterations) + 1))
        assert iterations[-1] in (1, 3, 9)
        if history["resumed"].any():
            resumed_trials += 1
            first_resumed = int(history.loc[history["resumed"], "training_iteration"].iloc[0])
            assert first_resumed - 1 in (1, 3)  # resumed right after the rung it paused at
    assert resumed_trials >= 1
    assert max(r.metrics["training_iteration"] for r in results) == 9
    assert "num_paused=" in scheduler.debug_string()


def test_promotion_without_checkpoints_raises_a_clear_error(tmp_path) -> None:
    scheduler = MobsterScheduler(max_t=9, reduction_factor=3, type="promotion")
    with pytest.raises(MissingCheckpointError, match="tune.report.*checkpoint=tune.Checkpoint"):
        _run(
            constant_loss,
            {"v": tune.grid_search([0, 1, 2, 3])},
            scheduler,
            tmp_path,
            metric="loss",
            mode="min",
        )


def test_promotion_detects_a_trial_resumed_from_an_older_checkpoint(tmp_path) -> None:
    # Checkpoints only every 2nd iteration: a trial paused at rung 3 resumes from iteration 2.
    scheduler = MobsterScheduler(max_t=9, reduction_factor=3, grace_period=3, type="promotion")
    with pytest.raises(MissingCheckpointError, match="paused at training_iteration=3 but resumed at"):
        _run(
            checkpointing_trainable,
            {"v": tune.grid_search([0, 1, 2, 3]), "checkpoint_every": 2},
            scheduler,
            tmp_path,
            metric="loss",
            mode="min",
        )


def nan_or_failing(config: dict) -> None:
    for iteration in range(1, 10):
        if config["v"] == "fail" and iteration == 2:
            raise RuntimeError("the trainable broke")
        loss = math.nan if config["v"] == "nan" else float(config["v"])
        tune.report({"loss": loss})


def test_nan_metrics_and_errors_fail_trials_not_the_experiment(tmp_path) -> None:
    scheduler = MobsterScheduler(max_t=9, reduction_factor=3)
    searcher = MobsterSearcher(num_initial_random=100, points_to_evaluate=[{"v": v} for v in ["1", "nan", "fail", "2"]])
    with pytest.warns(RuntimeWarning) as caught:
        results = _run(
            nan_or_failing,
            {"v": tune.choice(["1", "nan", "fail", "2"])},
            scheduler,
            tmp_path,
            metric="loss",
            mode="min",
            search_alg=searcher,
            num_samples=4,
        )
    by_value = {r.config["v"]: r for r in results}
    assert by_value["fail"].error is not None
    assert by_value["nan"].error is None and by_value["nan"].metrics["training_iteration"] == 1  # stopped
    assert by_value["1"].metrics["training_iteration"] == 9
    nan_trial = by_value["nan"].metrics["trial_id"]
    nan_warnings = [str(w.message) for w in caught if nan_trial in str(w.message)]
    assert len([m for m in nan_warnings if m.startswith("MobsterScheduler")]) == 1
    assert len([m for m in nan_warnings if m.startswith("MobsterSearcher")]) == 1


def late_bloomer(config: dict) -> None:
    """Crossing learning curves: a large ``x`` starts worst and finishes best."""
    for r in range(1, 10):
        tune.report({"loss": config["x"] * (1 - r / 9) + (1 - config["x"]) * r / 9})


@pytest.mark.parametrize("rescue", [None, False])  # None: the default, on with a MobsterSearcher
def test_rescue_by_model_sends_on_late_bloomers_the_rule_would_stop(tmp_path, rescue) -> None:
    scheduler = MobsterScheduler(metric="loss", mode="min", max_t=9, grace_period=1, rescue_by_model=rescue)
    # The reproducible mode: each suggestion (and the model the rescue asks) computed in order.
    searcher = MobsterSearcher(metric="loss", mode="min", seed=0, num_initial_random=4, background=False)
    results = _run(
        late_bloomer,
        {"x": tune.uniform(0.0, 1.0)},
        scheduler,
        tmp_path,
        search_alg=searcher,
        num_samples=20,
        max_concurrent_trials=1,  # one trial at a time: the same decisions on every run
    )
    assert not results.errors
    assert "num_rescued=" in scheduler.debug_string()
    rescued = int(scheduler.debug_string().split("num_rescued=")[1].split(";")[0])
    if rescue is False:
        assert rescued == 0
    else:
        assert rescued > 0  # stopped by the rule at a rung, sent on by the model


def test_rescue_by_model_needs_the_stopping_rule() -> None:
    with pytest.raises(ValueError, match="rescue_by_model applies to type='stopping'"):
        MobsterScheduler(metric="loss", mode="min", type="promotion", rescue_by_model=True)


def test_default_scheduler_without_a_mobster_searcher_is_plain_asha_without_a_warning(tmp_path) -> None:
    scheduler = MobsterScheduler(metric="loss", mode="min", max_t=9, grace_period=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        space = {"v": tune.grid_search([0.1, 0.5, 0.9])}
        results = _run(constant_loss, space, scheduler, tmp_path, max_concurrent_trials=1)
    assert not [w for w in caught if "rescue_by_model" in str(w.message)]
    assert _final_iterations(results) == {0.1: 9, 0.5: 1, 0.9: 1}
    # With promotion the default is off too: it does not raise as an explicit True does.
    assert "promotion" in MobsterScheduler(metric="loss", mode="min", type="promotion").debug_string()


def test_rescue_by_model_without_a_mobster_searcher_warns_and_stops(tmp_path) -> None:
    scheduler = MobsterScheduler(metric="loss", mode="min", max_t=9, grace_period=1, rescue_by_model=True)
    with pytest.warns(UserWarning, match="rescue_by_model needs a MobsterSearcher"):
        space = {"v": tune.grid_search([0.1, 0.5, 0.9])}
        results = _run(constant_loss, space, scheduler, tmp_path, max_concurrent_trials=1)
    assert _final_iterations(results) == {0.1: 9, 0.5: 1, 0.9: 1}


def test_a_scheduler_saved_before_the_rescue_existed_restores_with_it_off() -> None:
    import pickle

    state = MobsterScheduler(metric="loss", mode="min").__getstate__()
    for key in ("_rescue_by_model", "_num_rescued", "_rescue_warned"):
        del state[key]
    old = MobsterScheduler.__new__(MobsterScheduler)
    old.__dict__.update(state)  # what unpickling an earlier version's scheduler gives
    restored = pickle.loads(pickle.dumps(old))
    assert "num_rescued=0" in restored.debug_string()
