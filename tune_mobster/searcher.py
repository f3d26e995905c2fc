"""``MobsterSearcher``: MOBSTER's model-based suggestions as a Ray Tune ``Searcher``.

The searcher keeps the whole history (configuration and rung-level results of every trial) and
hands it to the core :class:`mobster.searcher.ModelBasedSearcher`, which is stateless with
respect to data. Keeping the history here is what lets an experiment resume: ``save`` and
``restore`` persist it, and :class:`tune_mobster.MobsterScheduler` rebuilds its rung state
from it after ``Tuner.restore``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from ray import cloudpickle
from ray.tune.search import UNDEFINED_METRIC_MODE, UNDEFINED_SEARCH_SPACE, Searcher

from mobster.history import TrialRecord
from mobster.multiobjective import MultiObjectiveSearcher
from mobster.rungs import next_level, rung_levels, validate_resources
from mobster.options import SearcherOptions
from mobster.searcher import ModelBasedSearcher
from mobster.warn import is_finite, warn_once
from mobster.yielding import exempt_existing_objects_from_collection, urgent
from tune_mobster import objectives
from tune_mobster.search_space import RaySearchSpace, convert_search_space

#: Bumped when the layout of the saved state changes.
STATE_VERSION = 1
#: Seconds after which the driver thread computing a suggestion yields the GIL to a waiting one.
SWITCH_INTERVAL = 0.0005


@dataclass
class _Trial:
    """What the searcher knows about one trial."""

    config: dict[str, Any]  # core configuration (parameter name -> core value)
    # resource -> finite reported value (a tuple of them with several objectives)
    results: dict[float, float | tuple[float, ...]] = field(default_factory=dict)
    last_resource: float | None = None  # latest resource reported, NaN values included
    finished: bool = False  # completed, stopped or failed
    paused: bool = False
    first_level: int | None = None  # first rung of its Hyperband bracket, set by the scheduler


class MobsterSearcher(Searcher, objectives.ObjectiveNames):
    """MOBSTER's searcher: a joint Gaussian process over (configuration, resource).

    It observes the results of every trial at rung levels, fantasizes running and paused
    trials at their next rung, and suggests the configuration that maximises expected
    improvement at the largest well-populated rung (Klein et al., 2020).

    With :class:`tune_mobster.MobsterScheduler` the two agree on ``time_attr`` and the rung
    levels by themselves: the scheduler's settings win. Used with Ray's ``ASHAScheduler`` or
    with FIFO (no scheduler), the searcher models results at its own rung levels
    ``grace_period * reduction_factor**k`` up to ``max_t``; pass the scheduler's values to
    make them coincide. With FIFO every trial runs to the end, so the model sees full learning
    curves and acquires at the full budget once three trials have finished.

    Several objectives: give ``metric`` and ``mode`` as lists of the same length
    (``metric=["error", "params"], mode=["min", "min"]``), here and on the
    ``MobsterScheduler`` (``tune.TuneConfig`` refuses a list ``mode``: leave its ``metric``
    and ``mode`` unset). The GP is then fitted to ParEGO's random scalarisations of the
    results (:class:`mobster.multiobjective.MultiObjectiveSearcher`), one random weighting per
    suggestion, so that suggestions spread over the Pareto front; results are recorded as tuples
    of the metrics' values (:meth:`reported_results`), a result missing one of the metrics is
    ignored, as one missing the metric is with one objective, and a tuple with a non-finite value
    is left out of the model (one warning per trial). :meth:`predicted_final` is then ``None``
    (the scheduler's ``rescue_by_model`` is off).

    Args:
        metric: The metric to optimise, or a list of metrics (or set a single one in
            ``tune.TuneConfig``).
        mode: ``"min"`` or ``"max"``, or a list of them, one per metric (or set a single one in
            ``tune.TuneConfig``).
        points_to_evaluate: Configurations (nested like ``param_space``) to run first.
        seed: Seed of the random draws, so that a run can be repeated.
        space: A ``param_space``-like dict of ``tune.*`` domains, if not given to the Tuner.
        time_attr: The result key that counts the resource (training iterations, epochs).
        max_t: The maximum resource per trial. ``None``: taken from the scheduler, else from
            ``RunConfig(stop={time_attr: ...})``, else the largest resource reported so far.
        grace_period: The first rung level when no ``MobsterScheduler`` is used.
        reduction_factor: The spacing of rung levels when no ``MobsterScheduler`` is used.
        max_concurrent: Maximum running trials; paused trials do not count. ``0``: no limit.
            ``tune.TuneConfig(max_concurrent_trials=...)`` sets it too.
        device: ``"cpu"`` or ``"cuda"``: where the GP runs (always on the driver).
        background: Compute model-based suggestions in a driver thread (default). Ray's event
            loop runs ``suggest`` and every scheduler callback, and while it waits, no result
            is processed, no trial starts and function trainables wait in ``tune.report``. In
            the background, the next configuration is computed as soon as one is handed out
            (with that one fantasized as pending), on the history as it was then; ``suggest``
            returns it at once, or a random configuration if it is not ready yet (counted in
            :attr:`random_fallbacks`), so that a free slot never waits. Results then depend on
            timing: ``False`` computes each suggestion inside ``suggest``, the reproducible
            mode for seeded runs and tests. The thread's start calls ``gc.freeze()`` once (see
            :func:`mobster.yielding.exempt_existing_objects_from_collection`).
        options: How the model proposes, a :class:`mobster.options.SearcherOptions` (kernel,
            num_initial_random, num_fantasies, max_observations, cost_aware, warp_outputs,
            random_fraction, ei_jitter, device), the same value ``MobsterSampler`` takes. Its
            fields may also be given as keyword arguments (``MobsterSearcher(kernel="matern52")``),
            which override it.
    """

    def __init__(
        self,
        metric: str | Sequence[str] | None = None,
        mode: str | Sequence[str] | None = None,
        *,
        points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
        seed: int | None = None,
        space: Mapping[str, Any] | None = None,
        time_attr: str = "training_iteration",
        max_t: int | None = None,
        grace_period: int = 1,
        reduction_factor: float = 3,
        max_concurrent: int = 0,
        background: bool = True,
        options: SearcherOptions | None = None,
        **overrides: Any,
    ) -> None:
        metric, mode = objectives.resolve_objectives(metric, mode, type(self).__name__)
        validate_resources(grace_period, max_t if max_t is not None else grace_period, reduction_factor)
        options = SearcherOptions.resolve(options, overrides, type(self).__name__)
        device = options.device
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            # The GP runs on the driver, where the searcher is built: fail before the experiment.
            raise ValueError(f"device={device!r}, but CUDA is not available on the driver, where the GP runs")
        super().__init__(metric=metric, mode=mode)
        self._seed = seed
        self._time_attr = time_attr
        self._max_t = max_t
        self._stop_max_t: int | None = None
        self._grace_period = grace_period
        self._reduction_factor = reduction_factor
        self._scheduler_levels: list[int] | None = None
        # The scheduler's eta when a MobsterScheduler stops or pauses trials (None otherwise).
        self._scheduler_eta: float | None = None
        self._options = options
        self._max_concurrent = max_concurrent
        self._background = background
        self._executor: ThreadPoolExecutor | None = None
        self._future: Future | None = None
        # Random configurations handed out while the driver thread was still computing.
        self._num_fallbacks = 0
        self._fallback_rng = np.random.default_rng(None if seed is None else seed + 1)
        self._trials: dict[str, _Trial] = {}
        self._keys: dict[str, tuple] = {}  # trial -> its configuration's key (see _is_taken)
        self._nan_warned: set[str] = set()
        self._space: RaySearchSpace | None = None
        self._raw_points = [dict(p) for p in points_to_evaluate or []]
        self._points: list[dict[str, Any]] = []
        self._core: ModelBasedSearcher | MultiObjectiveSearcher | None = None
        self._core_key: tuple | None = None
        if space:
            self._set_space(space)

    # ----- Ray's Searcher API -------------------------------------------------------------

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        self._check_tune_objective(metric, mode)
        if self._space is not None:
            return False
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        stop = spec.get("stop")
        if isinstance(stop, Mapping) and isinstance(stop.get(self._time_attr), (int, float)):
            self._stop_max_t = int(stop[self._time_attr])
        self._set_space(config)
        return True

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        # Taking over concurrency keeps paused trials from holding ConcurrencyLimiter slots.
        self._max_concurrent = max_concurrent
        return True

    @urgent()  # ahead of the driver thread's model (see mobster.yielding)
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self._space is None:
            raise RuntimeError(UNDEFINED_SEARCH_SPACE.format(cls=type(self).__name__, space="space"))
        if not self._metric or not self._mode:
            raise RuntimeError(
                UNDEFINED_METRIC_MODE.format(cls=type(self).__name__, metric=self._metric, mode=self._mode)
            )
        if self._max_concurrent > 0 and self._num_running() >= self._max_concurrent:
            return None
        config = self._next_point()
        if config is None:
            try:
                config = self._model_suggestion()
            except LookupError:  # every configuration of a finite space has been tried
                return Searcher.FINISHED
        self._trials[trial_id] = _Trial(config=config)
        if self._in_background() and self._future is None:
            self._start_next()  # ready by the next call, with this trial fantasized as pending
        return self._space.to_ray(config)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        trial = self._trials.get(trial_id)
        if trial is None:
            return
        # Not unpaused here: Ray reports the result a trial is paused on after on_pause.
        self._record(trial_id, trial, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        # Idempotent: after Tuner.restore a trial can complete twice.
        trial = self._trials.get(trial_id)
        if trial is None:
            return
        if result:
            # The result on which a scheduler stops a trial arrives only here.
            self._record(trial_id, trial, result)
        trial.finished = True
        trial.paused = False

    def on_pause(self, trial_id: str) -> None:
        """A scheduler paused the trial: it no longer counts against ``max_concurrent``."""
        if trial_id in self._trials:
            self._trials[trial_id].paused = True

    def on_unpause(self, trial_id: str) -> None:
        """A scheduler resumed the trial."""
        if trial_id in self._trials:
            self._trials[trial_id].paused = False

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            cloudpickle.dump(self._state(), file)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            state = cloudpickle.load(file)
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"{checkpoint_path}: searcher state of an unknown version {state.get('version')}")
        if isinstance(state.get("_core_options"), dict):  # saved before options were one value
            state["_options"] = SearcherOptions(**state.pop("_core_options"))
        for key, value in state.items():
            if key != "version":
                setattr(self, key, value)
        self._keys = {}
        self._core = None  # refitted on the restored history at the next suggestion
        self._core_key = None
        self._future = None

    # ----- the MobsterScheduler handshake ------------------------------------------------

    def adopt_schedule(self, time_attr: str, levels: Sequence[int], reduction_factor: float | None = None) -> None:
        """Use a scheduler's resource attribute, rung levels and reduction factor (called by
        ``MobsterScheduler``): suggestions then weigh the chance of passing its rungs."""
        self._time_attr = time_attr
        self._scheduler_levels = list(levels)
        self._scheduler_eta = reduction_factor

    def set_bracket_start(self, trial_id: str, level: int) -> None:
        """Record the first rung of the trial's Hyperband bracket (called by the scheduler)."""
        if trial_id in self._trials:
            self._trials[trial_id].first_level = level

    def bracket_start(self, trial_id: str) -> int | None:
        """The first rung of the trial's bracket, if known (it survives ``Tuner.restore``)."""
        trial = self._trials.get(trial_id)
        return trial.first_level if trial else None

    def reported_results(self, trial_id: str) -> dict[float, float | tuple[float, ...]]:
        """Resource level to the finite metric value reported there (as reported, not negated;
        with several objectives a tuple of the metrics' values, in the order of ``metric``)."""
        trial = self._trials.get(trial_id)
        return dict(trial.results) if trial else {}

    def predicted_final(
        self, trial_id: str, result: Mapping[str, Any], among: Collection[str] | None = None
    ) -> dict[str, float] | None:
        """Trial id -> the GP's posterior mean at ``max_t`` (minimised, model units: only the order
        means something) for every trial with results (of those in ``among`` and ``trial_id``
        when given), after recording ``result`` of ``trial_id`` (the scheduler decides on a
        result before the searcher is told of it). ``None`` while the model is not used (see
        :meth:`mobster.searcher.ModelBasedSearcher.final_means`), and always with several
        objectives (no single value at ``max_t`` ranks the trials).
        """
        trial = self._trials.get(trial_id)
        if trial is None or self._space is None or objectives.is_multi(self._metric):
            return None
        self._record(trial_id, trial, result)  # idempotent: on_trial_result records it again
        # The core answers from the model of its last suggestion (never fitting one here, in
        # Ray's event loop), with this trial's new results added to its data.
        # Read-only views (no copies, no pending levels): the core reads configurations, and
        # results only of the fresh trial. This runs at every rung result that would stop a trial.
        wanted = self._trials.keys() if among is None else {*among, trial_id}
        with_results = [
            (i, TrialRecord(config=t.config, results=t.results))
            for i, t in self._trials.items()
            if i in wanted and t.results
        ]
        fresh = [k for k, (i, _) in enumerate(with_results) if i == trial_id]
        means = self._core_searcher().final_means([record for _, record in with_results], fresh=fresh)
        return None if means is None else {i: float(mean) for (i, _), mean in zip(with_results, means)}

    @property
    def random_fallbacks(self) -> int:
        """Suggestions that were random because the driver thread had not finished the model's
        next one (background mode only): a high count means trials are requested faster than
        the model computes, and the search is closer to random search there."""
        return self._num_fallbacks

    @property
    def rung_levels(self) -> list[int]:
        """The rung levels results are modelled at (and pending trials fantasized at)."""
        if self._scheduler_levels is not None:
            return list(self._scheduler_levels)
        max_t = self._max_t or self._stop_max_t
        if max_t is None:
            seen = [t.last_resource for t in self._trials.values() if t.last_resource is not None]
            max_t = max([self._grace_period] + [int(math.ceil(r)) for r in seen])
        return rung_levels(self._grace_period, int(max_t), self._reduction_factor)

    # ----- internals ----------------------------------------------------------------------

    def _check_tune_objective(self, metric: Any, mode: Any) -> None:
        """Refuse what ``tune.TuneConfig`` sets when it would mix one objective with several:
        before the experiment starts, not at the first result."""
        if not any(isinstance(v, (list, tuple)) for v in (self._metric, metric, mode)):
            return  # one objective: TuneConfig's metric and mode win, as always
        for name, ours, theirs in (("metric", self._metric, metric), ("mode", self._mode, mode)):
            if ours and theirs and objectives.names(ours) != objectives.names(theirs):
                raise ValueError(
                    f"{type(self).__name__} has {name}={ours!r} but tune.TuneConfig sets {name}={theirs!r}; "
                    "with several objectives give metric and mode as lists to MobsterSearcher and "
                    "MobsterScheduler only (tune.TuneConfig refuses a list mode)"
                )
        objectives.resolve_objectives(metric or self._metric, mode or self._mode, type(self).__name__)

    def _set_space(self, param_space: Mapping[str, Any]) -> None:
        self._space = convert_search_space(param_space)
        self._points = [self._space.to_core(point) for point in self._raw_points]

    def _next_point(self) -> dict[str, Any] | None:
        while self._points:
            point = self._points.pop(0)
            if not self._is_taken(point):
                return point
        return None

    def _is_taken(self, config: dict[str, Any]) -> bool:
        """Whether a trial already holds ``config`` (up to rounding)."""
        assert self._space is not None
        space = self._space.space
        for trial_id, trial in self._trials.items():  # each trial's key computed once
            if trial_id not in self._keys:
                self._keys[trial_id] = space.config_key(trial.config)
        return space.config_key(config) in set(self._keys.values())

    def _model_suggestion(self) -> dict[str, Any]:
        """The core's next configuration. In the background: the one computed since the last
        hand-out if it is ready, else a random configuration at once (a free slot never waits)."""
        if not self._in_background():
            return self._core_searcher().suggest(self._records())
        if self._future is not None and self._future.done():
            future, self._future = self._future, None
            config = future.result()  # re-raises what failed in the thread
            if not self._is_taken(config):  # else taken meanwhile by a point to evaluate
                return config
        if self._future is None:
            self._start_next()
        self._num_fallbacks += 1
        return self._core_searcher().suggest_random(self._records(), rng=self._fallback_rng)

    def _in_background(self) -> bool:
        """Whether suggestions are computed in the driver thread (not during the random start)."""
        return self._background and len(self._trials) >= self._options.num_initial_random

    def _start_next(self) -> None:
        """Compute the next suggestion in the driver thread, on the history as it is now."""
        if self._executor is None:
            # Full garbage collections stall Ray's loop for as long as they scan (see mobster.yielding).
            exempt_existing_objects_from_collection()
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mobster")
        self._future = self._executor.submit(_suggest_yielding, self._core_searcher(), self._records())

    def _num_running(self) -> int:
        return sum(not t.finished and not t.paused for t in self._trials.values())

    def _record(self, trial_id: str, trial: _Trial, result: Mapping[str, Any]) -> None:
        if objectives.is_multi(self._metric):
            self._record_vector(trial_id, trial, result)
            return
        resource = result.get(self._time_attr)
        if not isinstance(resource, (int, float)) or self._metric not in result:
            return
        trial.last_resource = resource if trial.last_resource is None else max(trial.last_resource, resource)
        value = result[self._metric]
        if is_finite(value):
            trial.results[resource] = float(value)
        else:
            message = (
                f"MobsterSearcher: trial {trial_id} reported {self._metric}={value!r} at "
                f"{self._time_attr}={resource}; non-finite values are left out of the model"
            )
            warn_once(self._nan_warned, trial_id, message, RuntimeWarning, stacklevel=2)

    def _record_vector(self, trial_id: str, trial: _Trial, result: Mapping[str, Any]) -> None:
        """``_record`` with several objectives: the metrics' values as one tuple."""
        resource = result.get(self._time_attr)
        values = objectives.reported_values(result, self.metrics)
        if not isinstance(resource, (int, float)) or values is None:
            return  # as a result without the metric with one objective
        trial.last_resource = resource if trial.last_resource is None else max(trial.last_resource, resource)
        if all(is_finite(value) for value in values):
            trial.results[resource] = tuple(float(value) for value in values)
        else:
            bad = ", ".join(f"{name}={value!r}" for name, value in zip(self.metrics, values) if not is_finite(value))
            message = (
                f"MobsterSearcher: trial {trial_id} reported {bad} at {self._time_attr}={resource}; "
                "results with a non-finite value are left out of the model"
            )
            warn_once(self._nan_warned, trial_id, message, RuntimeWarning, stacklevel=3)

    def _pending_level(self, trial: _Trial, levels: list[int]) -> int | None:
        """The rung at which a running or paused trial reports next (where it is fantasized)."""
        if trial.finished:
            return None
        if trial.first_level in levels:
            levels = levels[levels.index(trial.first_level) :]
        if trial.last_resource is None:
            return levels[0]
        return next_level(levels, trial.last_resource)

    def _records(self, wanted: Collection[str] | None = None) -> list[TrialRecord]:
        """The core's view of every trial (only of those in ``wanted`` when given, in order)."""
        levels = self.rung_levels
        return [
            TrialRecord(config=t.config, results=dict(t.results), pending_at=self._pending_level(t, levels))
            for i, t in self._trials.items()
            if wanted is None or i in wanted
        ]

    def _core_searcher(self) -> ModelBasedSearcher | MultiObjectiveSearcher:
        """The core searcher for the current rung levels (rebuilt when they change)."""
        assert self._space is not None
        levels = self.rung_levels
        key = (tuple(levels), tuple(self.modes), self._scheduler_eta)
        if self._core is None or self._core_key != key:
            # A fresh seed per rebuild: a restored or rebuilt core must not replay old draws.
            seed = None if self._seed is None else self._seed + len(self._trials)
            if objectives.is_multi(self._mode):  # ParEGO's scalarisations over the one GP
                self._core = MultiObjectiveSearcher(
                    self._space.space,
                    modes=self.modes,
                    max_resource=levels[-1],
                    levels=levels,
                    reduction_factor=self._scheduler_eta,
                    seed=seed,
                    options=self._options,
                )
            else:
                self._core = ModelBasedSearcher(
                    self._space.space,
                    max_resource=levels[-1],
                    levels=levels,
                    mode=self._mode,
                    reduction_factor=self._scheduler_eta,
                    seed=seed,
                    options=self._options,
                )
            self._core_key = key
        return self._core

    def _state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "_metric": self._metric,
            "_mode": self._mode,
            "_seed": self._seed,
            "_time_attr": self._time_attr,
            "_max_t": self._max_t,
            "_stop_max_t": self._stop_max_t,
            "_grace_period": self._grace_period,
            "_reduction_factor": self._reduction_factor,
            "_scheduler_levels": self._scheduler_levels,
            "_scheduler_eta": self._scheduler_eta,
            "_options": self._options,
            "_max_concurrent": self._max_concurrent,
            "_background": self._background,
            "_trials": self._trials,
            "_nan_warned": self._nan_warned,
            "_space": self._space,
            "_raw_points": self._raw_points,
            "_points": self._points,
        }

    def __getstate__(self) -> dict[str, Any]:
        # The core holds a lock and torch state: never pickle it, rebuild it on demand.
        state = self.__dict__.copy()
        state["_core"] = None
        state["_core_key"] = None
        state["_executor"] = None  # threads and pending computations do not survive pickling
        state["_future"] = None
        return state


def _suggest_yielding(
    core: ModelBasedSearcher | MultiObjectiveSearcher, records: list[TrialRecord]
) -> dict[str, Any]:
    """``core.suggest(records)`` in the driver thread, handing the GIL back to Ray's event loop
    within ``SWITCH_INTERVAL`` (CPython's default is 5 ms) while it runs.

    Each torch call a callback makes releases the GIL, and taking it back from a busy thread
    waits up to one switch interval: beside a thread computing suggestions, the rescue's
    prediction for 200 trials (7 ms alone) took up to 72 ms at the default, 28 ms at 0.5 ms.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, SWITCH_INTERVAL))
    try:
        return core.suggest(records)
    finally:
        sys.setswitchinterval(previous)


def find_mobster_searcher(search_alg: Any) -> MobsterSearcher | None:
    """The ``MobsterSearcher`` inside Ray's wrappers (``SearchGenerator``, ``ConcurrencyLimiter``)."""
    node = search_alg
    while node is not None:
        if isinstance(node, MobsterSearcher):
            return node
        node = getattr(node, "searcher", None)
    return None
