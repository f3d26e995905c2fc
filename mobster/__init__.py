"""MOBSTER core: search spaces, rungs and brackets, the joint GP over (configuration, resource),
fantasized pending trials and expected improvement. Framework-agnostic; the Optuna and Ray Tune
plugins (``optuna_mobster``, ``tune_mobster``) are thin adapters over it."""

from mobster.history import TrialRecord
from mobster.options import SearcherOptions
from mobster.rung_table import RungTable
from mobster.rungs import rung_levels
from mobster.searcher import ModelBasedSearcher
from mobster.space import Categorical, Float, Integer, InvalidSpaceError, SearchSpace

__all__ = [
    "Categorical",
    "Float",
    "Integer",
    "InvalidSpaceError",
    "ModelBasedSearcher",
    "RungTable",
    "SearchSpace",
    "SearcherOptions",
    "TrialRecord",
    "rung_levels",
]
