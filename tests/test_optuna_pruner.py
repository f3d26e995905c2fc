"""MobsterPruner: the rung rule recomputed from storage, brackets, and consistency across studies."""

import math

import optuna
import pytest
from optuna.trial import TrialState

from optuna_mobster import MobsterPruner

optuna.logging.set_verbosity(optuna.logging.WARNING)


def run_trial(study: optuna.Study, values: dict[int, float]) -> bool:
    """Report ``values`` step by step until pruned; returns whether the trial was pruned."""
    trial = study.ask()
    for step, value in sorted(values.items()):
        trial.report(value, step)
        if trial.should_prune():
            study.tell(trial, state=TrialState.PRUNED)
            return True
    study.tell(trial, list(values.values())[-1])
    return False


def test_stopping_rule_matches_hand_computed_rungs():
    study = optuna.create_study(pruner=MobsterPruner(min_resource=1, max_resource=9, reduction_factor=3))
    assert study.pruner.levels(study) == [1, 3, 9]
    assert not run_trial(study, {1: 0.5, 2: 0.5, 3: 0.4, 9: 0.3})  # first at every rung
    assert run_trial(study, {1: 0.7})  # rung 1: [0.5, 0.7] -> threshold 0.567
    assert not run_trial(study, {1: 0.2, 3: 0.35, 9: 0.1})  # rung 1 best; rung 3: [0.4, 0.35]
    # rung 1: sorted [.2, .3, .5, .7], 1/3 quantile .3 -> continues; rung 3: [.4, .35, .45],
    # quantile .383 -> pruned at 3.
    assert run_trial(study, {1: 0.3, 3: 0.45})
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE, TrialState.PRUNED]
    assert study.trials[3].last_step == 3


def test_reports_between_rungs_fill_the_rung_they_passed():
    study = optuna.create_study(pruner=MobsterPruner(max_resource=9))
    assert not run_trial(study, {2: 0.5, 4: 0.4, 9: 0.3})  # 2 stands for rung 1, 4 for rung 3
    assert run_trial(study, {2: 0.9})
    assert study.trials[1].last_step == 2


def test_maximize_keeps_the_largest_values():
    study = optuna.create_study(direction="maximize", pruner=MobsterPruner(max_resource=3))
    assert not run_trial(study, {1: 0.5, 3: 0.6})
    assert run_trial(study, {1: 0.1})
    assert not run_trial(study, {1: 0.9, 3: 0.95})


def test_auto_max_resource_is_the_first_finished_trials_last_step():
    study = optuna.create_study(pruner=MobsterPruner())
    assert study.pruner.known_max_resource(study) is None
    run_trial(study, {1: 1.0, 2: 0.9, 3: 0.8, 4: 0.7, 5: 0.6})
    assert study.pruner.levels(study) == [1, 3, 5]


def test_non_finite_value_is_pruned_with_a_warning_naming_the_trial():
    study = optuna.create_study(pruner=MobsterPruner(max_resource=9))
    run_trial(study, {1: 0.5, 3: 0.4, 9: 0.3})
    with pytest.warns(UserWarning, match="trial 1 reported nan"):
        assert run_trial(study, {1: math.nan})


def test_brackets_are_shared_consistently_and_follow_hyperband():
    pruner = MobsterPruner(max_resource=27, brackets=3)
    study = optuna.create_study(study_name="brackets", pruner=pruner)
    brackets = [pruner.bracket(study, n) for n in range(600)]
    assert brackets == [MobsterPruner(max_resource=27, brackets=3).bracket(study, n) for n in range(600)]
    counts = [brackets.count(b) for b in range(3)]
    assert counts[0] > counts[1] > counts[2] > 0
    late = brackets.index(2)
    assert pruner.trial_levels(study, late) == [9, 27]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"reduction_factor": 1}, "reduction_factor must be > 1"),
        ({"min_resource": 5, "max_resource": 3}, "smaller than min_resource"),
        ({"min_resource": 0}, "min_resource"),
        ({"brackets": 0}, "brackets"),
    ],
)
def test_invalid_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MobsterPruner(**kwargs)
