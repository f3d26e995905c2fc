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
from scipy.spatial import cKDTree

#: Largest difference, in search coordinates ([0, 1] per numeric parameter), that still counts
#: as the same configuration. Categorical coordinates are choice indices: any change is new.
RESOLUTION = 0.01


class KnownConfigurations:
    """Search coordinates of the configurations tried so far (``n x dim``)."""

    def __init__(self, units: list[np.ndarray], dim: int) -> None:
        self.units = np.array(units, dtype=float).reshape(len(units), dim)
        # Nearest known configuration in the max-coordinate distance, for many candidates at
        # once: a linear scan per candidate cost a tenth of a suggestion at 2,000 trials.
        self._tree = cKDTree(self.units) if len(self.units) and dim else None

    def __contains__(self, unit: np.ndarray) -> bool:
        return bool(self.contains(np.asarray(unit, dtype=float)[None, :])[0])

    def contains(self, units: np.ndarray) -> np.ndarray:
        """For each row of ``units`` (``m x dim``), whether it counts as a known configuration."""
        return self._nearest_gaps(units) < RESOLUTION

    def holds_exactly(self, unit: np.ndarray) -> bool:
        """Whether ``unit`` itself was tried: the last resort once every nearby configuration was."""
        return bool(self._nearest_gaps(np.asarray(unit, dtype=float)[None, :])[0] < 1e-9)

    def _nearest_gaps(self, units: np.ndarray) -> np.ndarray:
        """Per row, the largest coordinate difference to the nearest known configuration (``inf``: none)."""
        units = np.asarray(units, dtype=float).reshape(-1, self.units.shape[1])
        if len(self.units) == 0:
            return np.full(len(units), np.inf)
        if self._tree is None:  # no coordinates: every configuration is the one known
            return np.zeros(len(units))
        gaps, _ = self._tree.query(units, k=1, p=np.inf)
        return gaps

    def __len__(self) -> int:
        return len(self.units)
