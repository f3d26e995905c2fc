"""Several objectives on the one GP: ParEGO's random scalarisations over (configuration, resource).

Each model-based suggestion draws a weight vector ``w`` uniformly from the simplex, maps every
recorded result vector to one number with the augmented Chebyshev function of ParEGO (Knowles
2006, "ParEGO: a hybrid algorithm with on-line landscape approximation for expensive
multiobjective optimization problems")::

    s(y) = max_k w_k * u_k(y) + RHO * sum_k w_k * u_k(y),    u_k(y) = (y_k - low_k) / (high_k - low_k)

(objectives minimised, ``low`` and ``high`` the range of each objective over every recorded
result), and asks the single-objective searcher for the configuration with the best expected
improvement on ``s`` at the acquisition resource, with pending trials fantasized as usual. Each
weight vector aims at another part of the Pareto front, so over many suggestions the whole front
is searched; one GP is fitted, not one per objective (hyperparameters are refitted as the data
grows, as for one objective, whatever the weights of that moment).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mobster.history import TrialRecord
from mobster.options import SearcherOptions
from mobster.pareto import is_finite_vector, minimising_signs
from mobster.searcher import ModelBasedSearcher
from mobster.space import SearchSpace

#: ParEGO's augmentation: a small weighted sum keeps weakly dominated points from tying.
RHO = 0.05


def scalarise(vectors: np.ndarray, weights: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The augmented Chebyshev value of each minimised row of ``vectors`` (see the module)."""
    span = np.where(high > low, high - low, 1.0)
    unit = (vectors - low) / span
    weighted = unit * weights
    return weighted.max(axis=-1) + RHO * weighted.sum(axis=-1)


class MultiObjectiveSearcher:
    """Suggests configurations for several objectives with a :class:`ModelBasedSearcher`.

    Records carry, at every resource, a sequence of one value per objective (as reported: the
    ``modes`` say which to minimise or maximise). A vector with a non-finite component is left
    out of the model, as a non-finite value is with one objective.

    Args:
        space: The search space.
        modes: ``"min"`` or ``"max"`` per objective (two or more).
        max_resource, levels, reduction_factor, seed, options, overrides: as for
            :class:`ModelBasedSearcher`.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        modes: Sequence[str],
        max_resource: int,
        levels: Sequence[int] | None = None,
        reduction_factor: float | None = None,
        seed: int | None = None,
        options: SearcherOptions | None = None,
        **overrides: Any,
    ) -> None:
        if len(modes) < 2:
            raise ValueError(f"MultiObjectiveSearcher needs two or more objectives, got modes={list(modes)}")
        self.signs = minimising_signs(modes)  # also the check of every mode
        self.modes = list(modes)
        self._weights_rng = np.random.default_rng(None if seed is None else seed + 1)
        self.single = ModelBasedSearcher(
            space,
            max_resource=max_resource,
            levels=levels,
            mode="min",
            reduction_factor=reduction_factor,
            seed=seed,
            options=options,
            **overrides,
        )

    @property
    def space(self) -> SearchSpace:
        return self.single.space

    @property
    def model_failures(self) -> int:
        return self.single.model_failures

    def suggest(self, trials: Sequence[TrialRecord]) -> dict[str, Any]:
        """A configuration not among ``trials``, chosen for a random scalarisation (see the module)."""
        return self.single.suggest(self.scalarised(trials, self.draw_weights()))

    def suggest_random(self, trials: Sequence[TrialRecord], rng: np.random.Generator | None = None) -> dict[str, Any]:
        return self.single.suggest_random(self._configs_only(trials), rng)

    def is_among(self, config: dict[str, Any], others: Sequence[dict[str, Any]]) -> bool:
        return self.single.is_among(config, others)

    def reseed(self, seed: int | None) -> None:
        self.single.reseed(seed)
        self._weights_rng = np.random.default_rng(None if seed is None else seed + 1)

    def fitted_hyperparameters(self) -> tuple[dict[str, Any], int] | None:
        return self.single.fitted_hyperparameters()

    def adopt_hyperparameters(self, params: dict[str, Any], size: int) -> bool:
        return self.single.adopt_hyperparameters(params, size)

    def draw_weights(self) -> np.ndarray:
        """A weight vector uniform on the simplex."""
        return self._weights_rng.dirichlet(np.ones(len(self.modes)))

    def scalarised(self, trials: Sequence[TrialRecord], weights: np.ndarray) -> list[TrialRecord]:
        """The records with every result vector replaced by its scalarisation under ``weights``
        (minimised; a vector of the wrong length or with a non-finite value becomes ``nan``)."""
        vectors = [
            self.signs * np.asarray(value, dtype=float)
            for trial in trials
            for value in trial.results.values()
            if self._valid(value)
        ]
        if vectors:
            stacked = np.stack(vectors)
            low, high = stacked.min(axis=0), stacked.max(axis=0)
        else:
            low = high = np.zeros(len(self.modes))
        records = []
        for trial in trials:
            results = {
                resource: float(scalarise(self.signs * np.asarray(value, dtype=float), weights, low, high))
                if self._valid(value)
                else float("nan")
                for resource, value in trial.results.items()
            }
            records.append(TrialRecord(trial.config, results, trial.pending_at, trial.name))
        return records

    def _valid(self, value: Any) -> bool:
        try:
            return len(value) == len(self.modes) and is_finite_vector(value)
        except TypeError:
            return False

    @staticmethod
    def _configs_only(trials: Sequence[TrialRecord]) -> list[TrialRecord]:
        return [TrialRecord(t.config, {}, t.pending_at, t.name) for t in trials]
