"""The MOBSTER searcher: new configurations from a joint GP over (configuration, resource).

Framework-agnostic and stateless with respect to data: adapters pass the whole history on every
call (Optuna reads it from storage, Ray Tune keeps it in its searcher), so several processes that
see the same history make the same kind of decision. The searcher keeps only the last fitted
hyperparameters, to warm-start the next fit.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from botorch.models import SingleTaskGP

from mobster import rungs as rung_rules
from mobster.acquisition import FantasyAveragedLogEI, RungSchedule
from mobster.data import (
    Observation,
    acquisition_resource,
    collect_observations,
    rung_results,
    rung_thresholds,
    subsample,
)
from mobster.fantasy import FantasizedModel
from mobster.history import TrialRecord
from mobster.known import KnownConfigurations
from mobster.model import (
    apply_hyperparameters,
    build_model,
    cholesky_jitter,
    fit_model,
    hyperparameters,
)
from mobster.optimize import rank_acquisition_candidates
from mobster.options import SearcherOptions
from mobster.posterior import ConditionedGP
from mobster.space import SearchSpace
from mobster.targets import TargetTransform
from mobster.warn import warn_once

#: Best known configurations (by posterior mean at r_acq) around which the optimiser also searches.
NUM_ANCHORS = 5
#: Attempts to fit the GP: plain, then with more Cholesky jitter from default hyperparameters.
FIT_ATTEMPTS = 2
#: Hyperparameters are re-optimised once the data has grown by this factor since the last fit
#: (the reference refits on every change, its main cost); in between, the GP is only conditioned
#: on the new data with the previous hyperparameters.
REFIT_GROWTH = 1.1
#: Observations the hyperparameters are fitted on (a rung-aware subset, as the data cap's); the
#: GP is then conditioned on all of them. A fit's cost grows with the cube of its data; a few
#: hundred points pin down a dozen hyperparameters about as well as the full cap does.
FIT_SUBSET = 200


#: Trials whose predicted value at the full resource (the rescue's) each suggestion computes
#: ahead, the latest ones; a rescue decision computes older ones itself (a few ms per hundred).
#: Each costs one column of the training size (4 KB at the 500-point cap): the bound keeps
#: memory flat in long studies.
RESCUE_PRECOMPUTED = 5_000
#: Trials whose predictions are computed in one batch (bounds the kernel's temporary matrices),
#: and the most rows of one block of the store (:class:`FittedPosterior`).
RESCUE_CHUNK = 500

#: Discrete spaces up to this size are enumerated when random draws find nothing new.
ENUMERATION_LIMIT = 100_000


def refit_due(total: int, fitted_size: int) -> bool:
    """Whether hyperparameters fitted on ``fitted_size`` observations are re-optimised for
    ``total``: once the data grew past ``REFIT_GROWTH`` times the size they were fitted on."""
    return total > REFIT_GROWTH * fitted_size


class FittedPosterior:
    """The GP of the last model-based suggestion: its posterior given the data, the transform of
    its targets, and the (search coordinates, resource) of every observation it was given.

    It also remembers, per configuration (its search coordinates' bytes), the posterior mean at
    the full resource and the kernel column ``k(D, x)`` there: a rescue decision then computes them
    only for configurations it has not seen, the expensive part at hundreds of trials. They are
    kept as rows of a few blocks of up to ``RESCUE_CHUNK`` rows (not a tensor per configuration,
    not one matrix regrown by copying), so a decision over thousands of trials multiplies a few
    blocks instead of stacking thousands of tensors. A lock guards the store: Optuna's threads
    may ask for predictions at once.
    """

    def __init__(self, gp: ConditionedGP, transform: TargetTransform, seen: frozenset[tuple[bytes, int]]) -> None:
        self.gp, self.transform, self.seen = gp, transform, seen
        self._row_of: dict[bytes, int] = {}
        self._means: list[torch.Tensor] = []  # per block: the rows' means
        self._columns: list[torch.Tensor] = []  # per block: rows x n, row k configuration k's column
        self._inputs: list[torch.Tensor] = []  # per block: the rows' GP inputs at the full resource
        self._lock = threading.Lock()

    def missing(self, keys: Sequence[bytes]) -> list[int]:
        """Indices of the ``keys`` it holds no prediction for (:meth:`remember_at_full` them)."""
        with self._lock:
            return [k for k, key in enumerate(keys) if key not in self._row_of]

    def remember_at_full(self, keys: Sequence[bytes], x: torch.Tensor) -> None:
        """Compute the predictions at the full resource for the configurations ``keys`` (GP
        inputs ``x`` there) that it does not hold yet."""
        with self._lock:
            new = list({key: k for k, key in enumerate(keys) if key not in self._row_of}.values())
            with torch.no_grad():
                for start in range(0, len(new), RESCUE_CHUNK):  # the kernel's temporaries stay small
                    chunk = new[start : start + RESCUE_CHUNK]
                    for k in chunk:
                        self._row_of[keys[k]] = len(self._row_of)
                    inputs = x[chunk]
                    columns = self.gp.columns(inputs)
                    means, rows = self.gp.mean_from_columns(inputs, columns), columns.T
                    if self._means and len(self._means[-1]) + len(chunk) <= RESCUE_CHUNK:
                        # A rescue adds a trial or two at a time: they join the last small block.
                        means, rows = torch.cat([self._means.pop(), means]), torch.cat([self._columns.pop(), rows])
                        inputs = torch.cat([self._inputs.pop(), inputs])
                    self._means.append(means)
                    self._columns.append(rows)
                    self._inputs.append(inputs)

    def predict_at_full(
        self, keys: Sequence[bytes], extra_x: torch.Tensor | None = None, extra_y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Posterior means at the full resource of the configurations ``keys`` (all remembered:
        see :meth:`missing`), once the GP has also seen ``extra_y`` at ``extra_x`` (``None``:
        nothing new)."""
        with self._lock:
            rows = torch.tensor([self._row_of[key] for key in keys], device=self._means[0].device)
            blocks = list(self._columns)
            x = torch.cat(self._inputs)[rows]
            if extra_x is None or extra_y is None:
                extra_x, extra_y = x[:0], x[:0, 0]

            def project(solved_e: torch.Tensor) -> torch.Tensor:
                # Every stored row projected, then the rows asked for picked: no copy of the columns.
                return torch.cat([block @ solved_e for block in blocks])[rows]

            return self.gp.mean_given(x, extra_x, extra_y, torch.cat(self._means)[rows], project)


class ModelBasedSearcher:
    """Suggests configurations by expected improvement under a joint GP over (x, r).

    Args:
        space: The search space.
        max_resource: The largest resource level (scales ``r`` to (0, 1]).
        levels: Rung levels; results are reduced to one per rung, as the reference's
            ``searcher_data="rungs"``. ``None`` models every reported result.
        mode: ``"min"`` or ``"max"``.
        reduction_factor: ``eta`` of the successive-halving rule that stops (or pauses) trials at
            ``levels``. Expected improvement is then weighted by the modelled chance that a new
            trial passes every rung below the acquisition level. ``None`` (default) when trials
            run to the end, or nothing is known about the scheduler.
        seed: Seed for random draws, fantasies and optimiser starts.
        options: How the model proposes (:class:`mobster.options.SearcherOptions`); its fields
            may also be given as keyword arguments, which override it.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        max_resource: int,
        levels: Sequence[int] | None = None,
        mode: Literal["min", "max"] = "min",
        reduction_factor: float | None = None,
        seed: int | None = None,
        options: SearcherOptions | None = None,
        **overrides: Any,
    ) -> None:
        sign = rung_rules.minimising_sign(mode)  # also the check of mode
        if max_resource < 1:
            raise ValueError(f"max_resource must be >= 1, got {max_resource}")
        options = SearcherOptions.resolve(options, overrides, type(self).__name__)
        if reduction_factor is not None and not reduction_factor > 1:
            raise ValueError(f"reduction_factor must be > 1 or None, got {reduction_factor!r}")
        self.space = space
        self._coarse_floats = space.has_coarse_floats()
        self.max_resource = int(max_resource)
        self.levels = list(levels) if levels is not None else None
        self.mode = mode
        self._sign = sign
        self.options = options
        self.reduction_factor = reduction_factor
        self.tensor_kwargs = {"dtype": torch.float64, "device": torch.device(options.device)}
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._warm_start: dict[str, torch.Tensor] | None = None
        self._fitted_size = 0
        #: The last GP built and the hyperparameters it holds (the ``_warm_start`` object): a
        #: suggestion that keeps them gives it the new data instead of building the modules again.
        self._last_model: tuple[SingleTaskGP, dict[str, torch.Tensor]] | None = None
        #: The model of the last model-based suggestion, for :meth:`final_means`.
        self._posterior: FittedPosterior | None = None
        self._warned: set[str] = set()
        #: Configuration items -> its search coordinates and their bytes (the rescue store's key).
        self._units: dict[tuple, tuple[np.ndarray, bytes] | None] = {}
        #: Suggestions that fell back to a random configuration because the model failed.
        self.model_failures = 0
        #: Asked, with the number of observations, when a hyperparameter fit is due; ``False``
        #: keeps the current hyperparameters this time and only conditions the GP, or, before the
        #: first fit (none to keep), makes this suggestion random. Processes sharing a history set
        #: it so that one of them fits while the others wait for its result
        #: (``optuna_mobster._shared_fit``). ``None``: always fit.
        self.refit_gate: Callable[[int], bool] | None = None

    # ----- public -------------------------------------------------------------------------

    def suggest(self, trials: Sequence[TrialRecord]) -> dict[str, Any]:
        """A configuration not among ``trials`` (finished, running, paused or failed ones).

        Random for the first ``num_initial_random`` trials, for a ``random_fraction`` share of the
        others, and whenever the model cannot be fitted (with a warning). Raises ``LookupError``
        only when the space is exhausted.
        """
        return self.suggest_ranked(trials, count=1)[0]

    def suggest_ranked(self, trials: Sequence[TrialRecord], count: int) -> list[dict[str, Any]]:
        """:meth:`suggest`'s configuration first, then, for a model-based suggestion, up to
        ``count - 1`` runner-ups of the same acquisition optimisation (distinct, none among
        ``trials``), free of charge: what to propose when a process sampling at the same moment
        took the first. A random suggestion comes alone.
        """
        with self._lock:
            units = [self._unit_or_none(t) for t in trials]  # None: outside the space
            excluded = self._known(units)
            if self.space.dim == 0:  # a single configuration
                if trials:
                    raise LookupError("the search space holds one configuration and it was evaluated")
                return [self.space.from_unit(np.zeros(0))]
            if len(trials) < self.options.num_initial_random:
                return [self._random_config(excluded, centre=not trials)]
            if self._rng.random() < self.options.random_fraction:
                return [self._random_config(excluded)]
            observations, offenders = collect_observations(trials, self.levels, self._sign)
            self._warn_once(trials, offenders)
            if len({o.value for o in observations}) < 2:
                return [self._random_config(excluded)]
            if self._first_fit_elsewhere(len(observations)):
                return [self._random_config(excluded)]
            try:
                ranked = self._model_based_units(trials, units, observations, excluded, count)
            except LookupError:  # nothing new among the optimiser's candidates
                return [self._random_config(excluded)]
            except Exception as error:  # numerical failure of the GP: never break the study
                self.model_failures += 1
                warnings.warn(f"MOBSTER model failed ({error!r}); suggesting a random configuration", stacklevel=2)
                return [self._random_config(excluded)]
            return [self.space.from_unit(unit) for unit in ranked]

    def suggest_random(self, trials: Sequence[TrialRecord], rng: np.random.Generator | None = None) -> dict[str, Any]:
        """A random configuration not among ``trials``, whatever the model would say.

        With its own ``rng`` it never waits for a model-based suggestion running in another
        thread (the searcher's lock and generator are that one's). Raises ``LookupError`` only
        when the space is exhausted.
        """
        if self.space.dim == 0:  # one configuration: nothing random about it
            return self.suggest(trials)
        excluded = self._known([self._unit_or_none(t) for t in trials])  # the lock guards only _rng
        if rng is not None:
            return self._random_config(excluded, rng=rng)
        with self._lock:
            return self._random_config(excluded)

    def is_among(self, config: dict[str, Any], others: Sequence[dict[str, Any]]) -> bool:
        """Whether ``config`` counts as one of ``others``, as :meth:`suggest` judges "already tried".

        Configurations outside the space are never matched.
        """
        unit = self._unit_or_none(TrialRecord(config))
        units = [u for u in (self._unit_or_none(TrialRecord(other)) for other in others) if u is not None]
        if unit is None or not units:
            return False
        return self.space.dim == 0 or unit in KnownConfigurations(units, self.space.dim)

    def final_means(self, trials: Sequence[TrialRecord], fresh: Sequence[int] = ()) -> np.ndarray | None:
        """The GP's posterior mean at the full resource for every trial's configuration, in the
        model's units (minimised, warped and standardised: only their order means something).

        Answered in milliseconds from the model of the last model-based suggestion, never by
        fitting one: the rung results of the trials at indices ``fresh`` that this model has not
        seen are added to its data (hyperparameters kept). A configuration outside the space
        gets ``inf``. ``None`` while no model-based suggestion has been made (the initial random
        trials, too little data) or when the GP fails numerically.
        """
        posterior = self._posterior  # read once: a background suggestion may replace it
        if posterior is None or self.space.dim == 0:
            return None
        entries = [self._unit_entry(t) for t in trials]
        inside = [i for i, entry in enumerate(entries) if entry is not None]
        means = np.full(len(trials), np.inf)
        if not inside:
            return means
        extra_units, extra_resources, extra_values = [], [], []
        for index in fresh:
            if entries[index] is None:
                continue
            unit, key = entries[index]
            for resource, value in rung_results(trials[index].results, self.levels).items():
                if math.isfinite(value) and (key, int(resource)) not in posterior.seen:
                    extra_units.append(unit)
                    extra_resources.append(resource)
                    extra_values.append(self._sign * float(value))
        try:
            keys = [entries[i][1] for i in inside]
            missing = posterior.missing(keys)  # GP inputs computed only for configurations new to it
            if missing:
                new_units = np.stack([entries[inside[k]][0] for k in missing])
                new_x = self._model_inputs(new_units, [self.max_resource] * len(missing))
                posterior.remember_at_full([keys[k] for k in missing], new_x)
            extra_x = extra_y = None  # no new results: the stored means as they are
            if extra_units:
                extra_x = self._model_inputs(np.array(extra_units), extra_resources)
                extra_y = torch.tensor(posterior.transform(np.array(extra_values)), **self.tensor_kwargs)
            means[inside] = posterior.predict_at_full(keys, extra_x, extra_y).cpu().numpy()
        except Exception:  # numerical failure of the GP: let the plain rule decide
            return None
        return means

    def fit(self, trials: Sequence[TrialRecord]) -> bool:
        """Fit (or condition) the GP on the trials' results now and keep it for
        :meth:`final_means`, as a model-based suggestion does; ``False`` when there is too little
        data or the GP fails numerically (the previous model, if any, stays)."""
        with self._lock:
            units = [self._unit_or_none(t) for t in trials]
            observations, _ = collect_observations(trials, self.levels, self._sign)
            if self.space.dim == 0 or len({o.value for o in observations}) < 2:
                return False
            try:
                model, transform, _ = self._fit_observations(trials, observations, units)
                gp = ConditionedGP(model)
                self._posterior = self._rescue_posterior(trials, observations, gp, transform)
            except Exception:  # numerical failure of the GP
                return False
            return True

    def fitted_hyperparameters(self) -> tuple[dict[str, Any], int] | None:
        """The last fitted hyperparameters as plain lists (JSON-ready) and the number of
        observations they were fitted for; ``None`` before the first fit."""
        warm_start = self._warm_start
        if warm_start is None:
            return None
        return {name: value.cpu().tolist() for name, value in warm_start.items()}, self._fitted_size

    def adopt_hyperparameters(self, params: dict[str, Any], size: int) -> bool:
        """Use hyperparameters fitted elsewhere on ``size`` observations (another process sharing
        the history), if that is more data than this searcher's own last fit saw. The next
        suggestions then only condition the GP until the data grows past the refit factor."""
        with self._lock:
            if size <= self._fitted_size:
                return False
            try:
                tensors = {name: torch.tensor(value, **self.tensor_kwargs) for name, value in params.items()}
            except (TypeError, ValueError):
                return False  # not hyperparameters of this library: ignore them
            self._warm_start, self._fitted_size = tensors, int(size)
            return True

    def reseed(self, seed: int | None) -> None:
        """Reset the random generator (Optuna calls this in worker processes and threads)."""
        with self._lock:
            self._rng = np.random.default_rng(seed)

    # ----- helpers ------------------------------------------------------------------------

    def _known_test(self, excluded: KnownConfigurations) -> Callable[[np.ndarray], np.ndarray]:
        """For rows of candidates (``m x dim``), whether each one's configuration is known;
        compared after decoding only in spaces where decoding can merge nearby coordinates (see
        ``SearchSpace.has_coarse_floats``)."""
        if not self._coarse_floats:
            return excluded.contains

        def known(units: np.ndarray) -> np.ndarray:
            realised = np.array([self.space.realised(unit) for unit in units]).reshape(units.shape)
            return excluded.contains(units) | excluded.contains(realised)

        return known

    def _known(self, units: Sequence[np.ndarray | None]) -> KnownConfigurations:
        return KnownConfigurations([unit for unit in units if unit is not None], self.space.dim)

    def _unit_or_none(self, trial: TrialRecord) -> np.ndarray | None:
        """The trial's search coordinates, or ``None`` for a configuration outside the space."""
        entry = self._unit_entry(trial)
        return None if entry is None else entry[0]

    def _unit_entry(self, trial: TrialRecord) -> tuple[np.ndarray, bytes] | None:
        """The trial's search coordinates and their bytes, or ``None`` outside the space.

        Remembered per configuration: every call sees the whole history again, and encoding it
        anew was a fifth of a suggestion's time at 2,000 trials.
        """
        try:
            key = tuple(trial.config.items())
            return self._units[key]
        except TypeError:  # an unhashable value: encode it, and never remember it
            key = None
        except KeyError:
            pass
        try:
            unit = self.space.to_unit(trial.config)
        except (KeyError, ValueError, TypeError):
            unit = None
        entry = None
        if unit is not None:
            unit.flags.writeable = False  # shared by every later call
            entry = (unit, unit.tobytes())
        if key is not None:
            self._units[key] = entry
        return entry

    def _warn_once(self, trials: Sequence[TrialRecord], offenders: list[int]) -> None:
        for index in offenders:
            record = trials[index]
            name = record.name or f"with config {record.config}"
            message = f"MOBSTER: trial {name} reported a NaN/inf value; it is left out of the model"
            warn_once(self._warned, name, message, stacklevel=4)

    def _random_config(
        self, excluded: KnownConfigurations, centre: bool = False, rng: np.random.Generator | None = None
    ) -> dict[str, Any]:
        rng = self._rng if rng is None else rng
        if centre:
            middle = np.array(
                [
                    (len(self.space.categorical_values()[j]) - 1) // 2 if j in self.space.categorical_values() else 0.5
                    for j in range(self.space.dim)
                ],
                dtype=float,
            )
            candidates = [self.space.round_unit(middle)]
        else:
            candidates = []
        candidates.extend(self.space.sample_unit(rng, 256))
        new = np.flatnonzero(~self._known_test(excluded)(np.array(candidates)))
        if len(new):
            return self.space.from_unit(candidates[new[0]])
        # Random draws found nothing new: enumerate small discrete spaces before giving up,
        # taking configurations near known ones (but not known ones) when nothing else is left.
        every = self.space.enumerate_unit(ENUMERATION_LIMIT)
        if every is not None:
            left = [unit for unit in every if unit not in excluded]
            left = left or [unit for unit in every if not excluded.holds_exactly(unit)]
            if left:
                return self.space.from_unit(left[rng.integers(len(left))])
        raise LookupError("no configuration left that has not been evaluated")

    def _resource_unit(self, resource: float) -> float:
        # Linear map of [1, r_max] to (0, 1]: r = 1 becomes about 0.5 / r_max, as in the reference.
        return (resource - 0.5) / max(self.max_resource - 0.5, 0.5)

    def _model_inputs(self, units: np.ndarray, resources: Sequence[float]) -> torch.Tensor:
        features = self.space.features(torch.tensor(units, **self.tensor_kwargs))
        r = torch.tensor([self._resource_unit(r) for r in resources], **self.tensor_kwargs).unsqueeze(-1)
        return torch.cat([features, r], dim=-1)

    def _model_based_units(
        self,
        trials: Sequence[TrialRecord],
        all_units: Sequence[np.ndarray | None],
        observations: list[Observation],
        excluded: KnownConfigurations,
        count: int = 1,
    ) -> np.ndarray:
        """Search coordinates of the acquisition's best ``count`` candidates, best first."""
        r_acq = acquisition_resource(observations)
        bars = self._rung_bars(observations)
        model, transform, units = self._fit_observations(trials, observations, all_units)
        noise = float(model.likelihood.noise.detach().mean())

        pending = [i for i, t in enumerate(trials) if t.pending_at is not None and all_units[i] is not None]
        incumbent_units = list(units.values()) + [all_units[i] for i in pending]
        incumbent_features = self.space.features(torch.tensor(np.stack(incumbent_units), **self.tensor_kwargs))

        pending_units = np.array([all_units[i] for i in pending]).reshape(len(pending), self.space.dim)
        pending_x = self._model_inputs(pending_units, [min(trials[i].pending_at, self.max_resource) for i in pending])
        with torch.no_grad():
            model = FantasizedModel(model, pending_x, self.options.num_fantasies, seed=int(self._rng.integers(2**31)))
            self._posterior = self._rescue_posterior(trials, observations, model.data_posterior, transform)
            per_fantasy = model.moments_at_resources(incumbent_features, (self._resource_unit(r_acq),))[0][:, 0, :]
        best_f = per_fantasy.min(dim=0).values - self.options.ei_jitter
        anchors = np.stack(incumbent_units)[per_fantasy.mean(-1).argsort()[:NUM_ANCHORS].cpu().numpy()]

        acquisition = FantasyAveragedLogEI(
            model,
            best_f,
            self.space.features,
            self._resource_unit(r_acq),
            self._schedule(bars, transform, r_acq),
            noise,
            self.options.cost_aware,
        )
        return rank_acquisition_candidates(
            acquisition,
            self.space,
            self._known_test(excluded),
            self._rng,
            self.tensor_kwargs,
            anchors,
            count,
        )

    def _rescue_posterior(
        self,
        trials: Sequence[TrialRecord],
        observations: list[Observation],
        gp: ConditionedGP,
        transform: TargetTransform,
    ) -> FittedPosterior:
        """This suggestion's model, kept for :meth:`final_means`, with the predictions at the full
        resource of the latest ``RESCUE_PRECOMPUTED`` trials with results or still running
        already computed here (in Ray, a driver thread), so that a rescue decision only adds its
        trial's new results. Running trials count: at many concurrent trials, most rescue
        decisions are about a trial whose first result came after the last suggestion."""
        entries = [self._unit_entry(t) for t in trials]  # remembered: coordinates and store keys
        seen = frozenset((entries[o.trial][1], o.resource) for o in observations)
        posterior = FittedPosterior(gp, transform, seen)
        ahead = [
            e for t, e in zip(trials, entries) if e is not None and (t.results or t.pending_at is not None)
        ][-RESCUE_PRECOMPUTED:]
        if ahead:
            units = np.stack([unit for unit, _ in ahead])
            x = self._model_inputs(units, [self.max_resource] * len(units))
            posterior.remember_at_full([key for _, key in ahead], x)
        return posterior

    def _fit_observations(
        self, trials: Sequence[TrialRecord], observations: list[Observation], all_units: Sequence[np.ndarray | None]
    ) -> tuple[SingleTaskGP, TargetTransform, dict[int, np.ndarray]]:
        """The GP conditioned on the observations (subsampled beyond the data cap), the transform
        of its targets, and the search coordinates of every trial it saw (by record index).

        Hyperparameters, when they are refitted, are fitted on a rung-aware subset of at most
        ``FIT_SUBSET`` of these observations.
        """
        total = len(observations)
        observations = subsample(observations, self.options.max_observations, self._rng)
        units = {o.trial: all_units[o.trial] for o in observations}
        train_x = self._model_inputs(np.stack([units[o.trial] for o in observations]), [o.resource for o in observations])
        values = np.array([o.value for o in observations])
        transform = TargetTransform.fit(values, warp=self.options.warp_outputs)
        train_y = torch.tensor(transform(values), **self.tensor_kwargs).unsqueeze(-1)
        refit = self._refit_now(total)
        fit_rows = None
        if len(observations) > FIT_SUBSET and refit:
            row_of = {(o.trial, o.resource): row for row, o in enumerate(observations)}
            fit_rows = [row_of[(o.trial, o.resource)] for o in subsample(observations, FIT_SUBSET, self._rng)]
        return self._fit(train_x, train_y, total, refit, fit_rows), transform, units

    def _rung_bars(self, observations: list[Observation]) -> dict[int, float]:
        """Rung level -> the value a new trial must reach there to go on (rungs with data only)."""
        if self.reduction_factor is None or self.levels is None:
            return {}
        return rung_thresholds(observations, self.levels, self.levels[-1], self.reduction_factor)

    def _schedule(self, bars: dict[int, float], transform: TargetTransform, r_acq: int) -> RungSchedule | None:
        """The successive-halving rungs a new trial meets, in the GP's units."""
        if self.reduction_factor is None or self.levels is None:
            return None
        rungs = self.levels[:-1]
        return RungSchedule(
            resources=tuple(self._resource_unit(level) for level in rungs),
            bars=tuple(float(transform(bars[level])) if level in bars else math.inf for level in rungs),
            epochs=tuple(float(b - a) for a, b in zip([0, *self.levels[:-1]], self.levels)),
            before_acquisition=sum(level < r_acq for level in rungs),
        )

    def _first_fit_elsewhere(self, total: int) -> bool:
        """Whether another process fits the first hyperparameters now (the :attr:`refit_gate`
        says so): the suggestion is random until it publishes them, rather than a second fit."""
        return self._warm_start is None and self.refit_gate is not None and not self.refit_gate(total)

    def _refit_now(self, total: int) -> bool:
        """Whether the hyperparameters are re-optimised for ``total`` observations: always when
        there are none yet (the gate, if any, was asked by :meth:`suggest`), else when the data
        grew past the refit factor and the :attr:`refit_gate` (which may write to a shared
        storage: ask once per model) agrees."""
        if self._warm_start is None:
            return True
        if not refit_due(total, self._fitted_size):
            return False
        return self.refit_gate is None or self.refit_gate(total)

    def _fit(
        self, train_x: torch.Tensor, train_y: torch.Tensor, total: int, refit: bool, fit_rows: list[int] | None = None
    ) -> SingleTaskGP:
        """The GP on the data; hyperparameters are re-optimised only when ``refit`` (or when the
        kept ones do not fit this model), on the rows ``fit_rows`` only when given (the GP is then
        conditioned on all rows).

        ``total`` counts observations before the data cap, so refits continue beyond the cap.
        """
        if not refit:
            if self._last_model is not None and self._last_model[1] is self._warm_start:
                model = self._last_model[0]  # its hyperparameters are the kept ones
                model.set_train_data(train_x, train_y.squeeze(-1), strict=False)
                return model
            model = build_model(train_x, train_y, self.options.kernel)
            if apply_hyperparameters(model, self._warm_start):
                self._last_model = (model.eval(), self._warm_start)
                return model
        fit_x, fit_y = (train_x, train_y) if fit_rows is None else (train_x[fit_rows], train_y[fit_rows])
        last_error: Exception | None = None
        for attempt in range(FIT_ATTEMPTS):
            model = build_model(fit_x, fit_y, self.options.kernel)
            try:
                with cholesky_jitter(attempt):
                    fit_model(model, self._warm_start if attempt == 0 else None)
            except Exception as error:  # NotPSDError and friends: retry with more jitter
                last_error = error
                continue
            self._warm_start = hyperparameters(model)
            self._fitted_size = total
            if fit_rows is not None:
                model = build_model(train_x, train_y, self.options.kernel)
                apply_hyperparameters(model, self._warm_start)
            self._last_model = (model.eval(), self._warm_start)
            return model
        raise RuntimeError(f"GP fit failed {FIT_ATTEMPTS} times") from last_error


__all__ = ["ModelBasedSearcher", "TrialRecord"]
