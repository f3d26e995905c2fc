"""The demos in ``examples/``: the model family on its own, then shortened end-to-end runs.

The end-to-end tests run each demo script as a newcomer would (a subprocess, from the command line)
with few trials and epochs, then check its ``summary.json`` and figures.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch

from examples.nas_model import SPACE, Trainer, TrialConfig, ray_param_space, suggest_config

REPO_ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SMALL_CONFIG = {
    "n_layers": 2, "width_1": 48, "width_2": 24, "activation": "gelu", "residual": True, "norm": "batch",
    "dropout": 0.2, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "lr_schedule": "step",
    "weight_decay": 1e-4, "batch_size": 64, "label_smoothing": 0.1,
}


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # The tests share few cores with other processes; intra-op threads then slow training down a lot.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_resuming_from_a_checkpoint_reproduces_the_uninterrupted_curve() -> None:
    config = TrialConfig.from_params(SMALL_CONFIG)
    uninterrupted = Trainer(config, max_epochs=6, seed=7)
    expected = [uninterrupted.train_one_epoch() for _ in range(6)]

    first = Trainer(config, max_epochs=6, seed=7)
    curve = [first.train_one_epoch() for _ in range(2)]
    resumed = Trainer(config, max_epochs=6, seed=123)  # another seed: everything must come from the state
    resumed.load_state_dict(first.state_dict())
    while not resumed.finished:
        curve.append(resumed.train_one_epoch())

    assert curve == expected
    assert expected[-1] < 0.5  # it does learn the digits


def test_widths_and_momentum_are_suggested_only_when_active() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        config = suggest_config(trial)
        n_layers = trial.params["n_layers"]
        assert len(config.widths) == n_layers
        assert {f"width_{i}" for i in range(1, 5)} & trial.params.keys() == {f"width_{i}" for i in range(1, n_layers + 1)}
        assert ("momentum" in trial.params) == (trial.params["optimizer"] == "sgd")
        study.tell(trial, 0.5)


def test_ray_space_has_every_parameter_and_builds_models() -> None:
    space = ray_param_space()
    assert list(space) == [param.name for param in SPACE] and len(space) >= 10
    params = {name: domain.sample() for name, domain in space.items()}
    model = Trainer(TrialConfig.from_params(params), max_epochs=1).model
    assert model(torch.zeros(4, 64)).shape == (4, 10)


def test_ray_demo_counts_every_trial_ray_created(tmp_path: Path) -> None:
    # Ray's own results (not a run: a trial the time budget ends before it starts is a race) of a
    # trial that finished, one that raised, and one that never started (no result files).
    import pandas as pd
    from ray.tune import Result

    from examples.demo_ray import trial_records
    from examples.reporting import summarise

    curve = pd.DataFrame({"epoch": [1, 2, 3], "val_error": [0.5, 0.3, 0.2], "wall_time": [1.0, 2.0, 3.0]})
    results = [
        Result({"config": SMALL_CONFIG, "trial_id": "done"}, None, None, str(tmp_path / "done"), curve),
        Result({"config": SMALL_CONFIG}, None, RuntimeError("broke"), str(tmp_path / "broke"), pd.DataFrame()),
        Result({"config": SMALL_CONFIG}, None, None, str(tmp_path / "unstarted"), pd.DataFrame()),
    ]
    summary = summarise("demo", trial_records(results, start_time=0.0), [1, 3], 3.0, [])
    assert (summary.n_trials, summary.n_failed, summary.n_unreported, summary.n_completed) == (3, 1, 1, 1)
    assert "trials                3 (1 failed, 1 ended by the time limit before reporting)" in summary.text()


def run_demo(script: str, out: Path, *args: str) -> tuple[dict, str]:
    """Run ``examples/<script>`` in a fresh interpreter; return its summary and its output."""
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / script), "--out", str(out), *args],
        capture_output=True, text=True, timeout=300, cwd=out,  # any working directory must do
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    assert "summary" in completed.stdout
    return json.loads((out / "mobster" / "summary.json").read_text()), completed.stdout + completed.stderr


def assert_finished_with_rung_decisions(summary: dict, n_trials: int) -> None:
    assert summary["n_trials"] == n_trials
    assert summary["n_failed"] == 0
    assert summary["n_stopped"] > 0, "no trial was stopped at a rung"
    assert summary["n_promotions"] > 0, "no trial was promoted past a rung"
    assert 0.0 <= summary["best_error"] < 0.9
    for figure in summary["figures"]:
        assert Path(figure).read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_optuna_demo_short_run(tmp_path: Path) -> None:
    summary, _ = run_demo("demo_optuna.py", tmp_path, "--trials", "10", "--epochs", "3", "--workers", "2")
    assert_finished_with_rung_decisions(summary, n_trials=10)
    assert (tmp_path / "optuna.db").is_file()
    # One "best": the summary's is Optuna's own (a completed trial's value at the full resource).
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    (name,) = optuna.get_all_study_names(storage)
    study = optuna.load_study(study_name=name, storage=storage)
    assert summary["best_error"] == pytest.approx(study.best_value)
    assert summary["best_trial"] == str(study.best_trial.number)
    assert summary["best_epoch"] == 3


@pytest.mark.slow
def test_ray_demo_short_run(tmp_path: Path) -> None:
    summary, output = run_demo("demo_ray.py", tmp_path, "--trials", "6", "--epochs", "3", "--workers", "2")
    assert_finished_with_rung_decisions(summary, n_trials=6)
    # A short log by default (Ray's own tables and boxes ran to thousands of lines), without the
    # workers' per-epoch checkpoint lines; its last status line gives Ray's counts, the summary's.
    assert len(output.splitlines()) < 80, output
    assert "Checkpoint successfully created" not in output and "from checkpoint" not in output
    status = [line for line in output.splitlines() if "Trial status:" in line][-1]
    assert sum(int(n) for n in re.findall(r"(\d+) [A-Z]+", status)) == summary["n_trials"]


@pytest.mark.slow
def test_multiobjective_demo_short_run(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "demo_multiobjective.py"), "--out", str(tmp_path),
         "--trials", "12", "--epochs", "3", "--workers", "2"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["methods"]) == {"mobster", "mo-asha"}
    for run in summary["methods"].values():
        assert run["trials"] == 12 and run["failed"] == 0
        assert run["pruned"] > 0, "no trial was stopped at a rung"
        front = [tuple(point) for point in run["front"]]
        assert front and 0.0 < run["hypervolume"] <= 1.0
        # The front is non-dominated: errors rise while sizes fall.
        assert all(a[0] <= b[0] and a[1] >= b[1] for a, b in zip(front, front[1:]))
    assert (tmp_path / "front_over_time.png").read_bytes()[:8] == PNG_MAGIC
