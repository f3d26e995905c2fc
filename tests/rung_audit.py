"""Re-check MobsterPruner's decisions from what an Optuna storage holds after the fact.

Storage keeps every trial's intermediate values and its start and end times, but not *when* each
value was reported, so the set of rung values a trial was compared against is only bounded:

* surely seen: values of trials that ended (COMPLETE/PRUNED) before the trial started;
* never seen: values of trials that started after it ended, and of trials that had already
  failed (FAIL) when it started (the pruner ignores FAIL trials);
* maybe seen: everything else (trials that overlapped it in time, FAIL ones included, since a
  trial that fails later was RUNNING, and counted, until then).

With ``n`` values at a rung (the trial's own included) of which ``c`` are strictly better than
the trial's value ``v``, the rule ``v > quantile(values, 1/eta)`` is exactly ``(n-1)/eta < c``.
Adding a better value can only turn "continue" into "stop", and adding a worse (or equal) one
only "stop" into "continue". So a pruning decision is possible iff it holds with all maybe-seen
better values and no maybe-seen worse one, and a continue decision iff it holds with all
maybe-seen worse values and no maybe-seen better one. Both checks are exact for sequential runs
(nothing overlaps) and the strongest ones storage supports for asynchronous ones.

Note the tempting check "a pruned value is worse than the 1/eta quantile of *all* values at the
rung at the end" is wrong even for a single process: early trials are compared against few
values, and later (worse) values can move the final quantile above a value that was rightly
pruned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Sequence

from optuna.trial import FrozenTrial, TrialState

from mobster.rungs import should_stop


def rung_step(trial: FrozenTrial, level: int, upper: float) -> int | None:
    """The step standing for rung ``level``: the trial's first report in ``[level, upper)``."""
    inside = [s for s in trial.intermediate_values if level <= s < upper]
    return min(inside) if inside else None


def _seen(other: FrozenTrial, trial: FrozenTrial) -> str:
    """Whether ``other``'s values were surely / never / maybe visible to ``trial``'s decisions."""
    if other.datetime_start is not None and trial.datetime_complete is not None:
        if other.datetime_start > trial.datetime_complete:
            return "never"
    ended_before = (
        other.datetime_complete is not None
        and trial.datetime_start is not None
        and other.datetime_complete < trial.datetime_start
    )
    if ended_before:
        return "never" if other.state == TrialState.FAIL else "surely"
    return "maybe"


def _possible(value: float, sure: list[float], maybe: list[float], eta: float, stop: bool) -> bool:
    """Whether some subset of ``maybe`` (with all of ``sure``) gives the decision ``stop``."""
    if stop:
        chosen = sure + [u for u in maybe if u < value]
    else:
        chosen = sure + [u for u in maybe if u >= value]
    return should_stop(value, [value] + chosen, eta) == stop


def audit_pruning(
    trials: Sequence[FrozenTrial],
    levels: Sequence[int],
    reduction_factor: float,
    *,
    maximize: bool = False,
    trial_levels: Callable[[int], Sequence[int]] | None = None,
    skip: Container[int] = (),
    rescues: bool = False,
) -> list[str]:
    """Decisions of COMPLETE and PRUNED trials that the rung rule cannot explain (empty: all fine).

    Trials report at most once per step and obey ``should_prune`` at once; trials in ``skip``
    (that report out of order or ignore the pruner) are only used as the others' data. With
    ``rescues`` (the pruner's ``rescue_by_model`` with a ``MobsterSampler``) the model may send on
    a trial the rule would stop, from a GP that storage cannot replay: only prunes are checked.
    """
    sign = -1.0 if maximize else 1.0
    problems: list[str] = []
    for trial in trials:
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED) or trial.number in skip:
            continue
        own = list(trial_levels(trial.number) if trial_levels else levels)
        bounds = own + [math.inf]
        last = trial.last_step
        pruned_at_rung = False
        for level, upper in zip(bounds[:-2], bounds[1:-1]):
            step = rung_step(trial, level, upper)
            if step is None:
                continue
            value = sign * trial.intermediate_values[step]
            if not math.isfinite(value):
                continue  # pruned at once, with a warning, whatever the others did
            sure: list[float] = []
            maybe: list[float] = []
            for other in trials:
                if other.number == trial.number:
                    continue
                at = rung_step(other, level, upper)
                if at is None or not math.isfinite(other.intermediate_values[at]):
                    continue
                seen = _seen(other, trial)
                if seen != "never":
                    (sure if seen == "surely" else maybe).append(sign * other.intermediate_values[at])
            stopped = trial.state == TrialState.PRUNED and step == last
            pruned_at_rung = pruned_at_rung or stopped
            if rescues and not stopped:
                continue
            if not _possible(value, sure, maybe, reduction_factor, stop=stopped):
                problems.append(
                    f"trial {trial.number} {'pruned' if stopped else 'continued'} at rung {level} (step {step}, "
                    f"value {value}): surely seen {sorted(sure)}, maybe seen {sorted(maybe)}"
                )
        if trial.state == TrialState.PRUNED and not pruned_at_rung:
            value = trial.intermediate_values.get(last) if last is not None else None
            if value is None or math.isfinite(value):
                problems.append(f"trial {trial.number} was pruned at step {last}, which stands for no rung")
    return problems
