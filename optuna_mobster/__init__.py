"""MOBSTER for Optuna: ``MobsterSampler`` (joint GP over parameters and steps) and
``MobsterPruner`` (asynchronous successive halving with Hyperband brackets)."""

from mobster.options import SearcherOptions
from optuna_mobster.pruner import MobsterPruner
from optuna_mobster.sampler import MobsterSampler

__all__ = ["MobsterPruner", "MobsterSampler", "SearcherOptions"]
