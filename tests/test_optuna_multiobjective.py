"""Multi-objective Optuna studies: optuna_mobster.report / should_prune, MobsterPruner's MO-ASHA
rule against fronts by hand, MobsterSampler's ParEGO suggestions, threads and two processes on
one SQLite file, NaN in one objective, and invalid input."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import optuna_mobster
from mobster import pareto
from optuna_mobster import MobsterPruner, MobsterSampler
from optuna_objectives import two_objectives

optuna.logging.set_verbosity(optuna.logging.WARNING)
TESTS = Path(__file__).parent


def _study(storage: str | None = None, **pruner: object) -> optuna.Study:
    return optuna.create_study(
        directions=["minimize", "maximize"],
        storage=storage,
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=MobsterPruner(max_resource=9, **pruner),  # type: ignore[arg-type]
    )


def _decide(study: optuna.Study, vector: tuple[float, float], step: int = 1) -> bool:
    trial = study.ask()
    optuna_mobster.report(trial, vector, step)
    return optuna_mobster.should_prune(trial)


def test_pruner_keeps_the_top_third_of_the_rung_by_pareto_order() -> None:
    study = _study()
    # Second objective maximised: (error, accuracy). Trial 0 alone at the rung goes on.
    assert _decide(study, (0.5, 0.5)) is False
    # (0.6, 0.4) is dominated by trial 0: 1 before it of 2, (2 - 1) / 3 < 1: pruned.
    assert _decide(study, (0.6, 0.4)) is True
    # (0.1, 0.9) dominates both: first of 3, goes on.
    assert _decide(study, (0.1, 0.9)) is False
    # (0.9, 0.95) is on the front with (0.1, 0.9), an extreme (infinite crowding): second of 4,
    # (4 - 1) / 3 = 1 before it allowed: goes on. (0.7, 0.3) is in the last front: pruned.
    assert _decide(study, (0.9, 0.95)) is False
    assert _decide(study, (0.7, 0.3)) is True


def test_decisions_agree_with_the_core_rule_on_every_report() -> None:
    study = _study()
    rng = __import__("random").Random(3)
    recorded: dict[int, tuple[float, float]] = {}
    for _ in range(25):
        vector = (rng.random(), rng.random())
        trial = study.ask()
        optuna_mobster.report(trial, vector, 1)
        recorded[trial.number] = (vector[0], -vector[1])  # minimised
        assert optuna_mobster.should_prune(trial) == pareto.should_stop(trial.number, recorded, 3)


def test_only_the_first_report_at_a_rung_and_none_at_the_full_resource_is_judged() -> None:
    study = _study()
    _decide(study, (0.1, 0.9))
    trial = study.ask()
    optuna_mobster.report(trial, (0.05, 0.95), 1)
    assert optuna_mobster.should_prune(trial) is False
    optuna_mobster.report(trial, (0.9, 0.1), 2)  # still rung 1's interval [1, 3): not judged again
    assert optuna_mobster.should_prune(trial) is False
    optuna_mobster.report(trial, (0.9, 0.1), 9)  # the full resource
    assert optuna_mobster.should_prune(trial) is False


def test_nan_in_one_objective_prunes_with_one_warning_and_keeps_the_vectors() -> None:
    study = _study()
    trial = study.ask()
    optuna_mobster.report(trial, (math.nan, 0.5), 1)
    with pytest.warns(UserWarning, match="reported \\[nan, 0.5\\] at step 1; it is pruned"):
        assert optuna_mobster.should_prune(trial) is True
    study.tell(trial, state=TrialState.PRUNED)
    frozen = study.trials[0]
    assert frozen.state == TrialState.PRUNED
    (step, vector), = optuna_mobster.intermediate_values(frozen).items()
    assert step == 1 and math.isnan(vector[0]) and vector[1] == 0.5


def test_invalid_reports_name_the_problem() -> None:
    study = _study()
    trial = study.ask()
    with pytest.raises(ValueError, match="report got 3 values \\[1, 2, 3\\] for a study with 2 directions"):
        optuna_mobster.report(trial, [1, 2, 3], 1)
    with pytest.raises(TypeError, match="needs a sequence of 2 values"):
        optuna_mobster.report(trial, 0.5, 1)
    with pytest.raises(TypeError, match="needs numbers"):
        optuna_mobster.report(trial, ["a", 1.0], 1)
    optuna_mobster.report(trial, (0.1, 0.2), 1)
    with pytest.warns(UserWarning, match="already reported"):
        optuna_mobster.report(trial, (0.3, 0.4), 1)
    assert optuna_mobster.intermediate_values(study._storage.get_trial(trial._trial_id)) == {1: (0.1, 0.2)}


def test_auto_brackets_refused_in_a_multi_objective_study() -> None:
    study = _study(brackets="auto")
    trial = study.ask()
    optuna_mobster.report(trial, (0.1, 0.2), 1)
    with pytest.raises(ValueError, match="brackets='auto'.*multi-objective"):
        optuna_mobster.should_prune(trial)


def test_single_objective_helpers_are_optunas_own() -> None:
    study = optuna.create_study(pruner=MobsterPruner(max_resource=9))
    for value in (0.1, 0.2, 0.3, 0.4):
        trial = study.ask()
        optuna_mobster.report(trial, value, 1)
        assert trial.should_prune() == optuna_mobster.should_prune(trial)
        study.tell(trial, value)
    assert study.trials[0].intermediate_values == {1: 0.1}


def check_mo_study(study: optuna.Study, n_trials: int) -> None:
    trials = study.get_trials()
    assert len(trials) == n_trials
    states = [t.state for t in trials]
    assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states
    for trial in trials:
        assert optuna_mobster.intermediate_values(trial)  # pruned ones keep their vectors
    best = study.best_trials
    assert best and all(t.state == TrialState.COMPLETE for t in best)
    # The front really is non-dominated among completed trials.
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    fronts = pareto.nondominated_fronts([list(t.values) for t in completed])
    assert {t.number for t, f in zip(completed, fronts) if f == 0} == {t.number for t in best}
    # The model was fitted (its hyperparameters are published for other processes).
    assert any(key.startswith("mobster:fit:") for key in study._storage.get_study_system_attrs(study._study_id))


def test_mobster_multi_objective_study_in_threads_prunes_and_models() -> None:
    sampler = MobsterSampler(seed=0, num_initial_random=4)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler, pruner=MobsterPruner(max_resource=9))
    study.optimize(two_objectives, n_trials=20, n_jobs=2)
    check_mo_study(study, 20)
    assert sampler.model_failures == 0
    # Configurations are new: no two trials share one.
    assert len({(t.params["x"], t.params["y"]) for t in study.trials}) == 20


def test_two_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'mo.db'}"
    optuna.create_study(study_name="mo", storage=storage, directions=["minimize", "minimize"])
    command = [sys.executable, str(TESTS / "optuna_worker.py"), storage, "mo", "8", "multi"]
    workers = [subprocess.Popen(command, cwd=TESTS, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [worker.communicate(timeout=300)[1] for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], errors
    assert not any("Traceback" in e for e in errors), errors
    study = optuna.load_study(study_name="mo", storage=storage)
    check_mo_study(study, 16)


def test_max_resource_auto_is_inferred_from_reported_vectors() -> None:
    pruner = MobsterPruner()  # max_resource="auto"
    study = optuna.create_study(directions=["minimize", "minimize"], pruner=pruner)
    trial = study.ask()
    for step in range(1, 6):
        optuna_mobster.report(trial, (1.0 / step, float(step)), step)
    study.tell(trial, (0.2, 5.0))
    assert pruner.known_max_resource(study) == 5
