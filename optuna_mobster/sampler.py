"""``MobsterSampler``: an Optuna sampler backed by the joint GP over (configuration, resource)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace, intersection_search_space
from optuna.trial import FrozenTrial, TrialState

from mobster import rungs as rung_rules
from mobster.history import TrialRecord
from mobster.multiobjective import MultiObjectiveSearcher
from mobster.options import SearcherOptions
from mobster.searcher import ModelBasedSearcher
from optuna_mobster import _claims as claims
from optuna_mobster import _shared_fit as shared_fit
from optuna_mobster import multiobjective as mo
from optuna_mobster._space import to_search_space
from optuna_mobster.pruner import MobsterPruner

if TYPE_CHECKING:
    from optuna.study import Study

_MODELLED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.FAIL)


class MobsterSampler(BaseSampler):
    """MOBSTER: asynchronous multi-fidelity Bayesian optimisation for Optuna studies.

    Pair it with :class:`~optuna_mobster.MobsterPruner` and report the metric at every resource
    level (``trial.report(value, step=epoch)``)::

        study = optuna.create_study(sampler=MobsterSampler(), pruner=MobsterPruner())

    What it models: the intermediate values of every COMPLETE, PRUNED and RUNNING trial (from
    storage, so processes sharing a database learn from each other), reduced to one value per rung
    level, with a joint GP over (parameters, step). RUNNING trials are fantasized at their next
    rung. New configurations maximise expected improvement at the largest rung with at least three
    observations. Rung levels come from the study's ``MobsterPruner``; with any other pruner (or
    none) the sampler uses its own ``min_resource`` / ``reduction_factor`` / ``max_resource`` (the
    largest step seen when ``None``) to pick the levels it models, and a trial without
    intermediate values counts as one observation at the full resource (so it behaves like a
    plain GP sampler on final values).

    Several objectives (``optuna.create_study(directions=[...])``): report each step's vector with
    :func:`optuna_mobster.report` (Optuna's ``trial.report`` refuses vectors); each suggestion then
    maximises expected improvement on a random ParEGO scalarisation of the objectives
    (:mod:`mobster.multiobjective`), and ``MobsterPruner`` stops trials by MO-ASHA's rule.

    Parameters in the intersection of all trials' spaces are modelled jointly; others (from
    define-by-run branches) are sampled at random, so conditional spaces work. FAIL trials are
    never proposed again. Thread-safe for ``study.optimize(n_jobs=...)``; threads and processes
    that sample at the same moment never take one configuration (each claims its choice in the
    trial's system attrs before returning it, see ``optuna_mobster._claims``). Processes sharing
    a storage fit the GP's hyperparameters once between them: one takes a lease and fits, publishes
    them in the study's system attrs, and the others use them (``optuna_mobster._shared_fit``).

    Args:
        seed: Seed for random draws, fantasies and optimiser starts.
        rung_aware: With a ``MobsterPruner``, weigh expected improvement by the modelled chance
            that a new trial passes the pruner's rungs on its way to the acquisition level.
        min_resource, reduction_factor, max_resource: Rung levels to model when the study's
            pruner is not a ``MobsterPruner``.
        options: How the model proposes, a :class:`mobster.options.SearcherOptions` (kernel,
            num_initial_random, num_fantasies, max_observations, cost_aware, warp_outputs,
            random_fraction, ei_jitter, device). Its fields may also be given as keyword
            arguments (``MobsterSampler(num_initial_random=10)``), which override it.
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        rung_aware: bool = True,
        min_resource: int = 1,
        reduction_factor: float = 3,
        max_resource: int | None = None,
        options: SearcherOptions | None = None,
        **overrides: Any,
    ) -> None:
        self._options = SearcherOptions.resolve(options, overrides, type(self).__name__)
        rung_rules.validate_resources(
            min_resource, min_resource if max_resource is None else max_resource, reduction_factor
        )
        self._seed = seed
        self._rung_aware = rung_aware
        self._min_resource = min_resource
        self._reduction_factor = reduction_factor
        self._max_resource = max_resource
        self._random = RandomSampler(seed=seed)
        self._intersection = IntersectionSearchSpace(include_pruned=True)
        self._searchers: dict[tuple, ModelBasedSearcher | MultiObjectiveSearcher] = {}
        self._lock = threading.Lock()

    # ----- Optuna's sampler interface ------------------------------------------------------

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        with self._lock:
            # Optuna's read of the study for this ask, which sample_relative then reuses.
            return self._intersection.calculate(study, use_cache=True)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        levels = self._levels(study)
        searcher = self._searcher(study, search_space, levels)
        key = _searcher_key(search_space, levels)
        shared_fit.adopt_shared(study, key, searcher)  # another process may have fitted already
        searcher.refit_gate = shared_fit.refit_gate(study, key)  # or may be fitting now
        fitted_before = searcher.fitted_hyperparameters()
        # Trials sampled at the same moment (other threads or processes) must not take the same
        # configuration: claim it in storage, and if a rival holds it too, claim the optimisation's
        # runner-up that no other trial holds, else sample again with the rival's as pending (see
        # optuna_mobster._claims). Processes that keep colliding follow the same model to the
        # same places, so the last round leaves the model for a random configuration.
        records = self._records(study, trial, search_space, levels, fresh=False)
        candidates = searcher.suggest_ranked(records, count=claims.MAX_ROUNDS)
        config = candidates[0]
        for round_ in range(1, claims.MAX_ROUNDS + 1):
            stands, rivals = claims.stake(study, trial, config, searcher.is_among)
            if stands or round_ == claims.MAX_ROUNDS:
                break
            if round_ == claims.MAX_ROUNDS - 1:
                config = searcher.suggest_random(records)
                continue
            untaken = [c for c in candidates[round_:] if not searcher.is_among(c, rivals)]
            if untaken:
                config = untaken[0]
            else:
                records = self._records(study, trial, search_space, levels)
                config = searcher.suggest(records)
        shared_fit.publish(study, key, searcher, fitted_before[1] if fitted_before else 0)
        return config

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        self._random.reseed_rng()
        with self._lock:
            for searcher in self._searchers.values():
                searcher.reseed(None)

    def predicted_final(
        self, study: Study, trial: FrozenTrial, trials: Sequence[FrozenTrial] | None = None
    ) -> dict[int, float] | None:
        """Trial number -> the GP's posterior mean at the full resource (minimised, model units:
        only the order means something), for ``trial`` and every other modelled trial; ``None``
        while the model is not used (see :meth:`mobster.searcher.ModelBasedSearcher.final_means`).

        ``trials``: the study's trials (any states) when the caller has just read them, as
        :class:`~optuna_mobster.MobsterPruner` has; otherwise they are read from storage.
        Always ``None`` in a multi-objective study (no rescue there).
        """
        if len(study.directions) > 1:
            return None
        if trials is None:
            trials = study.get_trials(deepcopy=False)
        search_space = intersection_search_space(list(trials), include_pruned=True)
        if not search_space or not all(name in trial.params for name in search_space):
            return None
        levels = self._levels(study)
        searcher = self._searcher(study, search_space, levels)
        records = [r for r in self._records(study, trial, search_space, levels, trials) if r.results]
        config = {name: trial.params[name] for name in search_space}
        records.append(TrialRecord(config, _results(trial, levels[-1]), name=str(trial.number)))
        means = searcher.final_means(records, fresh=[len(records) - 1])
        if means is None:
            return None
        return {int(record.name): float(mean) for record, mean in zip(records, means)}  # type: ignore[arg-type]

    @property
    def model_failures(self) -> int:
        """Suggestions that fell back to random because the GP could not be fitted or optimised."""
        with self._lock:
            return sum(searcher.model_failures for searcher in self._searchers.values())

    # ----- helpers -------------------------------------------------------------------------

    def _levels(self, study: Study) -> list[int]:
        """Rung levels to model, the last one the full resource."""
        if isinstance(study.pruner, MobsterPruner):  # its levels, without reading storage twice
            known = study.pruner.known_max_resource(study)
            min_resource, eta = study.pruner.min_resource, study.pruner.reduction_factor
        else:
            known, min_resource, eta = self._max_resource, self._min_resource, self._reduction_factor
        if known is None:
            steps = [step for t in study.get_trials(deepcopy=False) if (step := mo.last_step(t)) is not None]
            known = max(steps + [min_resource])
        return rung_rules.rung_levels(min_resource, known, eta)

    def _trial_levels(self, study: Study, trial: FrozenTrial, levels: list[int]) -> list[int]:
        if isinstance(study.pruner, MobsterPruner):
            return levels[study.pruner.bracket(study, trial, levels):]
        return levels

    def _searcher(
        self, study: Study, search_space: dict[str, BaseDistribution], levels: list[int]
    ) -> ModelBasedSearcher | MultiObjectiveSearcher:
        # One searcher per (space, levels): it keeps warm-start hyperparameters between calls.
        key = _searcher_key(search_space, levels)
        modes = mo.study_modes(study)
        # With MobsterPruner's stopping rule, suggestions weigh the chance of passing its rungs.
        use_rungs = self._rung_aware and isinstance(study.pruner, MobsterPruner)
        eta = study.pruner.reduction_factor if use_rungs else None
        with self._lock:
            if (key, *modes) not in self._searchers:
                common: dict[str, Any] = dict(
                    max_resource=levels[-1], levels=levels, reduction_factor=eta, options=self._options, seed=self._seed
                )
                space = to_search_space(search_space)
                self._searchers[(key, *modes)] = (
                    MultiObjectiveSearcher(space, modes=modes, **common)
                    if len(modes) > 1
                    else ModelBasedSearcher(space, mode=modes[0], **common)  # type: ignore[arg-type]
                )
            return self._searchers[(key, *modes)]

    def _records(
        self,
        study: Study,
        current: FrozenTrial,
        search_space: dict[str, BaseDistribution],
        levels: list[int],
        trials: Sequence[FrozenTrial] | None = None,
        fresh: bool = True,
    ) -> list[TrialRecord]:
        """Every other trial that has all modelled parameters, as the core's records (from
        ``trials`` if given, else from storage: read now if ``fresh``, else Optuna's read of this
        ask, the one :meth:`infer_relative_search_space` made a moment before)."""
        if trials is None:
            # Study._get_trials with use_cache is how Optuna's own samplers (TPE, GP) share one
            # read of the study per ask; there is no public equivalent.
            trials = study._get_trials(deepcopy=False, states=_MODELLED_STATES, use_cache=not fresh)
        records: list[TrialRecord] = []
        for trial in trials:
            if trial.number == current.number or trial.state not in _MODELLED_STATES:
                continue
            if not all(name in trial.params for name in search_space):
                # Sampled but not yet suggested (another thread or process): its claim is pending.
                claimed = claims.claimed_config(trial) if trial.state == TrialState.RUNNING else None
                if claimed is not None and all(name in claimed for name in search_space):
                    config = {name: claimed[name] for name in search_space}
                    records.append(TrialRecord(config, {}, pending_at=levels[0], name=str(trial.number)))
                continue
            config = {name: trial.params[name] for name in search_space}
            records.append(
                TrialRecord(
                    config=config,
                    results=_results(trial, levels[-1]),
                    pending_at=self._pending_at(study, trial, levels),
                    name=str(trial.number),
                )
            )
        return records

    def _pending_at(self, study: Study, trial: FrozenTrial, levels: Sequence[int]) -> int | None:
        if trial.state != TrialState.RUNNING:
            return None
        own_levels = self._trial_levels(study, trial, list(levels))
        return rung_rules.next_level(own_levels, mo.last_step(trial) or 0)


def _searcher_key(search_space: dict[str, BaseDistribution], levels: Sequence[int]) -> tuple:
    """What one core searcher models: the parameters' distributions and the rung levels."""
    return tuple(sorted((k, repr(v)) for k, v in search_space.items())), tuple(levels)


def _results(trial: FrozenTrial, max_resource: int) -> dict[int, Any]:
    """The trial's intermediate values; a finished trial without any counts at the full resource.
    In a multi-objective study, the vectors of :func:`optuna_mobster.report` (tuples).

    FAIL trials contribute nothing (the model ignores them; they only block re-proposal).
    """
    if trial.state == TrialState.FAIL:
        return {}
    if len(trial.values or ()) > 1 or any(key.startswith(mo.KEY_PREFIX) for key in trial.system_attrs):
        vectors: dict[int, Any] = dict(mo.intermediate_values(trial))
        if not vectors and trial.state == TrialState.COMPLETE and trial.values is not None:
            vectors[max_resource] = tuple(trial.values)
        return vectors
    if trial.intermediate_values:
        return {int(step): float(value) for step, value in trial.intermediate_values.items()}
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        return {max_resource: float(trial.value)}
    return {}
