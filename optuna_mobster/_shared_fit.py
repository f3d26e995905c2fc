"""GP hyperparameters fitted once per study, not once per process.

Every process that samples from one study sees the same history and would fit the same
hyperparameters on it. The process that fits publishes them in the study's system attrs (in the
storage every process reads); the others adopt them when they were fitted on more data than their
own last fit, and then only condition the GP on the data until it has grown by the core's refit
factor since. With eight processes, one fits where eight did.

The attr holds plain JSON: the number of observations the fit saw and each hyperparameter as a
nested list. It is keyed by the sampler's modelled space and rung levels, so studies whose
branches model different spaces keep one entry each.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

from mobster.searcher import ModelBasedSearcher

if TYPE_CHECKING:
    from optuna.study import Study

KEY_PREFIX = "mobster:fit:"


def attr_key(searcher_key: tuple) -> str:
    """The system attr holding the fit of the searcher with this key (space and levels)."""
    return f"{KEY_PREFIX}{zlib.crc32(repr(searcher_key).encode()):08x}"


def adopt_shared(study: Study, searcher_key: tuple, searcher: ModelBasedSearcher) -> None:
    """Take the study's published fit if it saw more data than the searcher's own last fit."""
    shared: Any = study._storage.get_study_system_attrs(study._study_id).get(attr_key(searcher_key))
    if isinstance(shared, dict) and isinstance(shared.get("size"), int) and isinstance(shared.get("params"), dict):
        searcher.adopt_hyperparameters(shared["params"], shared["size"])


def publish(study: Study, searcher_key: tuple, searcher: ModelBasedSearcher, size_before: int) -> None:
    """Publish the searcher's fit if it refitted since ``size_before`` (its fitted size then)."""
    fitted = searcher.fitted_hyperparameters()
    if fitted is not None and fitted[1] > size_before:
        params, size = fitted
        study._storage.set_study_system_attr(study._study_id, attr_key(searcher_key), {"size": size, "params": params})
