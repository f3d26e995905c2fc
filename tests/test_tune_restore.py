"""Tuner.restore after the driver is SIGKILLed: finished results kept, rung state rebuilt from the
searcher's restored history, the search continued without suggesting a configuration twice.

The experiment runs in a subprocess (in its own session, so that killing its process group also
kills the Ray processes it started, as a crashed machine would) and is then restored in another.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NUM_SAMPLES = 8

DRIVER = textwrap.dedent(
    """
    import json, os, sys, tempfile, time
    import ray
    from ray import tune
    from tune_mobster import MobsterScheduler, MobsterSearcher

    storage, log_path, command = sys.argv[1], sys.argv[2], sys.argv[3]

    def trainable(config):
        start = 0
        checkpoint = tune.get_checkpoint()
        if checkpoint:
            with checkpoint.as_directory() as folder, open(os.path.join(folder, "state.json")) as file:
                start = json.load(file)["iteration"]
        trial_id = tune.get_context().get_trial_id()
        for iteration in range(start + 1, 10):
            time.sleep(0.3)
            loss = (config["x"] - 0.3) ** 2 + 0.1 * config["n"] + 1.0 / iteration
            with tempfile.TemporaryDirectory() as folder:
                with open(os.path.join(folder, "state.json"), "w") as file:
                    json.dump({"iteration": iteration}, file)
                with open(log_path, "a") as log:
                    log.write(json.dumps([trial_id, iteration, loss]) + "\\n")
                tune.report({"loss": loss}, checkpoint=tune.Checkpoint.from_directory(folder))

    ray.init(num_cpus=2, include_dashboard=False)
    if command == "run":
        tuner = tune.Tuner(
            trainable,
            param_space={"x": tune.uniform(0, 1), "n": tune.randint(0, 3)},
            tune_config=tune.TuneConfig(
                metric="loss", mode="min", num_samples=NUM_SAMPLES, reuse_actors=True,
                search_alg=MobsterSearcher(seed=0, num_initial_random=4),
                scheduler=MobsterScheduler(max_t=9, reduction_factor=3, type="promotion"),
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
             "loss": r.metrics["loss"], "error": r.error is not None}
            for r in results
        ],
        "rung_counts": {str(level): len(scheduler._table.values[level]) for level in scheduler.rung_levels},
    }))
    """
).replace("NUM_SAMPLES", str(NUM_SAMPLES))


def _read_log(path: Path) -> list[tuple[str, int, float]]:
    if not path.exists():
        return []
    return [tuple(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def _state_is_whole(storage: Path) -> bool:
    """Whether Ray's newest experiment state file holds complete JSON right now."""
    files = sorted((storage / "experiment").glob("experiment_state-*.json"), key=lambda f: f.stat().st_mtime)
    try:
        return bool(files) and bool(json.loads(files[-1].read_text()))
    except (OSError, ValueError):
        return False


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    # Save the experiment state often (a kill must find the last results saved), but not at every
    # step: Ray rewrites the file in place, and a kill in the middle of a write leaves it empty,
    # which Ray answers by restarting the experiment from scratch.
    env["TUNE_GLOBAL_CHECKPOINT_S"] = "0.25"
    return env


def run_and_kill(command: list[str], log: Path, storage: Path) -> None:
    """Start the driver, and SIGKILL it (with the Ray processes it started) once five trials have
    started and one has finished, while Ray's experiment state file holds whole JSON."""
    driver = subprocess.Popen(
        command + ["run"], cwd=REPO, env=_env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and driver.poll() is None:
            entries = _read_log(log)
            started = {trial for trial, _, _ in entries}
            finished = {trial for trial, iteration, _ in entries if iteration == 9}
            if len(started) >= 5 and finished:
                break
            time.sleep(0.5)
        assert driver.poll() is None, "the experiment ended before it could be killed"
        time.sleep(1.0)  # let the experiment state be saved after the last result
        while time.monotonic() < deadline and not _state_is_whole(storage):
            time.sleep(0.05)  # not in the middle of a write (see _env)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        driver.wait()


@pytest.mark.slow
def test_restore_after_sigkill_continues_the_search(tmp_path) -> None:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    log = tmp_path / "progress.jsonl"
    storage = tmp_path / "results"
    command = [sys.executable, str(script), str(storage), str(log)]

    run_and_kill(command, log, storage)
    before = _read_log(log)
    finished_before = {trial: loss for trial, iteration, loss in before if iteration == 9}

    restored = subprocess.run(
        command + ["restore"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=400
    )
    summary_lines = [line for line in restored.stdout.splitlines() if line.startswith("SUMMARY ")]
    assert restored.returncode == 0 and summary_lines, restored.stderr[-3000:]
    summary = json.loads(summary_lines[-1][len("SUMMARY ") :])

    trials = summary["trials"]
    assert len(trials) == NUM_SAMPLES and not any(t["error"] for t in trials)
    configs = [(t["config"]["x"], t["config"]["n"]) for t in trials]
    assert len(set(configs)) == NUM_SAMPLES  # no configuration suggested twice
    by_id = {t["id"]: t for t in trials}
    for trial, loss in finished_before.items():  # finished results kept
        assert by_id[trial]["iteration"] == 9 and by_id[trial]["loss"] == pytest.approx(loss)
    # The rebuilt rung table holds every trial's rung-1 value, those finished before the kill too.
    assert summary["rung_counts"]["1"] == NUM_SAMPLES
    assert max(t["iteration"] for t in trials) == 9
