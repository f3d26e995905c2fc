"""MOBSTER for Ray Tune: ``MobsterSearcher`` (joint GP over configuration and resource) and
``MobsterScheduler`` (asynchronous successive halving, stopping or promotion, with Hyperband
brackets). Swap them in for ``ASHAScheduler`` or ``TuneBOHB`` + ``HyperBandForBOHB``."""

from mobster.options import SearcherOptions
from tune_mobster.promotion import MissingCheckpointError
from tune_mobster.scheduler import MobsterScheduler
from tune_mobster.searcher import MobsterSearcher

__all__ = ["MissingCheckpointError", "MobsterScheduler", "MobsterSearcher", "SearcherOptions"]
