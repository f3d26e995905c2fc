"""MOBSTER for Optuna: ``MobsterSampler`` (joint GP over parameters and steps) and
``MobsterPruner`` (asynchronous successive halving with Hyperband brackets); ``report`` and
``should_prune`` for multi-objective studies, whose trials Optuna itself cannot report or prune."""

from mobster.options import SearcherOptions
from optuna_mobster.multiobjective import intermediate_values, report, should_prune
from optuna_mobster.pruner import MobsterPruner
from optuna_mobster.sampler import MobsterSampler

__all__ = ["MobsterPruner", "MobsterSampler", "SearcherOptions", "intermediate_values", "report", "should_prune"]
