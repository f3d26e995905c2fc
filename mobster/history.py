"""What the searcher knows about one trial: its configuration, its results, and whether it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrialRecord:
    """One trial as the framework adapters hand it to the core.

    Attributes:
        config: The trial's configuration (parameter name to value).
        results: Resource level (e.g. epoch) to the metric value reported there, as reported
            (not negated: the searcher applies the optimisation mode).
        pending_at: Resource level at which the trial's next result is expected, for running or
            paused trials (fantasized there); ``None`` once the trial is finished, stopped or failed.
        name: How warnings name the trial (e.g. ``"trial 12"``); defaults to its config.
    """

    config: dict[str, Any]
    results: dict[int, float] = field(default_factory=dict)
    pending_at: int | None = None
    name: str | None = None
