"""GP hyperparameters fitted once per study, not once per process.

Every process that samples from one study sees the same history and would fit the same
hyperparameters on it. The process that fits publishes them in the study's system attrs (in the
storage every process reads); the others adopt them when they were fitted on more data than their
own last fit, and then only condition the GP on the data until it has grown by the core's refit
factor since. With eight processes, one fits where eight did.

Processes sampling at the same moment all find a refit due at about the same size of the data,
and a fit takes long enough that each would start its own before any publishes. So a process
about to refit first takes a lease (another system attr: the size it fits for, a token, the
time), reads it back, and fits only if the lease is still its own; while a lease younger than
``LEASE_SECONDS`` covers the size of its data, a process keeps its current hyperparameters and
only conditions the GP (its next suggestion adopts the published fit); one with none yet samples
at random, as it did before the model was due, rather than fit the first model a second time.
Two processes can still both fit when their writes and reads interleave exactly; that costs a
fit, never a wrong result.
A process that dies while fitting holds the others back for ``LEASE_SECONDS`` at most.

The attrs hold plain JSON: the number of observations the fit saw and each hyperparameter as a
nested list. They are keyed by the sampler's modelled space and rung levels, so studies whose
branches model different spaces keep one entry each.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mobster.searcher import ModelBasedSearcher, refit_due

if TYPE_CHECKING:
    from optuna.study import Study

KEY_PREFIX = "mobster:fit:"
LEASE_PREFIX = "mobster:fitting:"

#: How long a lease holds the other processes back (a fit takes seconds even on a busy machine).
LEASE_SECONDS = 60.0


def attr_key(searcher_key: tuple, prefix: str = KEY_PREFIX) -> str:
    """The system attr holding the fit (or the lease) of the searcher with this key (space and levels)."""
    return f"{prefix}{zlib.crc32(repr(searcher_key).encode()):08x}"


def refit_gate(study: Study, searcher_key: tuple) -> Callable[[int], bool]:
    """The searcher's :attr:`~mobster.searcher.ModelBasedSearcher.refit_gate` for this study:
    ``True`` when this process takes the lease to refit on ``size`` observations."""
    key = attr_key(searcher_key, LEASE_PREFIX)

    def lease(size: int) -> bool:
        held = study._storage.get_study_system_attrs(study._study_id).get(key)
        if _covers(held, size):
            return False  # another process is fitting on about this much data
        token = uuid.uuid4().hex
        study._storage.set_study_system_attr(study._study_id, key, {"size": size, "token": token, "at": time.time()})
        held = study._storage.get_study_system_attrs(study._study_id).get(key)
        return not isinstance(held, dict) or held.get("token") == token

    return lease


def _covers(lease: Any, size: int) -> bool:
    """Whether a lease is live and its fit will serve ``size`` observations (no refit due after it)."""
    if not isinstance(lease, dict) or not isinstance(lease.get("size"), int) or not isinstance(lease.get("at"), (int, float)):
        return False
    # abs(): clocks of different machines may disagree by a little, either way.
    return abs(time.time() - lease["at"]) < LEASE_SECONDS and not refit_due(size, lease["size"])


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
