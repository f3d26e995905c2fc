"""Reliability of MobsterSampler + MobsterPruner: bad trials, and a study killed mid-run.

1. Objectives that raise at random epochs, report NaN / inf / -inf, report nothing, return
   ``None`` or NaN, report steps out of order or twice, or ignore the pruner: the study runs its
   ``n_trials``, every bad value is named in one MOBSTER warning per component (FAIL trials in
   Optuna's own log), FAIL trials are
   never proposed again, the GP never sees a FAIL trial's or a non-finite value, and the
   pruner's rungs ignore them (its decisions are replayed from storage with ``rung_audit``).
2. A worker process optimising a study on SQLite is SIGKILLed mid-trial (after four finished
   trials, in the third epoch of the fifth, which the worker makes long), and a new process
   resumes with ``optuna.load_study`` and finishes the budget. The workers use RDBStorage's
   heartbeat (Optuna's public way to recover from killed workers), so the resumed run marks the
   killed RUNNING trial FAIL before its first trial; everything finished before the kill stays
   as it was, no configuration is run twice, and every pruning decision of both runs is
   replayed exactly (the runs are sequential).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from mobster.data import collect_observations
from mobster.searcher import ModelBasedSearcher
from optuna_mobster import MobsterPruner, MobsterSampler
from optuna_objectives import curve_value
from rung_audit import audit_pruning

optuna.logging.set_verbosity(optuna.logging.WARNING)
TESTS = Path(__file__).parent
WORKER = TESTS / "optuna_reliability_worker.py"
LEVELS = [1, 3, 9]

# Fault of trial number i: FAULTS[i % len(FAULTS)]; the epoch it strikes at is drawn per trial.
FAULTS = [
    "ok", "ok", "raise", "nan", "silent", "ok", "inf", "backwards", "none", "twice",
    "ignore_prune", "nan_final", "-inf", "raise", "ok", "nan", "ok", "backwards",
]  # fmt: skip
NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class Faulty:
    """An objective whose trial ``i`` misbehaves as ``FAULTS[i]``; remembers what it did."""

    def __init__(self) -> None:
        self.bad_report: dict[int, int] = {}  # trial -> step it reported a non-finite value at
        self.raised: set[int] = set()  # trials that raised (the others were pruned before)

    def __call__(self, trial: optuna.Trial) -> float | None:
        x = trial.suggest_float("x", 0.0, 1.0)
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        kind = trial.suggest_categorical("kind", ["a", "b", "c"])
        fault = FAULTS[trial.number % len(FAULTS)]
        epoch = random.Random(trial.number).randint(1, 8)
        curve = lambda step: curve_value(x, lr, 5, kind, step)  # noqa: E731
        if fault == "silent":
            return curve(9)  # no intermediate value at all
        if fault == "none":
            return None  # Optuna marks the trial FAIL
        if fault == "nan_final":
            return math.nan  # Optuna marks the trial FAIL
        steps = list(range(1, 10))
        if fault == "backwards":
            steps = [3, 1, 2] + steps[3:]
        for step in steps:
            if fault == "raise" and step == epoch:
                self.raised.add(trial.number)
                raise RuntimeError(f"training diverged at epoch {epoch}")
            value = curve(step)
            if fault in NON_FINITE and step == epoch:
                value = NON_FINITE[fault]
                self.bad_report[trial.number] = step
            if fault == "ignore_prune" and step == 2:
                value = math.nan
                self.bad_report[trial.number] = step
            trial.report(value, step)
            if fault == "twice":
                trial.report(value + 1.0, step)  # ignored by Optuna, with its own warning
            if trial.should_prune() and fault != "ignore_prune":
                raise optuna.TrialPruned()
        return curve(9)


@pytest.mark.slow  # 10-30 s on a busy 2-core machine (36 trials, GP from the fifth)
def test_bad_trials_are_failed_or_skipped_named_once_and_ignored(monkeypatch, caplog):
    calls: list[list] = []
    original = ModelBasedSearcher.suggest_ranked

    def spy(self, trials, count):
        calls.append(copy.deepcopy(list(trials)))
        return original(self, trials, count)

    monkeypatch.setattr(ModelBasedSearcher, "suggest_ranked", spy)
    objective = Faulty()
    n_trials = 2 * len(FAULTS)
    study = optuna.create_study(
        sampler=MobsterSampler(seed=0, num_initial_random=4, num_fantasies=4),
        pruner=MobsterPruner(max_resource=9),
    )
    optuna.logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING, logger="optuna"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            study.optimize(objective, n_trials=n_trials, catch=(RuntimeError,))
    finally:
        optuna.logging.disable_propagation()
    trials = study.get_trials()

    # The study ran its whole budget, and each trial ended as its fault says.
    assert len(trials) == n_trials
    for trial in trials:
        fault = FAULTS[trial.number % len(FAULTS)]
        failing = fault in ("none", "nan_final") or trial.number in objective.raised
        expected = {TrialState.FAIL} if failing else {TrialState.COMPLETE, TrialState.PRUNED}
        if trial.number in objective.bad_report and fault != "ignore_prune":
            expected = {TrialState.PRUNED}
        if fault in ("silent", "ignore_prune"):
            expected = {TrialState.COMPLETE}
        assert trial.state in expected, (trial.number, fault, trial.state)
    failed = {t.number for t in trials if t.state == TrialState.FAIL}
    assert len(failed) >= 2 * len([f for f in FAULTS if f in ("none", "nan_final")]) + 1
    assert study.best_trial.state == TrialState.COMPLETE and math.isfinite(study.best_value)

    # One warning per bad trial and component, naming it.
    messages = [str(w.message) for w in caught]
    for number, step in objective.bad_report.items():
        pruner = [m for m in messages if m.startswith(f"MobsterPruner: trial {number} reported")]
        assert len(pruner) == 1, (number, pruner)
        assert f"at step {step}" in pruner[0]
        sampler = [m for m in messages if m.startswith(f"MOBSTER: trial {number} reported")]
        assert len(sampler) <= 1, (number, sampler)  # once the sampler models the trial
    for number in failed:  # Optuna's own log (it logs an exception and the missing value)
        assert any(r.getMessage().startswith(f"Trial {number} failed") for r in caplog.records), number
    for trial in trials:  # MOBSTER never warns about a good trial
        if trial.number not in objective.bad_report:
            assert not [m for m in messages if m.startswith((f"MobsterPruner: trial {trial.number} ", f"MOBSTER: trial {trial.number} "))]

    # FAIL trials are never proposed again: every configuration is new.
    assert len({tuple(sorted(t.params.items())) for t in trials}) == n_trials

    # The model never sees a FAIL trial or a non-finite value, but knows FAIL configurations.
    assert len(calls) >= n_trials - 2
    fail_configs = {tuple(sorted(t.params.items())) for t in trials if t.state == TrialState.FAIL}
    seen_fail_configs = set()
    for records in calls:
        names = [r.name for r in records]
        assert len(names) == len(set(names))
        for record in records:
            if int(record.name) in failed:
                assert record.results == {} and record.pending_at is None
                seen_fail_configs.add(tuple(sorted(record.config.items())))
        observations, _ = collect_observations(records, LEVELS, 1.0)
        assert all(math.isfinite(o.value) for o in observations)
        assert not {int(records[o.trial].name) for o in observations} & failed
    assert seen_fail_configs == fail_configs  # all of them block re-proposal

    # Every pruning decision follows the rung rule over non-failed, finite values only (the
    # default rescue may send on trials the rule would stop: continues are the model's call).
    disobedient = {t.number for t in trials if FAULTS[t.number % len(FAULTS)] in ("backwards", "ignore_prune")}
    assert audit_pruning(trials, LEVELS, 3, skip=disobedient, rescues=True) == []
    assert any(t.state == TrialState.PRUNED and t.number not in objective.bad_report for t in trials)


def _snapshot(trial: optuna.trial.FrozenTrial) -> tuple:
    return trial.state, trial.params, trial.value, dict(trial.intermediate_values), trial.datetime_complete


@pytest.mark.slow
def test_killed_sqlite_study_resumes_from_storage(tmp_path):
    storage = f"sqlite:///{tmp_path / 'killed.db'}"
    budget = 8
    optuna.create_study(study_name="killed", storage=storage)
    command = [sys.executable, str(WORKER), storage, "killed", "--until-finished", str(budget), "--heartbeat"]
    first = subprocess.Popen(
        [*command, "--step-sleep", "0.01", "--stall-after", "4"],
        cwd=TESTS,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # After 4 finished trials, the next one reports steps 1 and 2 and hangs in step 3 (a
        # long epoch): kill the process there, mid-trial, without racing it.
        deadline = time.monotonic() + 300
        watcher = optuna.load_study(study_name="killed", storage=storage)
        while True:
            assert first.poll() is None, first.communicate()[0]
            assert time.monotonic() < deadline, "the worker made no progress"
            trials = watcher.get_trials(deepcopy=False)
            finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
            running = [t for t in trials if t.state == TrialState.RUNNING]
            if len(finished) >= 4 and running and running[0].last_step == 2:
                os.kill(first.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
        first.communicate()
    assert first.returncode == -signal.SIGKILL

    before = optuna.load_study(study_name="killed", storage=storage).get_trials()
    killed = [t for t in before if t.state == TrialState.RUNNING]
    assert len(killed) == 1 and sorted(killed[0].intermediate_values) == [1, 2]  # killed mid-trial
    done_before = {t.number: _snapshot(t) for t in before if t.state != TrialState.RUNNING}
    assert len(done_before) == 4

    # Optuna fails a stale trial only once its heartbeat is older than the grace period (2 s in
    # the worker): a restart that finished the budget sooner would leave it RUNNING.
    time.sleep(3)
    resumed = subprocess.run([*command, "--step-sleep", "0.01"], cwd=TESTS, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Traceback" not in resumed.stdout + resumed.stderr

    after = optuna.load_study(study_name="killed", storage=storage).get_trials()
    by_number = {t.number: t for t in after}
    # Nothing finished before the kill changed.
    assert {n: _snapshot(by_number[n]) for n in done_before} == done_before
    # The killed trial was marked FAIL (heartbeat) and keeps what it reported.
    lost = by_number[killed[0].number]
    assert lost.state == TrialState.FAIL
    assert lost.intermediate_values == killed[0].intermediate_values
    # The budget was finished, nothing is left RUNNING, and no configuration ran twice.
    states = [t.state for t in after]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == budget
    assert TrialState.RUNNING not in states
    assert len({tuple(sorted(t.params.items())) for t in after}) == len(after)
    # Both runs' pruning decisions follow the rung rule over the storage (the FAIL trial out).
    assert audit_pruning(after, LEVELS, 3, rescues=True) == []
