"""Stateful rung bookkeeping for asynchronous successive halving, stopping or promotion.

Used by schedulers that see results one at a time (Ray Tune, the simulator). The Optuna pruner
does not need it: it recomputes rung contents from storage on every call.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Set
from typing import Literal

from mobster import pareto
from mobster import rungs as rung_rules

#: A minimised value at a rung: a number, or a vector with several objectives.
RungValue = float | tuple[float, ...]
Decision = Literal["continue", "stop", "pause", "complete"]


class RungTable:
    """Values recorded at each rung level, the bracket of every trial, and promotions.

    Args:
        levels: All rung levels, ascending, the last one the maximum resource.
        reduction_factor: ``eta``.
        promotion: ``False`` for the stopping rule, ``True`` to pause every trial at its rungs.
        brackets: Number of Hyperband brackets to sample from (1 = plain ASHA), or ``"auto"``:
            three until the first rung is seen to rank trials as the second does, then one (see
            :func:`mobster.rungs.auto_bracket_count`); each trial keeps the bracket it was given.
        seed: Seed of the bracket sampler.
        objectives: Number of objectives. With more than one, values are tuples and rank by
            :func:`mobster.pareto.pareto_order` (MO-ASHA's rules); ``brackets="auto"`` then
            has no single ranking to check and is refused.

    Values are minimised. Rung data is shared across brackets, as in the reference.
    """

    def __init__(
        self,
        levels: list[int],
        reduction_factor: float,
        *,
        promotion: bool = False,
        brackets: int | Literal["auto"] = 1,
        seed: int | None = None,
        objectives: int = 1,
    ) -> None:
        if brackets != "auto" and (not isinstance(brackets, int) or brackets < 1):
            raise ValueError(f"brackets must be an integer >= 1 or 'auto', got {brackets!r}")
        if objectives > 1 and brackets == "auto":
            raise ValueError("brackets='auto' ranks one objective; give a number of brackets for several")
        self.objectives = objectives
        self.levels = list(levels)
        self.reduction_factor = reduction_factor
        self.promotion = promotion
        self.brackets: int | Literal["auto"] = brackets if brackets == "auto" else min(brackets, len(self.levels))
        self._rng = random.Random(seed)
        self.values: dict[int, dict[Hashable, RungValue]] = {level: {} for level in self.levels}
        self.bracket_of: dict[Hashable, int] = {}
        self.promoted: dict[int, set[Hashable]] = {level: set() for level in self.levels}

    @property
    def max_resource(self) -> int:
        return self.levels[-1]

    def add_trial(self, trial: Hashable, bracket: int | None = None) -> int:
        """Register a trial; samples its bracket unless given. Idempotent."""
        if trial not in self.bracket_of:
            if bracket is None:
                bracket = rung_rules.sample_bracket(self.levels, self.bracket_count(), self._rng.random())
            self.bracket_of[trial] = bracket
        return self.bracket_of[trial]

    def bracket_count(self) -> int:
        """How many brackets a new trial samples from now."""
        if self.brackets != "auto":
            return self.brackets
        # Only bracket-0 trials record a value at the first rung, so the pairs are theirs.
        second = self.values[self.levels[1]] if len(self.levels) > 1 else {}
        return rung_rules.auto_bracket_count(
            self.values[self.levels[0]], second, len(self.levels), self.reduction_factor
        )

    def trial_levels(self, trial: Hashable) -> list[int]:
        """The rung levels that apply to ``trial`` (those of its bracket)."""
        return self.levels[self.add_trial(trial):]

    def next_level(self, trial: Hashable, resource: int) -> int | None:
        """The trial's next rung strictly above ``resource``."""
        return rung_rules.next_level(self.trial_levels(trial), resource)

    def on_result(self, trial: Hashable, resource: int, value: RungValue) -> Decision:
        """Record a result and decide. ``value`` must be minimised (a tuple with several
        objectives); non-finite values (any component) stop the trial.

        A result is recorded at the highest rung the trial has reached and not recorded yet (so a
        trial that reports every other epoch still fills its rungs). Between rungs the trial
        continues.
        """
        finite = self._is_finite(value)
        if resource >= self.max_resource:
            if finite:
                self.values[self.max_resource][trial] = value
            return "complete"
        level = self._rung_reached(trial, resource)
        if level is None:
            return "stop" if not finite else "continue"
        if finite:
            self.values[level][trial] = value
        if self.promotion:
            return "pause" if finite else "stop"
        if self.objectives > 1:
            stops = not finite or pareto.should_stop(trial, self.values[level], self.reduction_factor)
        else:
            stops = rung_rules.should_stop(value, list(self.values[level].values()), self.reduction_factor)  # type: ignore[arg-type]
        return "stop" if stops else "continue"

    def _is_finite(self, value: RungValue) -> bool:
        if self.objectives > 1:
            if not isinstance(value, tuple) or len(value) != self.objectives:
                raise ValueError(f"expected {self.objectives} objective values, got {value!r}")
            return pareto.is_finite_vector(value)
        return math.isfinite(value)  # type: ignore[arg-type]

    def _rung_reached(self, trial: Hashable, resource: int) -> int | None:
        """The rung this result stands for (:func:`mobster.rungs.rung_of`), unless the trial has
        a value there already (only its first result at a rung counts)."""
        level = rung_rules.rung_of(resource, self.trial_levels(trial)[:-1])
        return None if level is None or trial in self.values[level] else level

    def choose_promotion(self, paused: Set[Hashable], *, finishing: bool = False) -> Hashable | None:
        """The paused trial to resume next, walking rungs from the top, or ``None``.

        ``finishing``: no new trial will start, so each rung sends on its best ``ceil(n / eta)``
        instead of ``floor(n / eta)`` (see :func:`mobster.rungs.promotable_trial`). Terminates:
        every trial is promoted from each rung at most once.
        """
        for level in reversed(self.levels[:-1]):
            candidates = {t for t in paused if self.recorded_level(t) == level}
            if not candidates:
                continue
            rule = pareto.promotable_trial if self.objectives > 1 else rung_rules.promotable_trial
            trial = rule(
                self.values[level], self.promoted[level], candidates, self.reduction_factor, finishing=finishing  # type: ignore[arg-type]
            )
            if trial is not None:
                return trial
        return None

    def mark_promoted(self, trial: Hashable) -> None:
        """Remember that ``trial`` was resumed from its current rung."""
        level = self.recorded_level(trial)
        if level is not None:
            self.promoted[level].add(trial)

    def recorded_level(self, trial: Hashable) -> int | None:
        """The highest rung (below the maximum resource) where ``trial`` has a value."""
        recorded = [level for level in self.levels[:-1] if trial in self.values[level]]
        return recorded[-1] if recorded else None

    def mark_promoted_below(self, trial: Hashable, resource: float) -> None:
        """Remember that ``trial`` went on from every rung under ``resource`` where it has a value
        (rebuilding the table from a trial's past results)."""
        for level in self.trial_levels(trial)[:-1]:
            if resource > level and trial in self.values[level]:
                self.promoted[level].add(trial)

    def trials_at(self, level: int) -> dict[Hashable, RungValue]:
        """The values recorded at rung ``level`` (a copy)."""
        return dict(self.values[level])

    def remove(self, trial: Hashable) -> None:
        """Forget a trial's bracket (its recorded values stay: they still shape the rungs)."""
        self.bracket_of.pop(trial, None)
