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
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
NUM_SAMPLES = 8

#: The experiment's script (``single`` or ``multi`` objectives); see its docstring.
DRIVER = Path(__file__).resolve().parent / "tune_restore_driver.py"


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


def kill_and_restore(kind: str, tmp_path: Path) -> tuple[list[tuple[str, int, float]], dict[str, Any]]:
    """Run the driver with ``kind`` objectives until :func:`run_and_kill` kills it, then restore the
    experiment in a fresh process: the progress log as the kill left it, and the restored run's
    ``SUMMARY`` (asserting that the restore ran to its end)."""
    log = tmp_path / "progress.jsonl"
    storage = tmp_path / "results"
    command = [sys.executable, str(DRIVER), kind, str(NUM_SAMPLES), str(storage), str(log)]

    run_and_kill(command, log, storage)
    before = _read_log(log)

    restored = subprocess.run(
        command + ["restore"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=400
    )
    summary_lines = [line for line in restored.stdout.splitlines() if line.startswith("SUMMARY ")]
    assert restored.returncode == 0 and summary_lines, restored.stderr[-3000:]
    return before, json.loads(summary_lines[-1][len("SUMMARY ") :])


@pytest.mark.slow
def test_restore_after_sigkill_continues_the_search(tmp_path) -> None:
    before, summary = kill_and_restore("single", tmp_path)
    finished_before = {trial: loss for trial, iteration, loss in before if iteration == 9}

    trials = summary["trials"]
    assert len(trials) == NUM_SAMPLES and not any(t["failed"] for t in trials)
    configs = [(t["config"]["x"], t["config"]["n"]) for t in trials]
    assert len(set(configs)) == NUM_SAMPLES  # no configuration suggested twice
    by_id = {t["id"]: t for t in trials}
    for trial, loss in finished_before.items():  # finished results kept
        assert by_id[trial]["iteration"] == 9 and by_id[trial]["loss"] == pytest.approx(loss)
    # The rebuilt rung table holds every trial's rung-1 value, those finished before the kill too.
    assert len(summary["rungs"]["1"]) == NUM_SAMPLES
    assert max(t["iteration"] for t in trials) == 9
