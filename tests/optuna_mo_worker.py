"""A worker process for the multi-objective shared-storage test:
``python optuna_mo_worker.py STORAGE STUDY N_TRIALS``."""

import sys

import optuna
import torch

from optuna_mobster import MobsterPruner, MobsterSampler
from optuna_objectives import two_objectives

torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)

if __name__ == "__main__":
    storage, name, n_trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
    study = optuna.load_study(
        study_name=name, storage=storage, sampler=MobsterSampler(num_initial_random=4), pruner=MobsterPruner(max_resource=9)
    )
    study.optimize(lambda t: two_objectives(t, max_step=9), n_trials=n_trials)
