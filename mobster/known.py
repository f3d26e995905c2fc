"""Which configurations count as already tried, so that the searcher never proposes them again.

A configuration is "known" once any trial holds it: finished, stopped, running, paused or failed.
A candidate within ``RESOLUTION`` of a known configuration in *every* search coordinate counts as
that configuration: numbers that differ by under 1% of their (log) range, with the same discrete
and categorical values, train to the same model in practice. Proposing them again spends a whole
trial to learn what is known; exact-match checks let an optimiser do that, one ulp at a time (and
several processes sampling from one history at once do it too).

Only when every configuration of a finite space is near a known one do exact matches decide, so
that such a space is still used up to its last configuration.
"""

from __future__ import annotations

import numpy as np

#: Largest difference, in search coordinates ([0, 1] per numeric parameter), that still counts
#: as the same configuration. Categorical coordinates are choice indices: any change is new.
RESOLUTION = 0.01


class KnownConfigurations:
    """Search coordinates of the configurations tried so far (``n x dim``)."""

    def __init__(self, units: list[np.ndarray], dim: int) -> None:
        self.units = np.array(units, dtype=float).reshape(len(units), dim)

    def __contains__(self, unit: np.ndarray) -> bool:
        return self._nearest_gap(unit) < RESOLUTION

    def holds_exactly(self, unit: np.ndarray) -> bool:
        """Whether ``unit`` itself was tried: the last resort once every nearby configuration was."""
        return self._nearest_gap(unit) < 1e-9

    def _nearest_gap(self, unit: np.ndarray) -> float:
        """The largest coordinate difference to the nearest known configuration (``inf``: none)."""
        if len(self.units) == 0:
            return float("inf")
        return float(np.abs(self.units - np.asarray(unit, dtype=float)).max(axis=1).min())

    def __len__(self) -> int:
        return len(self.units)
