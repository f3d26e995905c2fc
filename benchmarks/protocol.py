"""The statistics of benchmark protocol v2 that go beyond one run: confidence intervals, quality
levels, and summaries across many benchmarks (the LCBench tasks).

* :func:`ratio_interval`: the ratio of median times to target (a method's over ASHA's) with a 90%
  bootstrap interval, resampling the seeds of both methods.
* :func:`quality_levels`: the three targets: ASHA's median final incumbent, and ASHA's median
  incumbent at 25% and at 50% of the budget (easier levels, reached early).
* :func:`mean_ranks`: the mean rank of each method over time across benchmarks (the usual view
  in the field's papers): on each benchmark, methods are ranked by their median incumbent over
  seeds at each time (ties share the average rank), and ranks are averaged over benchmarks.
* :func:`ratio_distribution`: across benchmarks, the median ratio and the shares at <= 0.5x and
  <= 1.0x.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

#: Bootstrap resamples and the interval's coverage.
BOOTSTRAP_RESAMPLES = 2000
INTERVAL = 0.90
#: Shares of the budget at which ASHA's median incumbent sets the two easier levels.
LEVEL_SHARES = (0.25, 0.5)


def higher_median(values: Sequence[float] | np.ndarray) -> float:
    """The protocol's median: the higher middle value (defined with ``inf`` among the values)."""
    values = np.asarray(values, dtype=float)
    return float(np.quantile(values, 0.5, method="higher")) if values.size else math.nan


def median_ratio(times: np.ndarray, base_times: np.ndarray) -> float:
    """``median(times) / median(base_times)`` (medians as :func:`numpy.median`, ``inf`` = never).

    ``inf`` when the method's median is never and the base's is finite; ``0`` the other way round;
    ``inf`` too when neither median is finite (no evidence that the method is faster).
    """
    ours, base = float(np.median(times)), float(np.median(base_times))
    if math.isinf(base):
        return 0.0 if math.isfinite(ours) else math.inf
    return math.inf if math.isinf(ours) else (ours / base if base > 0 else math.nan)


@dataclass(frozen=True)
class RatioInterval:
    ratio: float
    low: float
    high: float


def ratio_interval(
    times: Sequence[float], base_times: Sequence[float], *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
) -> RatioInterval:
    """:func:`median_ratio` and its 90% bootstrap interval (seeds of both methods resampled)."""
    ours, base = np.asarray(times, dtype=float), np.asarray(base_times, dtype=float)
    if not ours.size or not base.size:
        return RatioInterval(math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    a = np.median(ours[rng.integers(0, ours.size, (resamples, ours.size))], axis=1)
    b = np.median(base[rng.integers(0, base.size, (resamples, base.size))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(np.isinf(b), np.where(np.isinf(a), math.inf, 0.0), a / b)
    ratios = np.sort(np.where(np.isnan(ratios), math.inf, ratios))
    tail = (1 - INTERVAL) / 2
    # Order statistics instead of interpolation: the ratios may hold inf.
    low = ratios[int(math.floor(tail * (resamples - 1)))]
    high = ratios[int(math.ceil((1 - tail) * (resamples - 1)))]
    return RatioInterval(median_ratio(ours, base), float(low), float(high))


def quality_levels(
    base_final: Sequence[float], incumbent_at: Callable[[float], Sequence[float]], budget: float
) -> dict[str, float]:
    """The three levels: ``final`` (ASHA's median final incumbent), ``at 25%`` and ``at 50%`` (its
    median incumbent at that share of the budget; ``inf`` while most of its runs have none)."""
    levels = {"final": higher_median(base_final)}
    for share in LEVEL_SHARES:
        levels[f"at {share:.0%}"] = higher_median(incumbent_at(share * budget))
    return levels


def mean_ranks(
    incumbents: Mapping[str, Mapping[str, np.ndarray]], methods: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Mean rank over benchmarks at each time point.

    ``incumbents[benchmark][method]`` is ``(seeds, times)``: each run's incumbent on a shared time
    grid (``inf`` before its first completion). Only benchmarks where every one of ``methods``
    ran count; returns ``(len(methods), times)`` mean ranks (1 = best) and those benchmarks.
    """
    used = [b for b in incumbents if all(m in incumbents[b] for m in methods)]
    if not used:
        return np.full((len(methods), 0), math.nan), []
    ranks = []
    for bench in used:
        medians = np.stack([np.median(incumbents[bench][m], axis=0) for m in methods])  # (methods, times)
        ranks.append(rankdata(medians, axis=0))  # inf ties share their average rank
    return np.mean(ranks, axis=0), used


@dataclass(frozen=True)
class Distribution:
    """Ratios of one method across benchmarks; ``faster`` and ``slower`` count the benchmarks whose
    90% interval lies wholly below / above 1 (the others are within noise of ASHA)."""

    benchmarks: int
    median: float
    at_most_half: float
    at_most_one: float
    faster: int = 0
    slower: int = 0


def ratio_distribution(ratios: Sequence[float], intervals: Sequence[tuple[float, float]] = ()) -> Distribution:
    """Median ratio and the shares at <= 0.5x and <= 1.0x (undefined ratios left out), and from
    the ``(low, high)`` intervals, how many are clearly faster or slower than ASHA."""
    values = np.asarray([r for r in ratios if not math.isnan(r)], dtype=float)
    if not values.size:
        return Distribution(0, math.nan, math.nan, math.nan)
    return Distribution(
        int(values.size),
        float(np.median(values)),
        float(np.mean(values <= 0.5)),
        float(np.mean(values <= 1.0)),
        sum(high < 1 for _, high in intervals),
        sum(low > 1 for low, _ in intervals),
    )
