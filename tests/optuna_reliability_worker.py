"""A worker process for the reliability tests: one Optuna process on a shared RDB storage.

``python optuna_reliability_worker.py STORAGE STUDY [--trials N | --until-finished N]
[--step-sleep S] [--heartbeat] [--processes P] [--stall-after K]``

Runs ``study.optimize`` with ``MobsterSampler`` + ``MobsterPruner(max_resource=9)`` on the
synthetic learning curve of ``optuna_objectives`` (one report per step, a sleep per step to
stand in for training). ``--trials``: this process runs N trials. ``--until-finished``: it
stops once the study holds N COMPLETE or PRUNED trials (how a resumed run finishes a budget).
``--heartbeat``: RDBStorage with a 1 s heartbeat, so a killed process's RUNNING trial is marked
FAIL by the next process (Optuna's public way to recover from a killed worker).
``--stall-after K``: once the study holds K finished trials, the next trial reports steps 1
and 2 and then hangs in step 3 (a long epoch), so a test can kill the process mid-trial without
racing it. ``--processes P``: fork P worker processes that each do the above with their own
database connections (the imports, most of a worker's start-up time, are paid once).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import warnings

import optuna
import torch
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from optuna_mobster import MobsterPruner, MobsterSampler
from optuna_objectives import curve_value

MAX_STEP = 9
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def make_objective(step_sleep: float, stall_after: int | None = None):
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        n = trial.suggest_int("n", 1, 8)
        kind = trial.suggest_categorical("kind", ["a", "b", "c"])
        if stall_after is not None and len(trial.study.get_trials(deepcopy=False, states=FINISHED)) >= stall_after:
            for step in (1, 2):
                trial.report(curve_value(x, lr, n, kind, step), step)
            time.sleep(3600)  # to be killed here
        value = float("inf")
        for step in range(1, MAX_STEP + 1):
            time.sleep(step_sleep)  # "training" the step, then reporting it
            value = curve_value(x, lr, n, kind, step)
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    return objective


def work(args: argparse.Namespace) -> None:
    """One worker: its own storage object, hence its own database connections."""
    storage: str | optuna.storages.RDBStorage = args.storage
    if args.heartbeat:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(args.storage, heartbeat_interval=1, grace_period=2)
    study = optuna.load_study(
        study_name=args.study,
        storage=storage,
        sampler=MobsterSampler(num_initial_random=4, num_fantasies=4, max_observations=60),
        # --plain-rule: no rescue by the model, so storage can replay every decision exactly.
        pruner=MobsterPruner(max_resource=MAX_STEP, rescue_by_model=False if args.plain_rule else None),
    )
    objective = make_objective(args.step_sleep, args.stall_after)
    if args.trials is not None:
        study.optimize(objective, n_trials=args.trials)
    else:
        done = len(study.get_trials(deepcopy=False, states=FINISHED))
        if done < args.until_finished:
            study.optimize(
                objective,
                n_trials=args.until_finished - done,
                callbacks=[MaxTrialsCallback(args.until_finished, states=FINISHED)],
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("storage")
    parser.add_argument("study")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--trials", type=int)
    budget.add_argument("--until-finished", type=int)
    parser.add_argument("--step-sleep", type=float, default=0.0)
    parser.add_argument("--heartbeat", action="store_true")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--stall-after", type=int)
    parser.add_argument("--plain-rule", action="store_true", help="MobsterPruner(rescue_by_model=False)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.processes == 1:
        work(args)
        return
    # Forked before any GP fit or database connection: no threads or sockets are shared.
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=work, args=(args,)) for _ in range(args.processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    sys.exit(max(abs(worker.exitcode or 0) for worker in workers))


if __name__ == "__main__":
    main()
