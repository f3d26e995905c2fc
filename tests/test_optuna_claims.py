"""The claim protocol that keeps trials sampled at the same moment off one configuration."""

import optuna
import pytest

from optuna_mobster import MobsterPruner, MobsterSampler
from optuna_mobster import _claims as claims
from optuna_objectives import objective

optuna.logging.set_verbosity(optuna.logging.WARNING)

CONFIG = {"x": 0.0, "kind": "a"}
OTHER = {"x": 0.5, "kind": "b"}


def equal_to_one(config, others) -> bool:
    return config in others


@pytest.fixture
def three_asked_trials():
    """A study with trials 0, 1, 2 asked and nothing suggested yet."""
    study = optuna.create_study()
    for _ in range(3):
        study.ask()
    return study, study.get_trials()


def claim(study, trial, config):
    study._storage.set_trial_system_attr(trial._trial_id, claims.CLAIM_KEY, {"config": config})


def test_an_uncontested_claim_stands(three_asked_trials):
    study, (first, middle, last) = three_asked_trials
    claim(study, first, OTHER)
    assert claims.stake(study, middle, CONFIG, equal_to_one) == (True, [OTHER])
    stored = study.get_trials()[middle.number].system_attrs[claims.CLAIM_KEY]
    assert stored == {"config": CONFIG}


@pytest.mark.parametrize("rival", ["first", "last"])
def test_a_rival_claim_on_the_configuration_makes_the_sampler_give_way_whatever_its_number(three_asked_trials, rival):
    study, (first, middle, last) = three_asked_trials
    claim(study, {"first": first, "last": last}[rival], CONFIG)
    assert claims.stake(study, middle, CONFIG, equal_to_one) == (False, [CONFIG])
    assert claims.stake(study, middle, OTHER, equal_to_one)[0]


def test_of_two_trials_staking_one_configuration_the_second_to_write_gives_way(three_asked_trials):
    study, (first, middle, last) = three_asked_trials
    assert claims.stake(study, last, CONFIG, equal_to_one)[0]  # wrote first, saw no rival
    assert not claims.stake(study, middle, CONFIG, equal_to_one)[0]  # wrote second: sees it


def test_a_pruned_rival_with_these_params_wins(three_asked_trials):
    study, (first, middle, last) = three_asked_trials
    distributions = {
        "x": optuna.distributions.FloatDistribution(0.0, 1.0),
        "kind": optuna.distributions.CategoricalDistribution(["a", "b"]),
    }
    study.add_trial(
        optuna.trial.create_trial(params=CONFIG, distributions=distributions, state=optuna.trial.TrialState.PRUNED)
    )
    assert not claims.stake(study, middle, CONFIG, equal_to_one)[0]
    assert claims.stake(study, middle, OTHER, equal_to_one)[0]


def test_sampler_claims_before_the_objective_suggests_and_models_the_claim_as_pending():
    study = optuna.create_study(sampler=MobsterSampler(seed=0, num_initial_random=3), pruner=MobsterPruner(max_resource=9))
    study.optimize(lambda t: objective(t, max_step=9), n_trials=4)
    first, second = study.ask(), study.ask()
    # Both sample before either stores params, as two processes at the same moment would.
    first_config, second_config = first.relative_params, second.relative_params
    stored = study.get_trials()[first.number].system_attrs[claims.CLAIM_KEY]
    assert stored == {"config": first_config}
    assert first_config and second_config and first_config != second_config


def test_a_sampler_that_gives_way_claims_the_runner_up_without_sampling_again(monkeypatch):
    """A rival that took the same configuration in the same moment (made here by a rival claim
    seen on the first stake only): the sampler claims the acquisition's runner-up, computed by the
    same optimisation, and does not run the model a second time."""
    from mobster.searcher import ModelBasedSearcher

    study = optuna.create_study(sampler=MobsterSampler(seed=0, num_initial_random=3), pruner=MobsterPruner(max_resource=9))
    study.optimize(lambda t: objective(t, max_step=9), n_trials=6)
    ranked_calls, suggest_calls = [], []
    original_ranked, original_suggest = ModelBasedSearcher.suggest_ranked, ModelBasedSearcher.suggest
    monkeypatch.setattr(
        ModelBasedSearcher, "suggest_ranked", lambda self, *a, **k: ranked_calls.append(original_ranked(self, *a, **k)) or ranked_calls[-1]
    )
    monkeypatch.setattr(ModelBasedSearcher, "suggest", lambda self, *a, **k: suggest_calls.append(1) or original_suggest(self, *a, **k))
    original_rivals = claims._rival_configs
    stakes = []

    def rivals_holding_the_first_choice(study, trial):
        stakes.append(1)
        rivals = original_rivals(study, trial)
        # On the first stake only, a rival trial holds exactly this trial's first choice.
        return rivals + [dict(ranked_calls[-1][0])] if len(stakes) == 1 else rivals

    monkeypatch.setattr(claims, "_rival_configs", rivals_holding_the_first_choice)
    for _ in range(10):  # until a model-based suggestion (a third of them are random)
        stakes.clear()
        suggest_calls.clear()
        trial = study.ask()
        config = trial.relative_params
        if len(ranked_calls[-1]) > 1:
            break
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    ranked = ranked_calls[-1]
    assert len(ranked) > 1, "no model-based suggestion in 10 trials"
    assert config == ranked[1] != ranked[0]
    assert len(stakes) == 2 and suggest_calls == []
    assert study.get_trials()[trial.number].system_attrs[claims.CLAIM_KEY] == {"config": ranked[1]}
