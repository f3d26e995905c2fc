"""Tuner.restore after the driver is SIGKILLed, with several objectives: the scheduler rebuilds
its rung table from the searcher's restored tuples, and the search goes on (see
tests/test_tune_restore.py, whose kill-and-restore helpers this reuses)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from test_tune_restore import REPO, _env, _read_log, run_and_kill

NUM_SAMPLES = 8

DRIVER = textwrap.dedent(
    """
    import json, os, sys, tempfile, time
    import ray
    from ray import tune
    from tune_mobster import MobsterScheduler, MobsterSearcher

    storage, log_path, command = sys.argv[1], sys.argv[2], sys.argv[3]
    METRICS, MODES = ["error", "params"], ["min", "max"]

    def trainable(config):
        start = 0
        checkpoint = tune.get_checkpoint()
        if checkpoint:
            with checkpoint.as_directory() as folder, open(os.path.join(folder, "state.json")) as file:
                start = json.load(file)["iteration"]
        trial_id = tune.get_context().get_trial_id()
        for iteration in range(start + 1, 10):
            time.sleep(0.3)
            error = (1.0 - config["x"]) ** 2 + 0.2 * config["n"] + 1.0 / iteration
            params = 2.0 - config["x"] - 0.3 * config["n"]
            with tempfile.TemporaryDirectory() as folder:
                with open(os.path.join(folder, "state.json"), "w") as file:
                    json.dump({"iteration": iteration}, file)
                with open(log_path, "a") as log:
                    log.write(json.dumps([trial_id, iteration, error]) + "\\n")
                tune.report({"error": error, "params": params}, checkpoint=tune.Checkpoint.from_directory(folder))

    ray.init(num_cpus=2, include_dashboard=False)
    if command == "run":
        tuner = tune.Tuner(
            trainable,
            param_space={"x": tune.uniform(0, 1), "n": tune.randint(0, 3)},
            tune_config=tune.TuneConfig(
                num_samples=NUM_SAMPLES, reuse_actors=True,
                search_alg=MobsterSearcher(METRICS, MODES, seed=0, num_initial_random=4),
                scheduler=MobsterScheduler(metric=METRICS, mode=MODES, max_t=9, reduction_factor=3, type="promotion"),
            ),
            run_config=tune.RunConfig(name="experiment", storage_path=storage, verbose=0),
        )
    else:
        tuner = tune.Tuner.restore(os.path.join(storage, "experiment"), trainable=trainable)
    results = tuner.fit()
    scheduler = tuner._local_tuner._tune_config.scheduler  # test-only peek at the restored scheduler
    print("SUMMARY " + json.dumps({
        "trials": [
            {"id": r.metrics["trial_id"], "config": r.config, "iteration": r.metrics["training_iteration"],
             "error": r.metrics["error"], "failed": r.error is not None}
            for r in results
        ],
        "rungs": {str(level): {t: list(v) for t, v in scheduler._table.values[level].items()}
                  for level in scheduler.rung_levels},
    }))
    """
).replace("NUM_SAMPLES", str(NUM_SAMPLES))


@pytest.mark.slow
def test_restore_after_sigkill_rebuilds_pareto_rungs(tmp_path) -> None:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    log = tmp_path / "progress.jsonl"
    storage = tmp_path / "results"
    command = [sys.executable, str(script), str(storage), str(log)]

    run_and_kill(command, log, storage)
    finished_before = {trial: error for trial, iteration, error in _read_log(log) if iteration == 9}

    restored = subprocess.run(
        command + ["restore"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=400
    )
    summary_lines = [line for line in restored.stdout.splitlines() if line.startswith("SUMMARY ")]
    assert restored.returncode == 0 and summary_lines, restored.stderr[-3000:]
    summary = json.loads(summary_lines[-1][len("SUMMARY ") :])

    trials = summary["trials"]
    assert len(trials) == NUM_SAMPLES and not any(t["failed"] for t in trials)
    assert len({(t["config"]["x"], t["config"]["n"]) for t in trials}) == NUM_SAMPLES  # none twice
    by_id = {t["id"]: t for t in trials}
    for trial, error in finished_before.items():  # finished results kept
        assert by_id[trial]["iteration"] == 9 and by_id[trial]["error"] == pytest.approx(error)
    # The rebuilt rung table holds every trial's rung-1 pair, those finished before the kill too,
    # minimised: "params" (maximised) with its sign flipped.
    first_rung = summary["rungs"]["1"]
    assert set(first_rung) == set(by_id)
    for trial, (error, minus_params) in first_rung.items():
        x, n = by_id[trial]["config"]["x"], by_id[trial]["config"]["n"]
        assert error == pytest.approx((1.0 - x) ** 2 + 0.2 * n + 1.0)
        assert minus_params == pytest.approx(-(2.0 - x - 0.3 * n))
    assert max(t["iteration"] for t in trials) == 9
