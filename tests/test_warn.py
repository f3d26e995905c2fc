"""Quiet output: the shared finite check and warn-once rule (and the Ray objects' pickled
warn-once state), no warnings from dependencies that a user cannot act on."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from ray import tune

from mobster import Float, SearchSpace
from mobster.optimize import maximize_acquisition
from mobster.warn import is_finite, warn_once
from tune_mobster import MobsterScheduler, MobsterSearcher

REPO = Path(__file__).resolve().parents[1]


def test_is_finite_accepts_real_numbers_only() -> None:
    assert all(is_finite(v) for v in (0, 1.5, -2, np.float32(0.25), np.float64(3.0), np.int64(2)))
    assert not any(is_finite(v) for v in (math.nan, math.inf, -math.inf, np.float32("nan"), None, True, "1", [1.0]))


def test_warn_once_warns_once_per_key() -> None:
    warned: set = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for key in ("a", "a", "b", "a"):
            warn_once(warned, key, f"trial {key} went wrong", RuntimeWarning, stacklevel=1)
    assert [(str(w.message), w.category) for w in caught] == [
        ("trial a went wrong", RuntimeWarning),
        ("trial b went wrong", RuntimeWarning),
    ]
    assert caught[0].filename == __file__  # stacklevel=1: the line calling warn_once
    assert warned == {"a", "b"}


def _quiet(call) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught]


def test_a_searcher_saved_with_a_nan_warned_set_restores_and_keeps_it(tmp_path) -> None:
    searcher = MobsterSearcher("loss", "min", space={"x": tune.uniform(0.0, 1.0)}, seed=0)
    for trial_id in ("t0", "t1"):
        searcher.suggest(trial_id)
    assert len(_quiet(lambda: searcher.on_trial_result("t0", {"training_iteration": 1, "loss": math.nan}))) == 1
    path = tmp_path / "searcher.pkl"
    searcher.save(str(path))
    state = pickle.loads(path.read_bytes())
    assert state["_nan_warned"] == {"t0"}  # a plain set, as earlier versions saved it

    restored = MobsterSearcher()
    restored.restore(str(path))
    assert _quiet(lambda: restored.on_trial_result("t0", {"training_iteration": 2, "loss": math.inf})) == []
    (message,) = _quiet(lambda: restored.on_trial_result("t1", {"training_iteration": 1, "loss": math.nan}))
    assert message.startswith("MobsterSearcher: trial t1 reported loss=nan")


def test_a_scheduler_pickled_with_a_nan_warned_set_restores_and_keeps_it() -> None:
    old = MobsterScheduler(metric="loss", mode="min")
    old._nan_warned = {"t0"}  # what an earlier version's pickle holds
    restored = pickle.loads(pickle.dumps(old))
    assert _quiet(lambda: restored._minimised("t0", {"loss": math.nan})) == []
    (message,) = _quiet(lambda: restored._minimised("t1", {"loss": math.nan}))
    assert message.startswith("MobsterScheduler: trial t1 reported loss=nan")
    assert restored._minimised("t2", {"loss": np.float32(0.5)}) == 0.5  # a numpy scalar is a number


def test_importing_the_library_shows_no_torch_jit_deprecation() -> None:
    # A fresh interpreter: in this one gpytorch is imported already. The warning would be an error.
    command = [sys.executable, "-W", "error:`torch.jit.script` is deprecated:DeprecationWarning", "-c",
               "import torch, mobster, optuna_mobster, tune_mobster"]  # fmt: skip
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]


def test_an_abnormal_lbfgs_stop_in_the_acquisition_optimiser_is_not_reported() -> None:
    # Imported here, after mobster: importing BoTorch first would show the torch.jit warning.
    from botorch.acquisition import AcquisitionFunction
    from botorch.exceptions.warnings import OptimizationWarning
    from botorch.generation.gen import gen_candidates_scipy

    class Misleading(AcquisitionFunction):
        """Its gradient does not match its values, so L-BFGS-B's line search stops ABNORMAL."""

        def __init__(self) -> None:
            super().__init__(model=None)

        def forward(self, X: torch.Tensor) -> torch.Tensor:
            x = X[..., 0, :]
            value = -((x - 0.3) ** 2).sum(-1)
            return value.detach() + (x - x.detach()).sum(-1)  # the gradient is that of sum(x)

    space = SearchSpace({"x": Float(0.0, 1.0), "y": Float(0.0, 1.0)})
    start = torch.full((1, 1, 2), 0.5, dtype=torch.float64)
    with pytest.warns(OptimizationWarning, match="ABNORMAL"):  # the case does stop ABNORMAL
        gen_candidates_scipy(start, Misleading(), lower_bounds=0.0, upper_bounds=1.0)

    def nothing_excluded(units: np.ndarray):
        return np.zeros(len(units), bool) if np.ndim(units) == 2 else False

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        unit = maximize_acquisition(
            Misleading(), space, nothing_excluded, np.random.default_rng(0), {"dtype": torch.float64}
        )
    assert [str(w.message) for w in caught] == []
    assert unit.shape == (2,) and np.all((0.0 <= unit) & (unit <= 1.0))  # its best point is still used
