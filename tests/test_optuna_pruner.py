"""MobsterPruner: the rung rule recomputed from storage, brackets, and consistency across studies."""

import math
import warnings

import optuna
import pytest
from optuna.trial import TrialState

from mobster import rungs
from optuna_mobster import MobsterPruner
from optuna_mobster.pruner import BRACKET_KEY

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


def test_auto_max_resource_is_read_from_storage_once_and_then_kept():
    storage = _CountingStorage()
    study = optuna.create_study(storage=storage, pruner=MobsterPruner())
    run_trial(study, {1: 1.0, 3: 0.8, 5: 0.6})
    trial = study.ask()
    trial.report(0.5, 1)
    assert not trial.should_prune()  # rung 1: reads the finished trial, then the rung
    trial.report(0.45, 2)
    storage.trial_reads = 0
    assert not trial.should_prune()  # step 2 is past rung 1 and short of rung 3: no rung to judge
    assert storage.trial_reads == 0  # the inferred maximum is kept, not read again per report
    study.tell(trial, 0.45)  # finishes at step 2; the first finished trial still sets the rungs
    assert study.pruner.levels(study) == [1, 3, 5]


def test_non_finite_value_is_pruned_with_a_warning_naming_the_trial():
    study = optuna.create_study(pruner=MobsterPruner(max_resource=9))
    run_trial(study, {1: 0.5, 3: 0.4, 9: 0.3})
    with pytest.warns(UserWarning, match="trial 1 reported nan"):
        assert run_trial(study, {1: math.nan})


def test_steps_no_rung_can_use_warn_once_each_naming_the_trial():
    study = optuna.create_study(pruner=MobsterPruner(max_resource=9))
    with pytest.warns(UserWarning, match="trial 0 reported at step 0, below min_resource=1") as caught:
        run_trial(study, {0: 0.9, 1: 0.5, 3: 0.4, 9: 0.3})
        run_trial(study, {0: 0.8, 1: 0.6})  # the same mistake again: no second warning
    assert len([w for w in caught if "below min_resource" in str(w.message)]) == 1
    with pytest.warns(UserWarning, match=r"trial 2 reported at step 12, above max_resource=9 \(given\)"):
        run_trial(study, {1: 0.4, 12: 0.2})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # steps inside [min_resource, max_resource] say nothing
        run_trial(study, {1: 0.3, 2: 0.3, 3: 0.2, 9: 0.1})


def test_brackets_are_shared_consistently_and_follow_hyperband():
    pruner = MobsterPruner(max_resource=27, brackets=3)
    study = optuna.create_study(study_name="brackets", pruner=pruner)
    brackets = [pruner.bracket(study, n) for n in range(600)]
    assert brackets == [MobsterPruner(max_resource=27, brackets=3).bracket(study, n) for n in range(600)]
    counts = [brackets.count(b) for b in range(3)]
    assert counts[0] > counts[1] > counts[2] > 0
    late = brackets.index(2)
    assert pruner.trial_levels(study, late) == [9, 27]


def _bracket_zero_trial(study: optuna.Study, value_at_one: float, brackets: list[int]) -> optuna.Trial:
    """Asks trials that report ``value_at_one`` at step 1 until one gets bracket 0 (the others
    are pruned); appends every bracket given to ``brackets``."""
    while True:
        trial = study.ask()
        trial.report(value_at_one, 1)
        pruned = trial.should_prune()  # the first report gives the trial its bracket
        brackets.append(study.trials[-1].system_attrs[BRACKET_KEY])
        if brackets[-1] == 0 and not pruned:
            return trial
        study.tell(trial, state=TrialState.PRUNED)


def _auto_bracket_study(
    name: str, same_ranking: bool, direction: str = "minimize"
) -> tuple[optuna.Study, MobsterPruner, list[int]]:
    """A study under ``brackets="auto"`` with twice AUTO_MIN_PAIRS poor bracket-0 trials at rung
    1, then AUTO_MIN_PAIRS that each lead rung 1 (so they go on) and rank at rung 3 in the same
    order or in the reverse order (values negated when maximising). Also returns the brackets
    given while it was built."""
    sign = -1.0 if direction == "maximize" else 1.0
    pruner = MobsterPruner(max_resource=81, brackets="auto")
    study = optuna.create_study(study_name=name, pruner=pruner, direction=direction)
    given: list[int] = []
    for _ in range(2 * rungs.AUTO_MIN_PAIRS):
        trial = _bracket_zero_trial(study, sign * 2.0, given)
        study.tell(trial, sign * 2.0)
    for k in range(rungs.AUTO_MIN_PAIRS):
        trial = _bracket_zero_trial(study, sign * (1.0 - 0.01 * k), given)
        trial.report(sign * (0.5 - 0.01 * k if same_ranking else 0.5 + 0.01 * k), 3)
        study.tell(trial, state=TrialState.PRUNED)  # its pair counts all the same
    return study, pruner, given


def _brackets_of_new_trials(study: optuna.Study, count: int) -> list[int]:
    worst = 3.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -3.0
    brackets = []
    for _ in range(count):
        trial = study.ask()
        trial.report(worst, 1)  # worse than all: the first rung's top third stays as it was
        trial.should_prune()
        study.tell(trial, state=TrialState.PRUNED)
        brackets.append(study.trials[-1].system_attrs[BRACKET_KEY])
    return brackets


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_auto_brackets_sample_several_until_the_first_rung_ranks_as_the_second(direction):
    study, pruner, early = _auto_bracket_study("auto-consistent", same_ranking=True, direction=direction)
    assert set(early) == {0, 1, 2}  # before the evidence: Hyperband's first three brackets
    assert _brackets_of_new_trials(study, 30) == [0] * 30
    # Another process sharing the storage reads the brackets given, whatever it would sample now.
    other = MobsterPruner(max_resource=81, brackets="auto")
    trials = study.get_trials(deepcopy=False)
    assert [other.bracket(study, t) for t in trials] == [pruner.bracket(study, t.number) for t in trials]
    late = next(t for t in trials if t.system_attrs[BRACKET_KEY] == 2)
    assert other.trial_levels(study, late) == [9, 27, 81]


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_auto_brackets_stay_several_while_the_rungs_rank_unlike(direction):
    study, _, _ = _auto_bracket_study("auto-reversed", same_ranking=False, direction=direction)
    later = _brackets_of_new_trials(study, 30)
    assert set(later) == {0, 1, 2}


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


class _CountingStorage(optuna.storages.InMemoryStorage):
    """Real in-memory storage that counts reads of the study's trials (a query each on a database)."""

    def __init__(self) -> None:
        super().__init__()
        self.trial_reads = 0

    def get_all_trials(self, *args, **kwargs):
        self.trial_reads += 1
        return super().get_all_trials(*args, **kwargs)


def _late_bloomer_study(rescue: bool | None, storage: optuna.storages.BaseStorage | None = None) -> optuna.Study:
    """Nine finished trials whose curves cross (large x: worst at step 1, best at step 9)."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from optuna_mobster import MobsterSampler

    pruner = MobsterPruner(min_resource=1, max_resource=9, reduction_factor=3, rescue_by_model=rescue)
    sampler = MobsterSampler(seed=0, num_initial_random=4, random_fraction=0.0)
    study = optuna.create_study(storage=storage, sampler=sampler, pruner=pruner)
    for k in range(9):
        x = 0.05 + 0.1 * k
        curve = {r: x * (1 - r / 9) + (1 - x) * r / 9 for r in (1, 3, 9)}
        study.add_trial(
            create_trial(
                params={"x": x},
                distributions={"x": FloatDistribution(0.0, 1.0)},
                intermediate_values=curve,
                value=curve[9],
            )
        )
    # One model-based suggestion: the pruner's rescue answers from that model, never fitting one.
    probe = study.ask()
    probe.suggest_float("x", 0.0, 1.0)
    study.tell(probe, state=optuna.trial.TrialState.FAIL)
    return study


@pytest.mark.parametrize("rescue", [False, True, None])  # None: the default, on with a MobsterSampler
def test_rescue_by_model_keeps_a_trial_the_model_expects_to_finish_best(rescue):
    study = _late_bloomer_study(rescue)
    study.enqueue_trial({"x": 0.95})
    trial = study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    trial.report(x * (1 - 1 / 9) + (1 - x) / 9, 1)  # the worst value at rung 1 so far
    assert trial.should_prune() is (rescue is False)


def test_a_stop_decision_the_model_rescues_reads_the_trials_once():
    storage = _CountingStorage()
    study = _late_bloomer_study(None, storage)
    study.enqueue_trial({"x": 0.95})
    trial = study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    trial.report(x * (1 - 1 / 9) + (1 - x) / 9, 1)
    storage.trial_reads = 0
    assert not trial.should_prune()  # rescued: the rule and the model both looked at the trials
    assert storage.trial_reads == 1


def test_default_pruner_with_another_sampler_is_plain_asha_without_a_warning():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), pruner=MobsterPruner(max_resource=9))
    assert not run_trial(study, {1: 0.5, 3: 0.4, 9: 0.3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "needs a MobsterSampler" warning: nobody asked for it
        assert run_trial(study, {1: 0.9})


def test_rescue_by_model_without_a_mobster_sampler_warns_and_prunes():
    pruner = MobsterPruner(min_resource=1, max_resource=9, rescue_by_model=True)
    study = optuna.create_study(pruner=pruner)
    assert not run_trial(study, {1: 0.5, 3: 0.4, 9: 0.3})
    with pytest.warns(UserWarning, match="rescue_by_model needs a MobsterSampler"):
        assert run_trial(study, {1: 0.9})
