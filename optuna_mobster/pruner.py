"""``MobsterPruner``: asynchronous successive halving with Hyperband brackets, decided from storage."""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from mobster import pareto
from mobster import rungs as rung_rules
from mobster.warn import is_finite, warn_once
from optuna_mobster import multiobjective as mo

if TYPE_CHECKING:
    from optuna.study import Study

#: Trials whose values at a rung count for its bar (FAIL trials' values are not trusted).
_RUNG_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
#: Stand-in for an unknown maximum resource while ``max_resource="auto"`` has no finished trial.
_UNBOUNDED = 10**9
#: Trial system attr that holds the bracket a trial was given under ``brackets="auto"``.
BRACKET_KEY = "mobster:bracket"


@runtime_checkable
class FinalPredictor(Protocol):
    """What the pruner asks of a sampler to rescue late bloomers (``MobsterSampler`` is one): the
    model's prediction at the full resource of every modelled trial. A protocol, so that this
    module does not import the sampler, which imports it for the rung levels."""

    def predicted_final(
        self, study: Study, trial: FrozenTrial, trials: Sequence[FrozenTrial] | None = None
    ) -> dict[int, float] | None: ...


class MobsterPruner(BasePruner):
    """Asynchronous successive halving (ASHA's stopping rule) with Hyperband bracket sampling.

    A trial reports its metric with ``trial.report(value, step)`` where the step is the resource
    (e.g. the epoch, starting at 1). When it reaches a rung of its bracket, it is pruned unless its
    value is in the top ``1 / reduction_factor`` of all values recorded at that rung so far (all
    trials, every bracket, itself included).

    Every decision is recomputed from the study's storage (intermediate values of all trials), and
    brackets are a hash of the study name and trial number (with ``brackets="auto"``, fixed at the
    trial's first report and kept in its system attrs), so several processes sharing one database
    decide consistently. A trial's value "at" rung ``r`` is its first report at or after
    ``r`` and before the next rung, so trials that report every few steps still fill the rungs.

    Args:
        min_resource: The first rung level (``r_min``).
        max_resource: The full resource (``r_max``), or ``"auto"``: the last step of the first
            finished trial (until then, rungs continue geometrically).
        reduction_factor: ``eta``; a ``1/eta`` share of trials continues at every rung.
        brackets: Number of Hyperband brackets; ``1`` (default, best for MOBSTER in the paper) is
            plain asynchronous successive halving. ``"auto"``: Hyperband's first three brackets
            until the trials that pass the first rung are seen to rank alike there and at the
            second (rank correlation 0.6 or more over 8 or more trials; see
            :func:`mobster.rungs.auto_bracket_count`), then one. Each trial keeps the bracket it
            gets at its first report.
        rescue_by_model: Whether a trial the rule would prune goes on when the sampler's GP
            predicts its value at the full resource in the top ``1/eta`` of the trials at that
            rung (learning curves cross: some configurations start slowly and finish best).
            ``None`` (default): on when the study's sampler is a
            :class:`~optuna_mobster.MobsterSampler`, else the plain rule decides (ASHA with any
            other sampler). ``True`` warns once when there is no such sampler; ``False`` is plain
            asynchronous successive halving. Costs one GP conditioning per such decision; the
            benchmark README shows what it gains.
    """

    def __init__(
        self,
        min_resource: int = 1,
        max_resource: int | Literal["auto"] = "auto",
        reduction_factor: float = 3,
        brackets: int | Literal["auto"] = 1,
        rescue_by_model: bool | None = None,
    ) -> None:
        if max_resource != "auto":
            rung_rules.validate_resources(min_resource, max_resource, reduction_factor)  # type: ignore[arg-type]
        else:
            rung_rules.validate_resources(min_resource, min_resource, reduction_factor)
        if brackets != "auto" and (not isinstance(brackets, int) or brackets < 1):
            raise ValueError(f"brackets must be an integer >= 1 or 'auto', got {brackets!r}")
        self.min_resource = min_resource
        self.max_resource = max_resource
        self.reduction_factor = reduction_factor
        self.brackets = brackets
        self.rescue_by_model = rescue_by_model
        self._warned: set[int] = set()
        self._warned_rescue = False
        self._warned_steps: set[str] = set()
        #: Study name -> the maximum resource inferred for it (``max_resource="auto"``): read once,
        #: not on every report, and fixed from then on, as Optuna's HyperbandPruner does.
        self._inferred_max_resource: dict[str, int] = {}
        #: (study name, trial number) -> bracket, under ``brackets="auto"`` (also in storage).
        self._auto_brackets: dict[tuple[str, int], int] = {}

    # ----- resource levels (also read by MobsterSampler) ----------------------------------

    def known_max_resource(self, study: Study) -> int | None:
        """``max_resource``, or with ``"auto"`` the last step of the first finished trial found in
        the study; ``None`` while none has finished.

        Once inferred for a study, the value is kept: later calls read no storage, and the rungs
        do not move if a trial with another last step finishes later.
        """
        if self.max_resource != "auto":
            return int(self.max_resource)
        if study.study_name in self._inferred_max_resource:
            return self._inferred_max_resource[study.study_name]
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            last = mo.last_step(trial)
            if last is not None:
                inferred = max(int(last), self.min_resource)
                self._inferred_max_resource[study.study_name] = inferred
                return inferred
        return None

    def levels(self, study: Study) -> list[int]:
        """All rung levels, the last one the maximum resource (a very large one while unknown)."""
        top = self.known_max_resource(study)
        return rung_rules.rung_levels(self.min_resource, top or _UNBOUNDED, self.reduction_factor)

    def bracket(self, study: Study, trial: FrozenTrial | int, levels: Sequence[int] | None = None) -> int:
        """The trial's bracket: a hash of study name and trial number, sampled by Hyperband's shares.

        ``levels``: the study's :meth:`levels` when the caller has them (with
        ``max_resource="auto"`` they cost a storage read). With ``brackets="auto"`` the bracket
        is the one the trial got at its first report (read from ``trial``'s system attrs, or
        remembered by this pruner for a trial number); 0 before that.
        """
        number = trial if isinstance(trial, int) else trial.number
        if self.brackets == "auto":
            given = self._given_bracket(study, trial)
            return 0 if given is None else given
        levels = self.levels(study) if levels is None else list(levels)
        return rung_rules.sample_bracket(levels, self.brackets, _uniform(study, number))

    def trial_levels(self, study: Study, trial: FrozenTrial | int) -> list[int]:
        """The rung levels of the trial's bracket."""
        levels = self.levels(study)
        return levels[self.bracket(study, trial, levels):]

    # ----- the decision --------------------------------------------------------------------

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        if len(study.directions) > 1:
            return self._prune_multi(study, trial)
        step = trial.last_step
        if step is None:
            return False
        value = trial.intermediate_values[step]
        if not is_finite(value):
            message = f"MobsterPruner: trial {trial.number} reported {value} at step {step}; it is pruned"
            warn_once(self._warned, trial.number, message, stacklevel=2)
            return True
        levels = self.levels(study)
        if self.brackets == "auto":
            self._give_bracket(study, trial, levels)
        self._check_step(study, trial.number, step)
        own_levels = levels[self.bracket(study, trial, levels):]
        level = rung_rules.rung_of(step, own_levels)
        if level in (None, own_levels[-1]):
            return False  # below the trial's first rung, or at the full resource
        if rung_rules.rung_steps(trial.intermediate_values, own_levels).get(level) != step:
            return False  # not the trial's first report at this rung
        return self._stops(study, trial, level, levels, value)

    def _prune_multi(self, study: Study, trial: FrozenTrial) -> bool:
        """MO-ASHA's rule in a study with several directions, on the vectors reported with
        :func:`optuna_mobster.report`: the trial goes on at a rung when it is in the top
        ``1/eta`` by :func:`mobster.pareto.pareto_order` (no rescue by the model)."""
        vectors = mo.intermediate_values(trial)
        if not vectors:
            return False
        step = max(vectors)
        if not pareto.is_finite_vector(vectors[step]):
            message = f"MobsterPruner: trial {trial.number} reported {list(vectors[step])} at step {step}; it is pruned"
            warn_once(self._warned, trial.number, message, stacklevel=3)
            return True
        if self.brackets == "auto":
            raise ValueError("MobsterPruner(brackets='auto') ranks one objective; give a number of brackets in a multi-objective study")
        levels = self.levels(study)
        self._check_step(study, trial.number, step)
        own_levels = levels[self.bracket(study, trial, levels):]
        level = rung_rules.rung_of(step, own_levels)
        if level in (None, own_levels[-1]) or rung_rules.rung_steps(vectors, own_levels).get(level) != step:
            return False  # below its first rung, at the full resource, or not its first report at the rung
        signs = pareto.minimising_signs(mo.study_modes(study))
        recorded = {trial.number: tuple(signs * vectors[step])}
        for other in study.get_trials(deepcopy=False):
            if other.number == trial.number or other.state not in _RUNG_STATES:
                continue
            theirs = mo.intermediate_values(other)
            at = rung_rules.rung_steps(theirs, levels).get(level)
            if at is not None:
                recorded[other.number] = tuple(signs * theirs[at])
        return pareto.should_stop(trial.number, recorded, self.reduction_factor)

    def _check_step(self, study: Study, number: int, step: int) -> None:
        """Warn once per kind about steps no rung can use: the step is the resource (epochs from
        ``min_resource``), so a report below it, or above the maximum resource, is never judged."""
        top = self.known_max_resource(study)
        if step < self.min_resource:
            warn_once(
                self._warned_steps,
                "below",
                f"MobsterPruner: trial {number} reported at step {step}, below min_resource="
                f"{self.min_resource}; such reports are never judged at a rung (report the resource "
                "as the step, e.g. epochs counted from 1)",
                stacklevel=4,
            )
        if top is not None and step > top:
            source = "inferred from the first finished trial" if self.max_resource == "auto" else "given"
            warn_once(
                self._warned_steps,
                "above",
                f"MobsterPruner: trial {number} reported at step {step}, above max_resource={top} "
                f"({source}); reports past it are never judged at a rung",
                stacklevel=4,
            )

    def _give_bracket(self, study: Study, trial: FrozenTrial, levels: Sequence[int]) -> None:
        """Under ``brackets="auto"``, give the trial its bracket at its first report (kept in its
        system attrs, so other processes read the same), sampled from three brackets or one as
        the bracket-0 trials so far rank unlike or alike at the first two rungs."""
        if self._given_bracket(study, trial) is not None:
            return
        count = 1
        if len(levels) >= 3:
            first, second = self._first_two_rungs(study, trial, levels)
            count = rung_rules.auto_bracket_count(first, second, len(levels), self.reduction_factor)
        bracket = rung_rules.sample_bracket(levels, count, _uniform(study, trial.number))
        # Optuna has no public way for a pruner to write to a trial; its SuccessiveHalvingPruner
        # makes this same storage call to record rung values.
        study._storage.set_trial_system_attr(trial._trial_id, BRACKET_KEY, bracket)
        self._auto_brackets[(study.study_name, trial.number)] = bracket

    def _given_bracket(self, study: Study, trial: FrozenTrial | int) -> int | None:
        """The bracket a trial got under ``brackets="auto"``: remembered here, else read from its
        system attrs (another process gave it) and remembered; ``None`` if none yet."""
        number = trial if isinstance(trial, int) else trial.number
        given = self._auto_brackets.get((study.study_name, number))
        if given is None and isinstance(trial, FrozenTrial):
            stored = trial.system_attrs.get(BRACKET_KEY)
            if isinstance(stored, int):
                given = self._auto_brackets[(study.study_name, number)] = stored
        return given

    def _first_two_rungs(
        self, study: Study, trial: FrozenTrial, levels: Sequence[int]
    ) -> tuple[dict[int, float], dict[int, float]]:
        """Values (minimised) of the other bracket-0 trials at the first two rung levels."""
        sign = _minimising_sign(study)
        rungs: tuple[dict[int, float], dict[int, float]] = ({}, {})
        for other in study.get_trials(deepcopy=False, states=_RUNG_STATES):
            if other.number == trial.number or other.system_attrs.get(BRACKET_KEY) != 0:
                continue
            at = rung_rules.rung_steps(other.intermediate_values, levels)
            for values, level in zip(rungs, levels[:2]):
                if level in at:
                    values[other.number] = sign * other.intermediate_values[at[level]]
        return rungs

    def _stops(self, study: Study, trial: FrozenTrial, level: int, levels: Sequence[int], value: float) -> bool:
        sign = _minimising_sign(study)
        recorded = {trial.number: sign * value}
        # One storage read serves the rule and, when it stops the trial, the model's rescue.
        trials = study.get_trials(deepcopy=False)
        for other in trials:
            if other.number == trial.number or other.state not in _RUNG_STATES:
                continue
            at = rung_rules.rung_steps(other.intermediate_values, levels).get(level)
            if at is not None:
                recorded[other.number] = sign * other.intermediate_values[at]
        if not rung_rules.should_stop(sign * value, list(recorded.values()), self.reduction_factor):
            return False
        return not (self.rescue_by_model is not False and self._rescued(study, trial, recorded, trials))

    def _rescued(
        self, study: Study, trial: FrozenTrial, recorded: dict[int, float], trials: list[FrozenTrial]
    ) -> bool:
        if not isinstance(study.sampler, FinalPredictor):
            if self.rescue_by_model and not self._warned_rescue:  # asked for explicitly
                self._warned_rescue = True
                warnings.warn("MobsterPruner: rescue_by_model needs a MobsterSampler; the plain rule decides", stacklevel=4)
            return False
        predicted = study.sampler.predicted_final(study, trial, trials)
        return rung_rules.rescued_by_model(trial.number, recorded, predicted, self.reduction_factor)


def study_mode(study: Study) -> str:
    """``"max"`` or ``"min"``: the study's direction in the core's terms."""
    return "max" if study.direction == StudyDirection.MAXIMIZE else "min"


def _minimising_sign(study: Study) -> float:
    return rung_rules.minimising_sign(study_mode(study))


def _uniform(study: Study, trial_number: int) -> float:
    """A uniform draw in [0, 1) from the study name and trial number: the same in every process."""
    return zlib.crc32(f"{study.study_name}_{trial_number}".encode()) / 2**32
