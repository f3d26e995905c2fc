"""``MobsterScheduler``: asynchronous successive halving (stopping or promotion) for Ray Tune.

Decisions come from the core :class:`mobster.rung_table.RungTable`. This module adds what Ray
needs around it: a handshake with :class:`tune_mobster.MobsterSearcher` (shared rung levels,
pause notifications, brackets), resuming paused trials when a slot frees up, the end of the
budget, checkpoint checks, and rebuilding the rung state after ``Tuner.restore`` (Ray never
calls a scheduler's ``save``/``restore``; the restored scheduler is the one pickled when the
``Tuner`` was built).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from ray.tune.experiment import Trial
from ray.tune.result import DEFAULT_METRIC
from ray.tune.schedulers import TrialScheduler

from mobster.pareto import minimising_signs
from mobster.rung_table import RungTable, RungValue
from mobster.rungs import minimising_sign, rescued_by_model, rung_levels
from mobster.warn import is_finite, warn_once
from mobster.yielding import urgent
from tune_mobster import objectives
from tune_mobster.promotion import MissingCheckpointError
from tune_mobster.searcher import MobsterSearcher, find_mobster_searcher

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController

_DECISIONS = {
    "continue": TrialScheduler.CONTINUE,
    "stop": TrialScheduler.STOP,
    "complete": TrialScheduler.STOP,
    "pause": TrialScheduler.PAUSE,
}


class MobsterScheduler(TrialScheduler, objectives.ObjectiveNames):
    """MOBSTER's scheduler: asynchronous successive halving with Hyperband brackets.

    Rung levels are ``grace_period * reduction_factor**k`` below ``max_t``, and ``max_t``.

    * ``type="stopping"``: at each rung a trial continues if its value is in the top
      ``1/reduction_factor`` of all values recorded there so far, else it is stopped.
    * ``type="promotion"``: every trial pauses at each rung; when a slot frees up, the best
      paused trial in the top ``1/reduction_factor`` of its rung is resumed, otherwise a new
      trial starts. Needs a checkpoint with every rung-level report (raises
      :class:`tune_mobster.promotion.MissingCheckpointError` otherwise). Once no new trial
      can start, each rung sends on its best ``ceil(n / reduction_factor)`` trials and the
      other paused trials are stopped, so the experiment ends.

    Each new trial gets a bracket sampled from Hyperband's distribution (``brackets=1``:
    every trial starts at ``grace_period``). With a :class:`tune_mobster.MobsterSearcher` the
    searcher adopts these rung levels and ``time_attr``; with any other searcher the
    scheduler works alone. Non-finite metric values stop the trial at a rung (one warning).

    Several objectives (``metric=["error", "params"], mode=["min", "min"]``, lists of the same
    length, given here and to the ``MobsterSearcher``: ``tune.TuneConfig`` refuses a list
    ``mode``, so leave its ``metric`` and ``mode`` unset): "the top ``1/reduction_factor``" of a
    rung is then taken in MO-ASHA's order (non-dominated sorting, then crowding distance within
    a front; :func:`mobster.pareto.pareto_order`), for stopping and promotion alike. A
    non-finite value in any of the metrics stops the trial at a rung (one warning); a result
    missing one of them is ignored, as one missing the metric is with one objective.
    ``rescue_by_model`` is then off (the model predicts no single value to rank by; ``True``
    raises) and ``brackets="auto"`` is refused (it checks the ranking of one metric). The
    :attr:`metric` Ray reads is then ``None`` (Ray's check that each result holds the
    scheduler's metric takes one name; a paired ``MobsterSearcher`` lists them all); see
    :attr:`metrics` and :attr:`modes`.

    Args:
        time_attr: The result key that counts the resource; must increase.
        metric: The metric (or set it in ``tune.TuneConfig``), or a list of metrics.
        mode: ``"min"`` or ``"max"`` (or set it in ``tune.TuneConfig``), or a list of them, one
            per metric.
        max_t: The maximum resource per trial; trials are stopped there.
        grace_period: The first rung level.
        reduction_factor: ``eta``: the spacing of rungs and the share that goes on.
        brackets: Number of Hyperband brackets to sample from, or ``"auto"``: three until the
            first rung is seen to rank the trials that pass it as the second rung does (rank
            correlation 0.6 or more over 8 or more trials; see
            :func:`mobster.rungs.auto_bracket_count`), then one.
        type: ``"stopping"`` or ``"promotion"``.
        seed: Seed of the bracket sampler.
        rescue_by_model: Whether, with ``type="stopping"``, a trial the rule would stop goes on
            when the searcher's GP predicts its value at ``max_t`` in the top
            ``1/reduction_factor`` of the trials at that rung (learning curves cross: some
            configurations start slowly and finish best). ``None`` (default): on with a
            :class:`tune_mobster.MobsterSearcher` and the stopping rule and one objective, else
            the plain rule decides. ``True`` warns once without such a searcher and raises with
            ``type="promotion"`` (promotion resumes the best trials anyway); ``False`` is plain
            asynchronous successive halving.
    """

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: str | Sequence[str] | None = None,
        mode: str | Sequence[str] | None = None,
        max_t: int = 81,
        grace_period: int = 1,
        reduction_factor: float = 3,
        brackets: int | Literal["auto"] = 1,
        type: Literal["stopping", "promotion"] = "stopping",  # noqa: A002 (the name Syne Tune gives this choice)
        seed: int | None = None,
        rescue_by_model: bool | None = None,
    ) -> None:
        if type not in ("stopping", "promotion"):
            raise ValueError(f"type must be 'stopping' or 'promotion', got {type!r}")
        if rescue_by_model and type != "stopping":
            raise ValueError("rescue_by_model applies to type='stopping' (promotion resumes the best trials anyway)")
        # (`type` is the argument here, not the builtin.)
        metric, mode = objectives.resolve_objectives(metric, mode, self.__class__.__name__)
        num_objectives = len(metric) if objectives.is_multi(metric) else 1
        if rescue_by_model and num_objectives > 1:
            raise ValueError(
                "rescue_by_model needs one objective: the model's prediction at max_t ranks trials by one "
                f"metric, and with several ({metric}) no single value ranks them; leave it None or False"
            )
        if brackets != "auto" and (not isinstance(brackets, int) or brackets < 1):
            raise ValueError(f"brackets must be an integer >= 1 or 'auto', got {brackets!r}")
        super().__init__()
        self._time_attr = time_attr
        self._metric = metric
        self._mode = mode
        self._promotion = type == "promotion"
        self._levels = rung_levels(grace_period, max_t, reduction_factor)
        self._table = RungTable(
            self._levels,
            reduction_factor,
            promotion=self._promotion,
            brackets=brackets,
            seed=seed,
            objectives=num_objectives,
        )
        self._known: set[str] = set()  # trials added (their rung state restored if any)
        self._paused_at: dict[str, float] = {}  # paused trial -> resource it paused at
        self._resumed_from: dict[str, float] = {}  # resumed trial -> resource it paused at
        self._to_resume: list[str] = []  # trials promoted, to resume at the next step
        self._nan_warned: set[str] = set()
        self._num_stopped = 0
        self._num_paused = 0
        # None: on when a MobsterSearcher is linked (only the stopping rule stops at rungs, and
        # only one objective has a predicted value to rank by).
        self._rescue_by_model = rescue_by_model if type == "stopping" and num_objectives == 1 else False
        self._num_rescued = 0
        self._rescue_warned = False
        self._searcher: MobsterSearcher | None = None
        self._fatal: MissingCheckpointError | None = None  # raised at the next step

    @property
    def metric(self) -> str | None:
        """The metric Ray reads: the one metric, or ``None`` with several (see :attr:`metrics`)."""
        return None if objectives.is_multi(self._metric) else self._metric

    @property
    def rung_levels(self) -> list[int]:
        """All rung levels; the last one is ``max_t``."""
        return list(self._levels)

    def trial_rung_levels(self, trial_id: str) -> list[int]:
        """The rung levels of a trial's Hyperband bracket (from its first rung to ``max_t``)."""
        return self._table.trial_levels(trial_id)

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False  # Ray then says that both the scheduler and TuneConfig set them
        if isinstance(metric, (list, tuple)) or isinstance(mode, (list, tuple)):
            # The rung table's number of objectives is fixed when it is built.
            raise ValueError(
                f"tune.TuneConfig sets metric={metric!r} and mode={mode!r}: give several objectives to "
                "MobsterScheduler and MobsterSearcher directly, as lists of the same length"
            )
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        if self._metric is None and self._mode:
            self._metric = DEFAULT_METRIC
        return True

    # ----- trials come and go ---------------------------------------------------------------

    def on_trial_add(self, tune_controller: TuneController, trial: Trial) -> None:
        if not self._metric or not (objectives.is_multi(self._mode) or self._mode in ("min", "max")):
            raise ValueError(
                f"{type(self).__name__} has no valid `metric` ({self._metric}) or `mode` ({self._mode}): "
                "pass them to the scheduler or to tune.TuneConfig()"
            )
        searcher = self._link(tune_controller)
        trial_id = trial.trial_id
        start = searcher.bracket_start(trial_id) if searcher else None
        bracket = self._table.add_trial(trial_id, self._levels.index(start) if start in self._levels else None)
        if searcher:
            searcher.set_bracket_start(trial_id, self._levels[bracket])
            if trial.status != Trial.PAUSED:
                searcher.on_unpause(trial_id)  # a restored paused trial restarts as PENDING
        if trial_id not in self._known:
            self._known.add(trial_id)
            self._restore_rungs(trial, searcher)

    def on_trial_result(self, tune_controller: TuneController, trial: Trial, result: dict) -> str:
        resource = result.get(self._time_attr)
        if not isinstance(resource, (int, float)):
            return TrialScheduler.CONTINUE
        trial_id = trial.trial_id
        if not self._continues_where_paused(trial_id, resource):
            return TrialScheduler.STOP
        if not self._has_metrics(result):
            return TrialScheduler.STOP if resource >= self._levels[-1] else TrialScheduler.CONTINUE
        value = self._minimised(trial_id, result)
        decision = self._table.on_result(trial_id, resource, value)
        # The rescue is off with several objectives (checked before math.isfinite sees a tuple).
        if decision == "stop" and self._rescue_by_model is not False and math.isfinite(value) and self._rescued(trial_id, result):
            self._num_rescued += 1
            return TrialScheduler.CONTINUE
        if decision == "pause":
            return self._pause_or_continue(tune_controller, trial_id, resource)
        if decision in ("stop", "complete"):
            self._num_stopped += decision == "stop"
        return _DECISIONS[decision]

    def on_trial_complete(self, tune_controller: TuneController, trial: Trial, result: dict) -> None:
        # Also reached after our own STOP; a stopper's final result is recorded only here.
        resource = (result or {}).get(self._time_attr)
        if isinstance(resource, (int, float)) and self._has_metrics(result):
            self._table.on_result(trial.trial_id, resource, self._minimised(trial.trial_id, result))
        self._forget(trial.trial_id)
        self._slot_freed(tune_controller)

    def on_trial_error(self, tune_controller: TuneController, trial: Trial) -> None:
        self._forget(trial.trial_id)
        self._slot_freed(tune_controller)

    def on_trial_remove(self, tune_controller: TuneController, trial: Trial) -> None:
        self._forget(trial.trial_id)

    def choose_trial_to_run(self, tune_controller: TuneController) -> Trial | None:
        # Called at every step: only the promotion queue changes state, and only once per trial.
        if self._fatal is not None:
            raise self._fatal  # raised here, Ray does not wrap it in a TuneError
        trials = tune_controller.get_trials()
        by_id = {t.trial_id: t for t in trials}
        while self._to_resume:
            trial = by_id.get(self._to_resume.pop(0))
            if trial is not None and trial.status == Trial.PAUSED:
                return self._resume(trial)
        for trial in trials:
            if trial.status == Trial.PENDING:
                return trial
        paused = [t for t in trials if t.status == Trial.PAUSED]
        if not paused:
            return None
        if not self._promotion:
            return paused[0]  # paused by someone else: FIFO behaviour
        if any(t.status == Trial.RUNNING for t in trials):
            return None
        return self._when_idle(tune_controller, paused)

    def debug_string(self) -> str:
        kind = "promotion" if self._promotion else "stopping"
        rungs = " | ".join(f"{level}: {len(self._table.trials_at(level))}" for level in self._levels)
        return (
            f"Using MOBSTER {kind} scheduler: num_stopped={self._num_stopped}, num_paused={self._num_paused}, "
            f"num_rescued={self._num_rescued}; "
            f"values per rung {rungs}"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_searcher"] = None  # re-linked through the controller after unpickling
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A scheduler saved before the rescue existed restores with it off.
        state = {"_rescue_by_model": False, "_num_rescued": 0, "_rescue_warned": False, **state}
        self.__dict__.update(state)

    # ----- internals ----------------------------------------------------------------------

    def _link(self, tune_controller: TuneController) -> MobsterSearcher | None:
        """Find a MobsterSearcher among the controller's search algorithms and share the rungs."""
        if self._searcher is None:
            self._searcher = find_mobster_searcher(getattr(tune_controller, "search_alg", None))
            if self._searcher is not None:
                self._check_same_objective(self._searcher)
                self._searcher.adopt_schedule(self._time_attr, self._levels, self._table.reduction_factor)
        return self._searcher

    def _rescued(self, trial_id: str, result: dict) -> bool:
        """Whether the searcher's model sends on a trial the rule has just stopped at a rung."""
        if self._searcher is None:
            if self._rescue_by_model and not self._rescue_warned:  # asked for explicitly
                self._rescue_warned = True
                message = "MobsterScheduler: rescue_by_model needs a MobsterSearcher; the plain rule decides"
                warnings.warn(message, stacklevel=3)
            return False
        level = self._table.recorded_level(trial_id)
        rung_trials = self._table.trials_at(level) if level is not None else {}
        with urgent():  # ahead of the searcher's driver thread (see mobster.yielding)
            predicted = self._searcher.predicted_final(trial_id, result, among=rung_trials)
        return rescued_by_model(trial_id, rung_trials, predicted, self._table.reduction_factor)

    def _check_same_objective(self, searcher: MobsterSearcher) -> None:
        """Searcher and scheduler must optimise one metric in one direction."""
        for name, ours, theirs in (("metric", self._metric, searcher.metric), ("mode", self._mode, searcher.mode)):
            if ours and theirs and ours != theirs:
                raise ValueError(
                    f"MobsterScheduler has {name}={ours!r} but MobsterSearcher has {name}={theirs!r}; "
                    "set the same metric and mode on both (or only in tune.TuneConfig)"
                )

    def _restore_rungs(self, trial: Trial, searcher: MobsterSearcher | None) -> None:
        """Refill the rung table with a trial's past results (after ``Tuner.restore``).

        The searcher's restored history has every result; without a MobsterSearcher only the
        trial's last result is known. A new trial has neither.
        """
        trial_id = trial.trial_id
        results = searcher.reported_results(trial_id) if searcher else {}
        if not results:
            last = trial.last_result or {}
            if isinstance(last.get(self._time_attr), (int, float)) and self._has_metrics(last):
                results = {last[self._time_attr]: self._reported(last)}
        for resource in sorted(results):
            # As reported: one value, or a tuple in the order of the metrics.
            reported = results[resource]
            values = reported if objectives.is_multi(self._metric) else (reported,)
            value = self._minimised(trial_id, dict(zip(self.metrics, values)))
            self._table.on_result(trial_id, resource, value)
        if self._promotion and results:
            self._table.mark_promoted_below(trial_id, max(results))  # it reported beyond them

    def _has_metrics(self, result: dict) -> bool:
        """Whether ``result`` holds every metric (never, while no metric is set)."""
        return bool(self.metrics) and objectives.reported_values(result, self.metrics) is not None

    def _reported(self, result: dict) -> Any:
        """The metric's value in ``result`` as reported, or the tuple of the metrics' values."""
        values = objectives.reported_values(result, self.metrics)
        assert values is not None
        return values if objectives.is_multi(self._metric) else values[0]

    def _minimised(self, trial_id: str, result: dict) -> RungValue:
        if objectives.is_multi(self._metric):
            return self._minimised_vector(trial_id, result)
        value = result.get(self._metric)
        if not is_finite(value):
            message = (
                f"MobsterScheduler: trial {trial_id} reported {self._metric}={value!r}; "
                "a non-finite value stops the trial at its next rung"
            )
            warn_once(self._nan_warned, trial_id, message, RuntimeWarning, stacklevel=3)
            return math.nan
        return minimising_sign(self._mode) * float(value)

    def _minimised_vector(self, trial_id: str, result: dict) -> tuple[float, ...]:
        """The metrics' values, minimised, as the rung table takes them; NaN where one is not
        finite (the table then stops the trial at its next rung)."""
        values = [result.get(name) for name in self.metrics]
        bad = [f"{name}={value!r}" for name, value in zip(self.metrics, values) if not is_finite(value)]
        if bad:
            message = (
                f"MobsterScheduler: trial {trial_id} reported {', '.join(bad)}; "
                "a non-finite value stops the trial at its next rung"
            )
            warn_once(self._nan_warned, trial_id, message, RuntimeWarning, stacklevel=4)
        signs = minimising_signs(self.modes)
        return tuple(
            float(sign * value) if is_finite(value) else math.nan for sign, value in zip(signs, values)
        )

    def _pause_or_continue(self, tune_controller: TuneController, trial_id: str, resource: float) -> str:
        """A trial reached a rung under promotion: pause it, unless it is itself the one to resume."""
        chosen = self._choose_promotion(tune_controller, self._paused_ids(tune_controller) | {trial_id})
        if chosen == trial_id:
            return TrialScheduler.CONTINUE  # it would be resumed at once: save the round trip
        self._paused_at[trial_id] = resource
        self._num_paused += 1
        if self._searcher is not None:
            self._searcher.on_pause(trial_id)
        if chosen is not None:
            self._to_resume.append(chosen)  # it takes the slot this trial frees
        return TrialScheduler.PAUSE

    def _paused_ids(self, tune_controller: TuneController) -> set[str]:
        return {
            t.trial_id
            for t in tune_controller.get_trials()
            if t.status == Trial.PAUSED and t.trial_id not in self._to_resume
        }

    def _slot_freed(self, tune_controller: TuneController) -> None:
        """A running trial paused or ended: its slot goes to the best promotable paused trial."""
        if not self._promotion:
            return
        chosen = self._choose_promotion(tune_controller, self._paused_ids(tune_controller))
        if chosen is not None:
            self._to_resume.append(chosen)

    def _choose_promotion(self, tune_controller: TuneController, candidates: set[str]) -> str | None:
        """The candidate to run on (marked promoted), with the relaxed quota once no new trial comes."""
        chosen = self._table.choose_promotion(candidates)
        if chosen is None and self._no_new_trials(tune_controller):
            chosen = self._table.choose_promotion(candidates, finishing=True)
        if chosen is not None:
            self._table.mark_promoted(chosen)
        return chosen

    @staticmethod
    def _no_new_trials(tune_controller: TuneController) -> bool:
        if any(t.status == Trial.PENDING for t in tune_controller.get_trials()):
            return False
        search_alg = getattr(tune_controller, "search_alg", None)
        return search_alg is not None and search_alg.is_finished()

    def _when_idle(self, tune_controller: TuneController, paused: list[Trial]) -> Trial | None:
        """Nothing runs or waits to start, yet trials are paused: resume one, or stop them all."""
        by_id = {t.trial_id: t for t in paused}
        chosen = self._table.choose_promotion(set(by_id)) or self._table.choose_promotion(set(by_id), finishing=True)
        if chosen is not None:
            self._table.mark_promoted(chosen)
            return self._resume(by_id[chosen])
        search_alg = getattr(tune_controller, "search_alg", None)
        if search_alg is not None and not search_alg.is_finished():
            warnings.warn(
                "MobsterScheduler: every live trial is paused and the searcher starts no new one "
                "(a ConcurrencyLimiter counts paused trials); stopping the paused trials. "
                "Use MobsterSearcher, which does not count them, or no max_concurrent_trials.",
                RuntimeWarning,
                stacklevel=2,
            )
        for trial in paused:
            tune_controller.stop_trial(trial)
        return None

    def _resume(self, trial: Trial) -> Trial:
        if trial.checkpoint is None:
            raise MissingCheckpointError(
                trial.trial_id, "was paused at a rung but has no checkpoint to resume from", self._levels
            )
        self._resumed_from[trial.trial_id] = self._paused_at.pop(trial.trial_id, -math.inf)
        if self._searcher is not None:
            self._searcher.on_unpause(trial.trial_id)
        return trial

    def _continues_where_paused(self, trial_id: str, resource: float) -> bool:
        """The first result after a resume must come after the rung the trial paused at."""
        paused_at = self._resumed_from.pop(trial_id, None)
        if paused_at is None or resource > paused_at:
            return True
        self._fatal = MissingCheckpointError(
            trial_id,
            f"was paused at {self._time_attr}={paused_at} but resumed at {self._time_attr}={resource}: "
            "it restarted from an older checkpoint or from scratch",
            self._levels,
        )
        return False

    def _forget(self, trial_id: str) -> None:
        self._paused_at.pop(trial_id, None)
        self._resumed_from.pop(trial_id, None)
        if trial_id in self._to_resume:
            self._to_resume.remove(trial_id)
