"""From minimised metric values to GP targets: a shifted log warp, then standardisation.

Learning curves pool values of very different size: early results of poor configurations are
large, the full-resource results of the best ones are small and close together. Standardised as
they are, the best configurations differ by a small fraction of one standard deviation and the
GP cannot tell them apart, which is where the search has to decide. A shifted logarithm spreads
the low end (the values that matter when minimising) and compresses outliers such as diverged
runs, as the output warping of HEBO and SMAC's log-transformed costs do::

    warp(y) = log(y - min(y) + delta),    delta = SHIFT * (max(y) - min(y))

It is monotone, so rankings, incumbents and the successive-halving bars keep their meaning in
warped units, and it only depends on the data's location and scale (maximised metrics, negated,
work the same way).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The warp's offset as a share of the value range: the best value maps to ``log(SHIFT * range)``.
SHIFT = 0.01


@dataclass(frozen=True)
class TargetTransform:
    """The warp and standardisation fitted to one data set; apply it to any minimised value."""

    low: float
    delta: float
    centre: float
    spread: float

    @classmethod
    def fit(cls, values: np.ndarray, warp: bool = True) -> TargetTransform:
        values = np.asarray(values, dtype=float)
        low = float(values.min())
        span = float(values.max()) - low
        delta = SHIFT * span if warp and span > 0 else 0.0  # 0: no warp (or constant data)
        warped = cls._warp(values, low, delta)
        spread = float(warped.std())
        return cls(low, delta, float(warped.mean()), spread if spread > 0 else 1.0)

    @staticmethod
    def _warp(values: np.ndarray, low: float, delta: float) -> np.ndarray:
        if delta == 0.0:
            return values
        # Values below the data's minimum (a bar or fantasy) are clipped to it, keeping log defined.
        return np.log(np.maximum(values - low, 0.0) + delta)

    def __call__(self, values: np.ndarray | float) -> np.ndarray:
        """Warped, standardised targets of ``values``."""
        return (self._warp(np.asarray(values, dtype=float), self.low, self.delta) - self.centre) / self.spread
