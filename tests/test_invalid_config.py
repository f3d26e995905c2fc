"""Invalid configurations fail at construction, with a message that names the problem.

Cases already pinned elsewhere (test_space, test_rungs, test_optuna_pruner, test_searcher,
test_tune_searcher) are not repeated.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from ray import tune

from mobster import Categorical, Float, Integer, InvalidSpaceError, ModelBasedSearcher, SearcherOptions, SearchSpace
from optuna_mobster import MobsterPruner, MobsterSampler
from tune_mobster import MobsterScheduler, MobsterSearcher

SPACE = SearchSpace({"x": Float(0.0, 1.0)})
RAY_SPACE = {"x": tune.uniform(0.0, 1.0)}


# ----- the core -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "domains, message",
    [
        ({"lr": Float(0.1, 0.2, step=0.0)}, "'lr'.*step must be positive"),
        ({"lr": Float(0.1, 0.2, step=-0.1)}, "'lr'.*step must be positive"),
        ({"n": Integer(1, 9, step=0)}, "'n'.*step must be positive"),
        ({"lr": Float(1e-3, 1.0, log=True, step=0.1)}, "'lr'.*log scale cannot be combined with step"),
        ({"n": Integer(5, 1)}, "'n'.*low=5 is greater than high=1"),
        ({"x": Float(math.nan, 1.0)}, "'x'.*finite"),
        ({"x": Float(0.0, -math.inf)}, "'x'.*finite"),
        ({"ok": Float(0.0, 1.0), "bad": Categorical(())}, "'bad'.*no choices"),
        ({"n": Integer(0, 8, log=True)}, "'n'.*log scale needs low > 0"),
    ],
)
def test_bad_spaces_name_the_parameter(domains, message):
    with pytest.raises(InvalidSpaceError, match=message):
        SearchSpace(domains)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_resource": 0}, "max_resource must be >= 1"),
        ({"max_resource": 9, "max_observations": 1}, "max_observations must be >= 2"),
        ({"max_resource": 9, "kernel": "exp-decay"}, "unknown kernel 'exp-decay'"),
    ],
)
def test_core_searcher_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelBasedSearcher(SPACE, **kwargs)


def test_core_searcher_rejects_zero_fantasies():
    with pytest.raises(ValueError, match="num_fantasies"):
        ModelBasedSearcher(SPACE, max_resource=9, num_fantasies=0)


# ----- Optuna ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"reduction_factor": 0.5}, "reduction_factor must be > 1"),
        ({"reduction_factor": math.nan}, "reduction_factor must be > 1"),
        ({"max_resource": "AUTO"}, "max_resource.*'AUTO'"),  # a typo of "auto"
        ({"max_resource": 0}, "max_resource.*>= 1"),
        ({"min_resource": 2.5}, "min_resource.*integer"),
        ({"brackets": 2.5}, "brackets must be an integer >= 1 or 'auto', got 2.5"),
        ({"brackets": "hyperband"}, "brackets must be an integer >= 1 or 'auto', got 'hyperband'"),
    ],
)
def test_pruner_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MobsterPruner(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kernel": "rbf"}, "unknown kernel 'rbf'; choose one of exp-decay-sum, exp-decay-combined, matern52"),
        ({"reduction_factor": 1}, "reduction_factor must be > 1"),
        ({"min_resource": 5, "max_resource": 3}, r"max_resource \(max_t\) = 3 is smaller than min_resource"),
        ({"min_resource": 0}, "min_resource"),
        ({"random_fraction": 1.5}, r"random_fraction must be in \[0, 1\], got 1.5"),
        ({"ei_jitter": -0.1}, "ei_jitter must be finite and >= 0, got -0.1"),
        ({"ei_jitter": math.nan}, "ei_jitter must be finite and >= 0, got nan"),
    ],
)
def test_sampler_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MobsterSampler(**kwargs)


def test_sampler_rejects_zero_max_resource():
    with pytest.raises(ValueError, match="max_resource"):
        MobsterSampler(max_resource=0)


def test_sampler_checks_core_arguments_at_construction():
    with pytest.raises(ValueError, match="max_observations must be >= 2"):
        MobsterSampler(max_observations=1)


# ----- Ray Tune -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"reduction_factor": 1}, "reduction_factor must be > 1"),
        ({"reduction_factor": 0.5}, "reduction_factor must be > 1"),
        ({"max_t": 3, "grace_period": 5}, r"max_resource \(max_t\) = 3 is smaller than min_resource \(grace_period\) = 5"),
        ({"grace_period": 0}, r"grace_period.*>= 1"),
        ({"max_t": 0}, r"max_t.*>= 1"),
        ({"type": "hyperband"}, "type must be 'stopping' or 'promotion', got 'hyperband'"),
        ({"mode": "maximize"}, "mode must be 'min' or 'max'"),
        ({"brackets": 0}, "brackets must be an integer >= 1 or 'auto', got 0"),
        ({"brackets": "Auto"}, "brackets must be an integer >= 1 or 'auto', got 'Auto'"),
    ],
)
def test_scheduler_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MobsterScheduler(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"reduction_factor": 1}, "reduction_factor must be > 1"),
        ({"max_t": 3, "grace_period": 5}, r"max_resource \(max_t\) = 3 is smaller than min_resource"),
        ({"mode": "maximize"}, "mode must be 'min' or 'max'"),
        ({"metric": ["loss", "acc"]}, "single metric"),
        ({"random_fraction": -0.1}, r"random_fraction must be in \[0, 1\], got -0.1"),
    ],
)
def test_searcher_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MobsterSearcher(space=RAY_SPACE, **kwargs)


def test_searcher_rejects_an_unknown_kernel_at_construction():
    with pytest.raises(ValueError, match="unknown kernel 'rbf'"):
        MobsterSearcher("loss", "min", space=RAY_SPACE, kernel="rbf")


def test_searcher_checks_core_arguments_at_construction():
    with pytest.raises(ValueError, match="max_observations must be >= 2"):
        MobsterSearcher("loss", "min", space=RAY_SPACE, max_observations=1)


def _pair(searcher: MobsterSearcher, scheduler: MobsterScheduler) -> None:
    """What Ray does when the first trial arrives: the scheduler meets the searcher."""
    controller = SimpleNamespace(search_alg=searcher, get_trials=lambda: [])
    trial = SimpleNamespace(trial_id="t0", status="PENDING", last_result={})
    scheduler.on_trial_add(controller, trial)


def test_matching_searcher_and_scheduler_pair_up():
    searcher = MobsterSearcher("loss", "min", space=RAY_SPACE)
    scheduler = MobsterScheduler(metric="loss", mode="min", max_t=9)
    _pair(searcher, scheduler)
    assert searcher.rung_levels == scheduler.rung_levels == [1, 3, 9]


@pytest.mark.parametrize(
    "searcher_args, scheduler_args",
    [(("loss", "min"), ("loss", "max")), (("loss", "min"), ("accuracy", "min"))],
)
def test_metric_or_mode_mismatch_between_searcher_and_scheduler_is_an_error(searcher_args, scheduler_args):
    # Both are known when the scheduler links to the searcher at the first trial, the earliest
    # point to fail.
    searcher = MobsterSearcher(*searcher_args, space=RAY_SPACE)
    scheduler = MobsterScheduler(metric=scheduler_args[0], mode=scheduler_args[1], max_t=9)
    with pytest.raises(ValueError, match="metric|mode"):
        _pair(searcher, scheduler)


def test_searcher_options_are_one_value_both_plugins_pass_on_whole() -> None:
    options = SearcherOptions(kernel="matern52", ei_jitter=0.01, warp_outputs=False, cost_aware=False)
    sampler = MobsterSampler(options=options, num_initial_random=3)  # a keyword overrides a field
    assert sampler._options == SearcherOptions(
        kernel="matern52", ei_jitter=0.01, warp_outputs=False, cost_aware=False, num_initial_random=3
    )
    searcher = MobsterSearcher(metric="loss", mode="min", options=options, space={"x": tune.uniform(0, 1)})
    assert searcher._core_searcher().options == options  # the Ray searcher hands it to the core whole
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) 'kernal'.*options are cost_aware"):
        MobsterSampler(kernal="matern52")
    with pytest.raises(ValueError, match="ei_jitter must be finite and >= 0"):
        MobsterSearcher(ei_jitter=-1.0)
