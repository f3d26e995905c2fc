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


def claim(study, trial, config, final):
    claims._write(study, trial, config, final=final)


def test_an_uncontested_claim_stands_and_becomes_final(three_asked_trials):
    study, (first, middle, last) = three_asked_trials
    claim(study, first, OTHER, final=True)
    assert claims.stake(study, middle, CONFIG, equal_to_one)
    stored = study.get_trials()[middle.number].system_attrs[claims.CLAIM_KEY]
    assert stored == {"config": CONFIG, "final": True}


@pytest.mark.parametrize(
    ("rival", "final", "middle_keeps"),
    [
        ("first", False, False),  # a lower number wins a tie between tentative claims
        ("first", True, False),
        ("last", False, True),  # a higher-numbered tentative claim gives way to ours
        ("last", True, False),  # a final claim wins whatever its number
    ],
)
def test_rival_claims(three_asked_trials, rival, final, middle_keeps):
    study, (first, middle, last) = three_asked_trials
    claim(study, {"first": first, "last": last}[rival], CONFIG, final=final)
    assert claims.stake(study, middle, CONFIG, equal_to_one) is middle_keeps


def test_a_pruned_rival_with_these_params_wins(three_asked_trials):
    study, (first, middle, last) = three_asked_trials
    distributions = {
        "x": optuna.distributions.FloatDistribution(0.0, 1.0),
        "kind": optuna.distributions.CategoricalDistribution(["a", "b"]),
    }
    study.add_trial(
        optuna.trial.create_trial(params=CONFIG, distributions=distributions, state=optuna.trial.TrialState.PRUNED)
    )
    assert not claims.stake(study, middle, CONFIG, equal_to_one)
    assert claims.stake(study, middle, OTHER, equal_to_one)


def test_sampler_claims_before_the_objective_suggests_and_models_the_claim_as_pending():
    study = optuna.create_study(sampler=MobsterSampler(seed=0, num_initial_random=3), pruner=MobsterPruner(max_resource=9))
    study.optimize(lambda t: objective(t, max_step=9), n_trials=4)
    first, second = study.ask(), study.ask()
    # Both sample before either stores params, as two processes at the same moment would.
    first_config, second_config = first.relative_params, second.relative_params
    stored = study.get_trials()[first.number].system_attrs[claims.CLAIM_KEY]
    assert stored == {"config": first_config, "final": True}
    assert first_config and second_config and first_config != second_config
