"""MobsterSearcher on real Ray Tune: with MobsterScheduler through Tuner and tune.run, with Ray's
ASHAScheduler, with FIFO; and its save/restore and error paths."""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
import time

import pytest
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import Searcher

from mobster.space import InvalidSpaceError
from ray_session import local_ray
from tune_mobster import MobsterScheduler, MobsterSearcher

SPACE = {"x": tune.uniform(0.0, 1.0), "n": tune.randint(0, 4), "act": tune.choice(["relu", "tanh"]), "epochs": 9}


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    with local_ray(sys.modules[__name__]):
        yield


def curve(config: dict) -> None:
    """A learning curve whose final value depends on the configuration."""
    final = (config["x"] - 0.3) ** 2 + 0.05 * config["n"] + (0.1 if config["act"] == "tanh" else 0.0)
    for iteration in range(1, config["epochs"] + 1):
        tune.report({"loss": final + 1.0 / iteration})


def _configs(results) -> list[tuple]:
    return [(r.config["x"], r.config["n"], r.config["act"]) for r in results]


def test_tuner_run_with_mobster_searcher_and_scheduler(tmp_path) -> None:
    searcher = MobsterSearcher(seed=0, num_initial_random=5)
    scheduler = MobsterScheduler(max_t=9, reduction_factor=3)
    results = tune.Tuner(
        curve,
        param_space=SPACE,
        tune_config=tune.TuneConfig(
            metric="loss", mode="min", search_alg=searcher, scheduler=scheduler, num_samples=8, reuse_actors=True
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert not results.errors and len(results) == 8
    assert len(set(_configs(results))) == 8  # never the same configuration twice
    assert all(r.config["epochs"] == 9 for r in results)  # constants kept by Ray
    # The searcher adopted the scheduler's rungs and saw every trial's last result, including
    # the one a trial was stopped on (it only arrives through on_trial_complete).
    assert searcher.rung_levels == scheduler.rung_levels == [1, 3, 9]
    for result in results:
        reported = searcher.reported_results(result.metrics["trial_id"])
        assert reported[result.metrics["training_iteration"]] == pytest.approx(result.metrics["loss"])
    best = results.get_best_result()
    assert best.metrics["training_iteration"] == 9


def test_tune_run_with_promotion_and_max_concurrent_trials(tmp_path) -> None:
    # With max_concurrent_trials Ray wraps the searcher in a ConcurrencyLimiter, which would
    # count paused trials; MobsterSearcher takes over and counts running trials only.
    searcher = MobsterSearcher(seed=1, num_initial_random=100)
    analysis = tune.run(
        _checkpointing_curve,
        config=SPACE,
        metric="loss",
        mode="min",
        search_alg=searcher,
        scheduler=MobsterScheduler(max_t=9, reduction_factor=3, type="promotion"),
        num_samples=8,
        max_concurrent_trials=2,
        reuse_actors=True,
        storage_path=str(tmp_path),
        verbose=0,
    )
    trials = analysis.trials
    assert len(trials) == 8 and all(t.status == "TERMINATED" for t in trials)
    assert max(t.last_result["training_iteration"] for t in trials) == 9
    assert searcher._max_concurrent == 2


def _checkpointing_curve(config: dict) -> None:
    import json
    import os
    import tempfile

    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder, open(os.path.join(folder, "state.json")) as file:
            start = json.load(file)["iteration"]
    final = (config["x"] - 0.3) ** 2 + 0.05 * config["n"]
    for iteration in range(start + 1, config["epochs"] + 1):
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "state.json"), "w") as file:
                json.dump({"iteration": iteration}, file)
            tune.report({"loss": final + 1.0 / iteration}, checkpoint=tune.Checkpoint.from_directory(folder))


def test_searcher_with_ray_asha_scheduler(tmp_path) -> None:
    searcher = MobsterSearcher(seed=2, num_initial_random=6, max_t=9, reduction_factor=3)
    results = tune.Tuner(
        curve,
        param_space=SPACE,
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            search_alg=searcher,
            scheduler=ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3),
            num_samples=7,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert not results.errors and len(set(_configs(results))) == 7
    assert searcher.rung_levels == [1, 3, 9]
    stopped = [r for r in results if r.metrics["training_iteration"] < 9]
    assert stopped, "ASHA stopped no trial"
    for result in stopped:  # ASHA's stopping result reached the searcher
        reported = searcher.reported_results(result.metrics["trial_id"])
        assert max(reported) == result.metrics["training_iteration"]


def test_searcher_with_fifo_takes_max_t_from_the_stop_criterion(tmp_path) -> None:
    points = [{"x": 0.3, "n": 0, "act": "relu", "epochs": 9}, {"x": 0.9, "n": 3, "act": "tanh", "epochs": 9}]
    # In the background: Tune keeps processing results while the GP fits.
    searcher = MobsterSearcher(seed=3, num_initial_random=4, points_to_evaluate=points, background=True)
    results = tune.Tuner(
        curve,
        param_space=SPACE,
        tune_config=tune.TuneConfig(metric="loss", mode="min", search_alg=searcher, num_samples=5, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0, stop={"training_iteration": 5}),
    ).fit()
    assert not results.errors
    assert searcher.rung_levels == [1, 3, 5]
    assert all(r.metrics["training_iteration"] == 5 for r in results)
    assert {("relu", 0.3), ("tanh", 0.9)} <= {(r.config["act"], r.config["x"]) for r in results}
    assert len(set(_configs(results))) == 5


def test_save_restore_keeps_the_history_and_is_idempotent(tmp_path) -> None:
    searcher = MobsterSearcher("loss", "min", space=SPACE, seed=4, num_initial_random=100)
    suggested = {f"t{i}": searcher.suggest(f"t{i}") for i in range(4)}
    searcher.on_trial_result("t0", {"training_iteration": 1, "loss": 0.5})
    searcher.on_trial_complete("t0", {"training_iteration": 3, "loss": 0.25})
    searcher.on_trial_complete("t1", error=True)
    searcher.on_pause("t2")
    path = tmp_path / "searcher.pkl"
    searcher.save(str(path))

    restored = MobsterSearcher()
    restored.restore(str(path))
    assert restored.metric == "loss" and restored.mode == "min"
    assert restored.reported_results("t0") == {1: 0.5, 3: 0.25}
    restored.on_trial_complete("t0", {"training_iteration": 3, "loss": 0.25})  # again after a restore
    assert restored.reported_results("t0") == {1: 0.5, 3: 0.25}
    assert restored._num_running() == 1  # t3 only: t0, t1 finished, t2 paused
    new = restored.suggest("t4")
    assert new not in suggested.values()


def test_random_fraction_reaches_the_core(monkeypatch) -> None:
    def broken_fit(*args, **kwargs):
        raise RuntimeError("the model was asked")

    monkeypatch.setattr("mobster.searcher.fit_model", broken_fit)

    def model_failures(random_fraction: float) -> int:
        searcher = MobsterSearcher(
            "loss", "min", space=SPACE, seed=1, num_initial_random=2, random_fraction=random_fraction, background=False
        )  # reproducible mode: each suggestion is computed inside suggest()
        for i in range(8):
            config = searcher.suggest(f"t{i}")
            searcher.on_trial_complete(f"t{i}", {"training_iteration": 1, "loss": config["x"]})
        return searcher._core.model_failures if searcher._core is not None else 0

    assert model_failures(1.0) == 0  # always random: the model is never fitted
    with pytest.warns(UserWarning, match="model failed"):
        assert model_failures(0.0) == 6  # the reference's rule: the model after the random start


def test_searcher_errors_name_the_problem() -> None:
    with pytest.raises(RuntimeError, match="metric"):
        MobsterSearcher(space=SPACE).suggest("t0")
    with pytest.raises(RuntimeError, match="space"):
        MobsterSearcher("loss", "min").suggest("t0")
    with pytest.raises(InvalidSpaceError, match="'lr'.*grid_search"):
        MobsterSearcher("loss", "min").set_search_properties(None, None, {"lr": tune.grid_search([0.1, 0.2])})
    with pytest.raises(ValueError, match="'n'.*out of its bounds"):
        MobsterSearcher("loss", "min", space=SPACE, points_to_evaluate=[{"x": 0.1, "n": 4, "act": "relu"}])


def test_background_suggestions_never_keep_a_slot_waiting(monkeypatch) -> None:
    from mobster.searcher import ModelBasedSearcher

    release = threading.Event()
    original = ModelBasedSearcher.suggest

    def held_suggest(self, trials):  # a slow GP fit, until the test lets it go
        release.wait(60)
        return original(self, trials)

    searcher = MobsterSearcher("loss", "min", space=SPACE, seed=6, num_initial_random=2, random_fraction=0.0)
    first = [searcher.suggest("t0"), searcher.suggest("t1")]  # the model's next one starts in a thread
    for name, config in zip(("t0", "t1"), first):
        for iteration in (1, 3):
            searcher.on_trial_result(name, {"training_iteration": iteration, "loss": config["x"] + 1 / iteration})
    deadline = time.monotonic() + 120
    while not searcher._future.done() and time.monotonic() < deadline:
        time.sleep(0.1)  # the one started at t1
    monkeypatch.setattr(ModelBasedSearcher, "suggest", held_suggest)
    modelled = searcher.suggest("t2")  # ready: handed out, and the next one starts, held
    started = time.monotonic()
    fallback = searcher.suggest("t3")
    assert time.monotonic() - started < 5 and searcher.random_fallbacks == 1  # random, at once
    assert fallback is not None and fallback not in (*first, modelled)
    release.set()
    while not searcher._future.done() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert searcher.suggest("t4") not in (*first, modelled, fallback) and searcher.random_fallbacks == 1
    assert pickle.loads(pickle.dumps(searcher))._future is None  # no thread state is pickled


_FREEZE_SCRIPT = """
import gc, sys
from ray import tune
from tune_mobster import MobsterSearcher
space = {"x": tune.uniform(0.0, 1.0)}
searcher = MobsterSearcher("loss", "min", space=space, seed=0, num_initial_random=2, background=BACKGROUND)
for k in range(3):
    searcher.suggest(f"t{k}")
print(gc.get_freeze_count())
"""


@pytest.mark.parametrize("background", [False, True])
def test_background_mode_takes_the_objects_alive_out_of_full_collections(background: bool) -> None:
    # A fresh interpreter: the test process may have frozen its objects already.
    script = _FREEZE_SCRIPT.replace("BACKGROUND", str(background))
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    frozen = int(completed.stdout.split()[-1])
    if background:  # torch's, Ray's and our modules: hundreds of thousands of objects
        assert frozen > 100_000
    else:  # the reproducible mode leaves the process's collector alone
        assert frozen == 0


def test_rescue_predictions_do_not_wait_for_a_background_suggestion(monkeypatch) -> None:
    from mobster.searcher import ModelBasedSearcher

    release = threading.Event()
    original = ModelBasedSearcher.suggest

    def held_suggest(self, trials):  # a slow GP fit: holds the model until the test lets it go
        with self._lock:
            release.wait(60)
        return original(self, trials)

    searcher = MobsterSearcher("loss", "min", space=SPACE, seed=6, num_initial_random=2, random_fraction=0.0)
    first = [searcher.suggest("t0"), searcher.suggest("t1")]  # random phase, on the driver
    for name, config in zip(("t0", "t1"), first):
        searcher.on_trial_result(name, {"training_iteration": 1, "loss": config["x"]})
    assert searcher.predicted_final("t0", {"training_iteration": 1, "loss": first[0]["x"]}) is None  # no model yet

    deadline = time.monotonic() + 120
    while searcher._core is None or searcher._core._posterior is None:  # until a model-based one
        assert time.monotonic() < deadline
        if searcher._future is not None and not searcher._future.done():
            time.sleep(0.1)
            continue
        searcher.suggest(f"t{len(searcher._trials)}")
    while not searcher._future.done() and time.monotonic() < deadline:
        time.sleep(0.1)
    monkeypatch.setattr(ModelBasedSearcher, "suggest", held_suggest)
    searcher.suggest(f"t{len(searcher._trials)}")  # ready at once; the next one starts, and is held
    started = time.monotonic()
    means = searcher.predicted_final("t0", {"training_iteration": 1, "loss": 0.45})
    assert time.monotonic() - started < 5  # answered at once from the last model, not after the held fit
    assert means is not None and set(means) == {"t0", "t1"}
    release.set()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a driver without CUDA")
def test_cuda_device_without_cuda_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="CUDA is not available on the driver"):
        MobsterSearcher(device="cuda")


def test_a_finite_space_finishes_the_search() -> None:
    searcher = MobsterSearcher("loss", "min", space={"k": tune.randint(0, 3)}, seed=5)
    configs = [searcher.suggest(f"t{i}") for i in range(3)]
    assert sorted(c["k"] for c in configs) == [0, 1, 2]
    assert searcher.suggest("t3") == Searcher.FINISHED


def test_reproducible_mode_repeats_a_seeded_search() -> None:
    def run() -> list[dict]:
        searcher = MobsterSearcher("loss", "min", space=SPACE, seed=8, num_initial_random=3, background=False)
        configs = []
        for i in range(7):
            config = searcher.suggest(f"t{i}")  # computed here, never in a thread
            configs.append(config)
            for iteration in (1, 3):
                searcher.on_trial_result(f"t{i}", {"training_iteration": iteration, "loss": config["x"] / iteration})
            searcher.on_trial_complete(f"t{i}")
        assert searcher.random_fallbacks == 0 and searcher._future is None
        return configs

    first = run()
    assert run() == first and len({repr(c) for c in first}) == 7
