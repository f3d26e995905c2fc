"""The driver of the restore tests: ``python tune_restore_driver.py KIND NUM_SAMPLES STORAGE LOG COMMAND``.

Runs (``COMMAND`` ``run``) or restores (``restore``) a Ray Tune experiment with MobsterSearcher and
MobsterScheduler (promotion type, rungs 1, 3, 9) named ``experiment`` under ``STORAGE``.
``KIND`` is ``single`` (one metric, ``loss``, set in the TuneConfig) or ``multi`` (``error``
minimised and ``params`` maximised, given to the searcher and scheduler). Every result is
appended to ``LOG`` as ``[trial id, iteration, first metric]``; at the end a line
``SUMMARY {json}`` gives each trial's id, config, last iteration, first metric and whether it
failed, and the scheduler's rung table as restored.

A script, not a module the tests import: the trainable is pickled by value from ``__main__``,
and the process (with the Ray processes it starts) can be killed as a whole.
"""

import json
import os
import sys
import tempfile
import time

import ray
from ray import tune

from tune_mobster import MobsterScheduler, MobsterSearcher

kind, num_samples, storage, log_path, command = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]
METRICS, MODES = (["loss"], ["min"]) if kind == "single" else (["error", "params"], ["min", "max"])


def results(config: dict, iteration: int) -> dict[str, float]:
    """The metrics of ``config`` after ``iteration`` steps: ``loss`` and ``error`` fall with more
    steps; ``params`` (maximised) depends on the configuration only, against ``error``."""
    if kind == "single":
        return {"loss": (config["x"] - 0.3) ** 2 + 0.1 * config["n"] + 1.0 / iteration}
    return {
        "error": (1.0 - config["x"]) ** 2 + 0.2 * config["n"] + 1.0 / iteration,
        "params": 2.0 - config["x"] - 0.3 * config["n"],
    }


def trainable(config: dict) -> None:
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder, open(os.path.join(folder, "state.json")) as file:
            start = json.load(file)["iteration"]
    trial_id = tune.get_context().get_trial_id()
    for iteration in range(start + 1, 10):
        time.sleep(0.3)
        metrics = results(config, iteration)
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "state.json"), "w") as file:
                json.dump({"iteration": iteration}, file)
            with open(log_path, "a") as log:
                log.write(json.dumps([trial_id, iteration, metrics[METRICS[0]]]) + "\n")
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def tune_config() -> tune.TuneConfig:
    """One metric is set in the TuneConfig (the searcher and the scheduler take it from there),
    several are given to the searcher and the scheduler themselves: each test keeps its way."""
    rungs = {"max_t": 9, "reduction_factor": 3, "type": "promotion"}
    if kind == "single":
        return tune.TuneConfig(
            metric="loss", mode="min", num_samples=num_samples, reuse_actors=True,
            search_alg=MobsterSearcher(seed=0, num_initial_random=4),
            scheduler=MobsterScheduler(**rungs),
        )  # fmt: skip
    return tune.TuneConfig(
        num_samples=num_samples, reuse_actors=True,
        search_alg=MobsterSearcher(METRICS, MODES, seed=0, num_initial_random=4),
        scheduler=MobsterScheduler(metric=METRICS, mode=MODES, **rungs),
    )  # fmt: skip


if __name__ == "__main__":
    ray.init(num_cpus=2, include_dashboard=False)
    if command == "run":
        tuner = tune.Tuner(
            trainable,
            param_space={"x": tune.uniform(0, 1), "n": tune.randint(0, 3)},
            tune_config=tune_config(),
            run_config=tune.RunConfig(name="experiment", storage_path=storage, verbose=0),
        )
    else:
        tuner = tune.Tuner.restore(os.path.join(storage, "experiment"), trainable=trainable)
    outcome = tuner.fit()
    scheduler = tuner._local_tuner._tune_config.scheduler  # test-only peek at the restored scheduler
    summary = {
        "trials": [
            {"id": r.metrics["trial_id"], "config": r.config, "iteration": r.metrics["training_iteration"],
             METRICS[0]: r.metrics[METRICS[0]], "failed": r.error is not None}
            for r in outcome
        ],
        # Rung values as the scheduler minimises them: a float, or a tuple (a JSON list) per trial.
        "rungs": {str(level): scheduler._table.values[level] for level in scheduler.rung_levels},
    }
    print("SUMMARY " + json.dumps(summary))
