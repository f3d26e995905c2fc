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

import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from mobster.data import acquisition_resource, collect_observations
from mobster.history import TrialRecord
from mobster.model import ignore_jitter_warnings
from mobster.options import SearcherOptions
from mobster.pareto import is_finite_vector, minimising_signs, nondominated_fronts
from mobster.searcher import ModelBasedSearcher
from mobster.space import SearchSpace

#: Quasi-Monte-Carlo samples of qLogNEHVI.
NEHVI_SAMPLES = 64

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
        common: dict[str, Any] = dict(max_resource=max_resource, levels=levels, mode="min", options=options, **overrides)
        self.single = ModelBasedSearcher(space, reduction_factor=reduction_factor, seed=seed, **common)
        self.acquisition = self.single.options.multi_objective_acquisition
        # qLogNEHVI: one GP per objective (each keeps its own warm-start hyperparameters).
        self._per_objective = (
            [ModelBasedSearcher(space, seed=seed, **common) for _ in modes] if self.acquisition == "nehvi" else []
        )
        self._nehvi_rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._nehvi_failures = 0

    @property
    def space(self) -> SearchSpace:
        return self.single.space

    @property
    def model_failures(self) -> int:
        return self.single.model_failures + self._nehvi_failures

    def suggest(self, trials: Sequence[TrialRecord]) -> dict[str, Any]:
        """A configuration not among ``trials``, chosen for a random scalarisation (see the module),
        or by qLogNEHVI."""
        return self.suggest_ranked(trials, count=1)[0]

    def suggest_ranked(self, trials: Sequence[TrialRecord], count: int) -> list[dict[str, Any]]:
        """:meth:`suggest`'s configuration first, then runner-ups as
        :meth:`ModelBasedSearcher.suggest_ranked` gives them (none with qLogNEHVI)."""
        if self.acquisition == "nehvi":
            return [self._suggest_nehvi(trials)]
        return self.single.suggest_ranked(self.scalarised(trials, self.draw_weights()), count)

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

    @property
    def refit_gate(self) -> Callable[[int], bool] | None:
        """:attr:`ModelBasedSearcher.refit_gate` of the scalarised model (qLogNEHVI's models
        per objective always refit)."""
        return self.single.refit_gate

    @refit_gate.setter
    def refit_gate(self, gate: Callable[[int], bool] | None) -> None:
        self.single.refit_gate = gate

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

    # ----- qLogNEHVI ----------------------------------------------------------------------

    def _objective_records(self, trials: Sequence[TrialRecord], k: int) -> list[TrialRecord]:
        """The records with objective ``k`` alone, minimised (an invalid vector becomes ``nan``)."""
        return [
            TrialRecord(
                t.config,
                {r: float(self.signs[k] * v[k]) if self._valid(v) else float("nan") for r, v in t.results.items()},
                t.pending_at,
                t.name,
            )
            for t in trials
        ]

    def _suggest_nehvi(self, trials: Sequence[TrialRecord]) -> dict[str, Any]:
        """The single-objective searcher's rules around qLogNEHVI: random configurations first,
        for the random share, with too little data, and when the model fails (with a warning)."""
        options, configs = self.single.options, self._configs_only(trials)
        with self._lock:
            model_turn = (
                self.space.dim > 0
                and len(trials) >= options.num_initial_random
                and self._nehvi_rng.random() >= options.random_fraction
            )
            if not model_turn:
                return self.single.suggest_random(configs, rng=self._nehvi_rng) if trials else self.single.suggest(configs)
            try:
                with warnings.catch_warnings():
                    # The joint covariance of the configurations seen and the candidates is
                    # near-singular where they are close.
                    ignore_jitter_warnings()
                    unit = self._nehvi_unit(trials)
            except LookupError:  # too little data, or nothing new among the candidates
                return self.single.suggest_random(configs, rng=self._nehvi_rng)
            except Exception as error:  # numerical failure of a GP: never break the study
                self._nehvi_failures += 1
                warnings.warn(f"MOBSTER model failed ({error!r}); suggesting a random configuration", stacklevel=2)
                return self.single.suggest_random(configs, rng=self._nehvi_rng)
            return self.space.from_unit(unit)

    def _nehvi_unit(self, trials: Sequence[TrialRecord]) -> np.ndarray:
        from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
        from botorch.acquisition.multi_objective.objective import WeightedMCMultiOutputObjective
        from botorch.models import ModelListGP
        from botorch.sampling import SobolQMCNormalSampler
        from botorch.utils.multi_objective.hypervolume import infer_reference_point

        from mobster.optimize import maximize_acquisition

        # The per-objective searchers' internals are used on purpose: the same data reduction,
        # data cap, warp and warm-started fits as one objective gets, per objective.
        searchers = self._per_objective
        units = [searchers[0]._unit_or_none(t) for t in trials]
        models, r_acq = [], None
        for k, searcher in enumerate(searchers):
            records = self._objective_records(trials, k)
            observations, _ = collect_observations(records, searcher.levels, 1.0)
            if len({o.value for o in observations}) < 2:
                raise LookupError("too little data for a model")
            r_acq = acquisition_resource(observations) if r_acq is None else r_acq
            model, _, _ = searcher._fit_observations(records, observations, units)
            models.append(model)
        kwargs = searchers[0].tensor_kwargs
        r_unit = searchers[0]._resource_unit(r_acq)
        space = self.space

        def at_acquisition_resource(x: torch.Tensor) -> torch.Tensor:
            features = space.features(x)
            column = torch.full((1,), r_unit, **kwargs)
            return torch.cat([features, column.expand(*features.shape[:-1], 1)], dim=-1)

        observed = [u for t, u in zip(trials, units) if u is not None and t.results]
        pending = [u for t, u in zip(trials, units) if u is not None and t.pending_at is not None]
        baseline = torch.tensor(np.unique(np.stack(observed), axis=0), **kwargs)
        model = _AtResource(ModelListGP(*models), at_acquisition_resource)
        minimise = WeightedMCMultiOutputObjective(weights=-torch.ones(len(models), **kwargs))  # BoTorch maximises
        with torch.no_grad():
            means = -model.posterior(baseline).mean
        front = means[torch.as_tensor(nondominated_fronts(-means.cpu().numpy()) == 0)]
        acquisition = qLogNoisyExpectedHypervolumeImprovement(
            model=model,
            ref_point=infer_reference_point(front),
            X_baseline=baseline,
            sampler=SobolQMCNormalSampler(torch.Size([NEHVI_SAMPLES]), seed=int(self._nehvi_rng.integers(2**31))),
            objective=minimise,
            X_pending=torch.tensor(np.stack(pending), **kwargs) if pending else None,
            prune_baseline=True,
            cache_root=False,
        )
        anchors = baseline[torch.as_tensor(nondominated_fronts(-means.cpu().numpy()) == 0)].cpu().numpy()
        excluded = self.single._known(units)
        return maximize_acquisition(
            acquisition, space, self.single._known_test(excluded), self._nehvi_rng, kwargs, anchors[:5]
        )


class _AtResource(torch.nn.Module):
    """A BoTorch model over search coordinates: ``inner`` (over GP inputs) at one resource."""

    def __init__(self, inner: Any, to_input: Any) -> None:
        super().__init__()
        self.inner = inner
        self.to_input = to_input

    @property
    def num_outputs(self) -> int:
        return self.inner.num_outputs

    @property
    def batch_shape(self) -> torch.Size:
        return self.inner.batch_shape

    def posterior(self, X: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return self.inner.posterior(self.to_input(X), *args, **kwargs)
