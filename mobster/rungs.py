"""Rung levels, Hyperband brackets and the asynchronous successive-halving rules.

Everything here is pure and deterministic: the functions take the values recorded at a rung and
return a decision. The Optuna pruner recomputes rung contents from storage and calls these; the
Ray Tune scheduler keeps them in a :class:`mobster.rung_table.RungTable`. All decisions are for
*minimisation*; callers negate maximised metrics first.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence, Set

import numpy as np
from scipy.stats import rankdata


def minimising_sign(mode: str) -> float:
    """The factor that turns a metric optimised in ``mode`` (``"min"`` or ``"max"``) into one to
    minimise: every rule here, and the GP, rank by lower is better."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    return -1.0 if mode == "max" else 1.0


def validate_resources(min_resource: int, max_resource: int, reduction_factor: float) -> None:
    """Raise ``ValueError`` naming the problem when the rung parameters make no sense."""
    if not isinstance(min_resource, (int, np.integer)) or min_resource < 1:
        raise ValueError(f"min_resource (grace_period) must be an integer >= 1, got {min_resource!r}")
    if not isinstance(max_resource, (int, np.integer)) or max_resource < 1:
        raise ValueError(f"max_resource (max_t) must be an integer >= 1, got {max_resource!r}")
    if max_resource < min_resource:
        raise ValueError(
            f"max_resource (max_t) = {max_resource} is smaller than min_resource (grace_period) = {min_resource}"
        )
    if not math.isfinite(reduction_factor) or reduction_factor <= 1:
        raise ValueError(f"reduction_factor must be > 1, got {reduction_factor!r}")


def rung_levels(min_resource: int, max_resource: int, reduction_factor: float) -> list[int]:
    """Rung levels ``round(min_resource * eta**k) < max_resource``, followed by ``max_resource``.

    >>> rung_levels(1, 81, 3)
    [1, 3, 9, 27, 81]
    >>> rung_levels(1, 100, 3)
    [1, 3, 9, 27, 81, 100]
    """
    validate_resources(min_resource, max_resource, reduction_factor)
    levels: list[int] = []
    k = 0
    while True:
        level = int(round(min_resource * reduction_factor**k))
        if level >= max_resource:
            break
        if not levels or level > levels[-1]:
            levels.append(level)
        k += 1
    levels.append(int(max_resource))
    return levels


def bracket_probabilities(levels: Sequence[int], num_brackets: int) -> np.ndarray:
    """Hyperband's share of trials for brackets ``0 .. num_brackets-1``.

    Bracket ``s`` starts at ``levels[s]``; ``P(s)`` is proportional to
    ``(K+1) / ((K+1-s) * levels[s])`` with ``K = len(levels) - 1``, the number of trials that
    synchronous Hyperband starts in that bracket per unit of resource.
    """
    if num_brackets < 1:
        raise ValueError(f"brackets must be >= 1, got {num_brackets}")
    num_brackets = min(num_brackets, len(levels))
    top = len(levels)  # K + 1
    weights = np.array([top / ((top - s) * levels[s]) for s in range(num_brackets)], dtype=float)
    return weights / weights.sum()


def sample_bracket(levels: Sequence[int], num_brackets: int, uniform: float) -> int:
    """Bracket for a new trial, given a uniform draw in [0, 1) (a hash or an RNG draw)."""
    cumulative = np.cumsum(bracket_probabilities(levels, num_brackets))
    return int(min(np.searchsorted(cumulative, uniform, side="right"), len(cumulative) - 1))


#: ``brackets="auto"``: how many of Hyperband's brackets to sample from until the first rung is
#: found to rank well, and the evidence needed. Measured on the benchmark tables (successive
#: halving over random draws of 54 configurations, ``benchmarks.build_tables.first_rung_agreement``):
#: among the trials in the top third of the first rung, the rank correlation of their values at
#: the first two rungs is 0.73 to 0.87 on three tables and 0.41 on the one where the first epoch
#: ranks configurations no better than chance at the end (``torch_mlp_diabetes``).
AUTO_MAX_BRACKETS = 3
AUTO_MIN_PAIRS = 8
AUTO_MIN_RANK_CORRELATION = 0.6


def rank_correlation(first: Mapping[Hashable, float], second: Mapping[Hashable, float]) -> tuple[float, int]:
    """Spearman's rank correlation of the values of the trials found in both maps, and their
    number; ``nan`` for fewer than 3 such trials or when either side is constant."""
    shared = [t for t in first if t in second and math.isfinite(first[t]) and math.isfinite(second[t])]
    if len(shared) < 3:
        return math.nan, len(shared)
    x = rankdata([first[t] for t in shared])
    y = rankdata([second[t] for t in shared])
    if x.std() == 0 or y.std() == 0:
        return math.nan, len(shared)
    return float(np.corrcoef(x, y)[0, 1]), len(shared)


def auto_bracket_count(
    first_rung: Mapping[Hashable, float],
    second_rung: Mapping[Hashable, float],
    num_levels: int,
    reduction_factor: float,
) -> int:
    """How many brackets a new trial samples from under ``brackets="auto"``.

    ``first_rung`` holds the values at the first rung level of the trials judged there (bracket
    0), ``second_rung`` values at the second level. The question is whether the first rung's
    ranking means anything among the trials it sends on: of those now in its top ``1/eta`` (a
    trial the model rescued from below does not count), take the ones recorded at the second
    rung. Hyperband's first :data:`AUTO_MAX_BRACKETS` brackets until :data:`AUTO_MIN_PAIRS` of
    them are there and rank alike at both rungs (rank correlation at least
    :data:`AUTO_MIN_RANK_CORRELATION`); then one (plain asynchronous successive halving), and
    back to several if the evidence turns. Brackets come first because a trial's first rung is
    fixed when it starts: trials started before the evidence is in must already be protected
    from a first rung that may rank poorly.
    """
    if num_levels < 3:  # a second bracket would start at the full resource
        return 1
    bar = continue_threshold(list(first_rung.values()), reduction_factor)
    passed = {trial: value for trial, value in first_rung.items() if value <= bar}
    correlation, pairs = rank_correlation(passed, second_rung)
    if pairs >= AUTO_MIN_PAIRS and correlation >= AUTO_MIN_RANK_CORRELATION:
        return 1
    return AUTO_MAX_BRACKETS


def _half_threshold(rung_values: Sequence[float], reduction_factor: float) -> float:
    # The quantile of the halved values: linear interpolation a + (b - a) t cannot overflow there.
    finite = np.asarray([v for v in rung_values if math.isfinite(v)], dtype=float)
    if finite.size == 0:
        return math.inf
    return float(np.quantile(finite / 2.0, 1.0 / reduction_factor))


def continue_threshold(rung_values: Sequence[float], reduction_factor: float) -> float:
    """The ``1/eta`` quantile of the values at a rung: values at or below it continue."""
    return 2.0 * _half_threshold(rung_values, reduction_factor)


def should_stop(value: float, rung_values: Sequence[float], reduction_factor: float) -> bool:
    """The stopping rule: stop unless ``value`` is in the top ``1/eta`` of ``rung_values``.

    ``rung_values`` must already contain ``value`` itself (the rule compares against all values
    recorded at the rung so far, the new one included). A non-finite value is always stopped.

    ``value <= quantile(values, 1/eta)`` (linear interpolation) holds exactly when at most
    ``(n - 1) / eta`` finite values are strictly better, so the rule is decided by rank: no
    arithmetic on the values, which may be huge or subnormal.
    """
    if not math.isfinite(value):
        return True
    finite = [v for v in rung_values if math.isfinite(v)]
    better = sum(v < value for v in finite)
    return better > (len(finite) - 1) / reduction_factor


def rescued_by_model(
    trial: Hashable,
    rung_trials: Iterable[Hashable],
    predicted: Mapping[Hashable, float] | None,
    reduction_factor: float,
) -> bool:
    """Whether the model sends on a trial that :func:`should_stop` stops at a rung.

    ``predicted`` maps trials to the model's prediction of their value at the full resource
    (minimised; only the order matters). The trial goes on when its prediction is in the top
    ``1/eta`` of the predictions of the trials recorded at the rung (``rung_trials``, itself
    included): a late bloomer whose early value alone would stop it. ``None`` (no model yet)
    and a trial without a prediction are never rescued.
    """
    if predicted is None or trial not in predicted:
        return False
    at_rung = [predicted[t] for t in rung_trials if t in predicted]
    return not should_stop(predicted[trial], at_rung, reduction_factor)


def promotable_trial(
    rung_values: Mapping[Hashable, float],
    already_promoted: Set[Hashable],
    candidates: Set[Hashable],
    reduction_factor: float,
    *,
    finishing: bool = False,
) -> Hashable | None:
    """The best trial at a rung that may be promoted, or ``None``.

    Of ``n`` values recorded at the rung, the best ``floor(n / eta)`` qualify; the best of them
    that is a candidate (paused there) and has not been promoted from this rung yet is returned.
    ``finishing``: no new trial will start, so the rung sends on its best ``ceil(n / eta)``, as
    synchronous successive halving finishes a bracket (a rung with fewer than ``eta`` values
    still promotes its best trial, so paused trials never wait forever).
    """
    n = len(rung_values)
    num_top = math.ceil(n / reduction_factor) if finishing else int(n // reduction_factor)
    ranked = sorted(
        (value, str(trial), trial) for trial, value in rung_values.items() if math.isfinite(value)
    )
    for _, _, trial in ranked[:num_top]:
        if trial in candidates and trial not in already_promoted:
            return trial
    return None


def rung_of(resource: float, levels: Sequence[int]) -> int | None:
    """The rung a result at ``resource`` counts for: the level whose interval ``[level, next
    level)`` holds it (the last level's interval is open above); ``None`` below the first.

    This is the one rule of which result stands for a rung, shared by the GP's data, the Optuna
    pruner and the rung table: a trial that reports every few steps still fills its rungs, at
    the resource it really reported.

    >>> rung_of(4, [1, 3, 9, 27]), rung_of(0, [1, 3, 9, 27]), rung_of(30, [1, 3, 9, 27])
    (3, None, 27)
    """
    index = bisect.bisect_right(levels, resource) - 1
    return int(levels[index]) if index >= 0 else None


def rung_steps(steps: Iterable[float], levels: Sequence[int]) -> dict[int, float]:
    """Rung level -> the step that stands for it: the first of ``steps`` that :func:`rung_of`
    puts there. Rungs without a step are left out.

    >>> rung_steps([1, 2, 4, 5, 10], [1, 3, 9, 27])
    {1: 1, 3: 4, 9: 10}
    """
    chosen: dict[int, float] = {}
    for step in sorted(steps):
        level = rung_of(step, levels)
        if level is not None and level not in chosen:
            chosen[level] = step
    return chosen


def next_level(levels: Sequence[int], resource: int) -> int | None:
    """The first rung level strictly above ``resource``, or ``None`` past the top."""
    for level in levels:
        if level > resource:
            return level
    return None
