"""A worker process for the shared-storage tests: ``python optuna_worker.py STORAGE STUDY N_TRIALS KIND``.

``KIND`` is ``single`` (the learning curve of ``optuna_objectives.objective``) or ``multi``
(its two objectives, ``optuna_objectives.two_objectives``); the study must have been created
with as many directions.
"""

import sys

import optuna
import torch

from optuna_mobster import MobsterPruner, MobsterSampler
from optuna_objectives import objective, two_objectives

torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)

OBJECTIVES = {"single": objective, "multi": two_objectives}

if __name__ == "__main__":
    storage, name, n_trials, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    study = optuna.load_study(
        study_name=name, storage=storage, sampler=MobsterSampler(num_initial_random=4), pruner=MobsterPruner(max_resource=9)
    )
    study.optimize(lambda t: OBJECTIVES[kind](t, max_step=9), n_trials=n_trials)
