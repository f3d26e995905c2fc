"""From trial records to GP training data: rung-level results, the data cap, the acquisition level
and the successive-halving bar a new trial must pass on its way there."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mobster.history import TrialRecord
from mobster.rungs import continue_threshold, rung_of, rung_steps


@dataclass
class Observation:
    """One (trial, resource, minimised value) point the GP is fitted to."""

    trial: int  # index into the record list
    resource: int
    value: float


def rung_results(results: dict[int, float], levels: Sequence[int] | None) -> dict[int, float]:
    """Reduce a trial's results to one per rung level.

    For each level, the result :func:`mobster.rungs.rung_steps` says stands for it (its own
    resource is kept, so a trial reporting every other epoch still lands at the right ``r``).
    With ``levels=None`` every result is kept.
    """
    if levels is None:
        return dict(results)
    return {step: results[step] for step in rung_steps(results, levels).values()}


def collect_observations(
    records: Sequence[TrialRecord], levels: Sequence[int] | None, sign: float
) -> tuple[list[Observation], list[int]]:
    """Finite rung-level results of all records as minimised values (``sign`` = -1 to maximise).

    Returns the observations and the indices of records that reported a non-finite value (those
    values are left out; the caller warns once per trial).
    """
    observations: list[Observation] = []
    offenders: list[int] = []
    for index, record in enumerate(records):
        for resource, value in rung_results(record.results, levels).items():
            if value is None or not math.isfinite(value):
                offenders.append(index)
                continue
            observations.append(Observation(index, int(resource), sign * float(value)))
    return observations, sorted(set(offenders))


def subsample(
    observations: list[Observation], max_observations: int, rng: np.random.Generator
) -> list[Observation]:
    """Keep at most ``max_observations`` points, rung-aware, as in the reference.

    Walks the resource levels from the top: trials that reached higher levels keep all their
    data; the lowest levels, where most (and the least informative) points are, are subsampled.
    """
    if len(observations) <= max_observations:
        return observations
    top_of_trial: dict[int, int] = {}
    for obs in observations:
        top_of_trial[obs.trial] = max(top_of_trial.get(obs.trial, 0), obs.resource)
    # Each level's points in their order, grouped in one pass (thousands of trials).
    in_level: dict[int, list[Observation]] = {}
    for obs in observations:
        in_level.setdefault(top_of_trial[obs.trial], []).append(obs)
    kept: list[Observation] = []
    for level in sorted(in_level, reverse=True):
        group = in_level[level]
        room = max_observations - len(kept)
        if len(group) <= room:
            kept.extend(group)
            continue
        # Not all of these trials fit: keep whole trials, in random order, while they fit.
        points_of: dict[int, list[Observation]] = {}
        for obs in group:
            points_of.setdefault(obs.trial, []).append(obs)
        trials = sorted(points_of)
        rng.shuffle(trials)
        for trial in trials:
            if len(points_of[trial]) <= max_observations - len(kept):
                kept.extend(points_of[trial])
        break
    return kept


def acquisition_resource(observations: Sequence[Observation], min_count: int = 3) -> int:
    """``r_acq``: the largest resource with at least ``min_count`` observations, else the smallest."""
    counts: dict[int, int] = {}
    for obs in observations:
        counts[obs.resource] = counts.get(obs.resource, 0) + 1
    enough = [r for r, c in counts.items() if c >= min_count]
    return max(enough) if enough else min(counts)


def rung_thresholds(
    observations: Sequence[Observation], levels: Sequence[int], below: int, reduction_factor: float
) -> dict[int, float]:
    """The successive-halving bar at every rung level under ``below``: the ``1/eta`` quantile of
    the values recorded there so far (a new trial continues past the rung only at or under it).

    Observations count at the rung :func:`mobster.rungs.rung_of` gives their resource, as
    :func:`rung_results` reduced them. Rungs without any value are left out.
    """
    by_rung: dict[int, list[float]] = {}
    for obs in observations:
        level = rung_of(obs.resource, levels)
        if level is not None and level < below:
            by_rung.setdefault(level, []).append(obs.value)
    return {level: continue_threshold(values, reduction_factor) for level, values in sorted(by_rung.items())}
