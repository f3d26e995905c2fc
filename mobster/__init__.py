"""MOBSTER core: search spaces, rungs and brackets, the joint GP over (configuration, resource),
fantasized pending trials and expected improvement. Framework-agnostic; the Optuna and Ray Tune
plugins (``optuna_mobster``, ``tune_mobster``) are thin adapters over it."""

import warnings

# linear_operator (under gpytorch and BoTorch) applies torch.jit.script when imported, which torch
# deprecates with a warning that no user of this library can act on: import it quietly, first.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", DeprecationWarning)
    import linear_operator  # noqa: F401

from mobster.history import TrialRecord  # noqa: E402
from mobster.options import SearcherOptions  # noqa: E402
from mobster.rung_table import RungTable  # noqa: E402
from mobster.rungs import rung_levels  # noqa: E402
from mobster.searcher import ModelBasedSearcher  # noqa: E402
from mobster.space import Categorical, Float, Integer, InvalidSpaceError, SearchSpace  # noqa: E402

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
