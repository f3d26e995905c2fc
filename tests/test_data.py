"""The data cap: which rung-level observations the GP keeps when there are too many."""

from __future__ import annotations

import numpy as np
import pytest

from mobster.data import Observation, subsample

LEVELS = (1, 3, 9, 27)


def asha_shaped(trials: int, seed: int, interleave: bool) -> list[Observation]:
    """Trials stopped at each level in ASHA's proportions (most at the first rung)."""
    rng = np.random.default_rng(seed)
    observations = []
    for trial in range(trials):
        reached = min(int(rng.geometric(2 / 3)), len(LEVELS))
        observations += [Observation(trial, r, float(rng.random())) for r in LEVELS[:reached]]
    if interleave:
        rng.shuffle(observations)
    return observations


def top_levels(observations: list[Observation]) -> dict[int, int]:
    """Trial -> the highest resource it reported."""
    top: dict[int, int] = {}
    for obs in observations:
        top[obs.trial] = max(top.get(obs.trial, 0), obs.resource)
    return top


@pytest.mark.parametrize("interleave", [False, True])
@pytest.mark.parametrize("cap", [40, 200, 500])
def test_subsample_keeps_the_highest_reaching_trials_whole_and_cuts_at_one_level(cap: int, interleave: bool) -> None:
    observations = asha_shaped(600, seed=cap, interleave=interleave)
    kept = subsample(observations, cap, np.random.default_rng(0))

    assert 0 < len(kept) <= cap
    assert len({(o.trial, o.resource) for o in kept}) == len(kept)  # no point twice
    points_of: dict[int, list[Observation]] = {}
    for obs in observations:
        points_of.setdefault(obs.trial, []).append(obs)
    top = top_levels(observations)
    kept_trials = {o.trial for o in kept}
    # Every trial is kept whole or not at all.
    assert all(sum(o.trial == t for o in kept) == len(points_of[t]) for t in kept_trials)
    # Trials that reached further are preferred: below the lowest level kept, nothing; above
    # it, every trial.
    cut = min(top[t] for t in kept_trials)
    assert all(top[t] >= cut for t in kept_trials)
    assert all(t in kept_trials for t in points_of if top[t] > cut)
    # The cut level is filled at random as far as whole trials fit.
    left_out = [t for t in points_of if top[t] == cut and t not in kept_trials]
    assert all(len(points_of[t]) > cap - len(kept) for t in left_out)


def test_subsample_is_reproducible_keeps_order_and_leaves_small_data_alone() -> None:
    observations = asha_shaped(600, seed=1, interleave=True)
    first = subsample(observations, 300, np.random.default_rng(7))
    assert first == subsample(observations, 300, np.random.default_rng(7))
    assert first != subsample(observations, 300, np.random.default_rng(8))
    # A level kept whole (its trials reached it and no further) keeps its points in their order.
    top = top_levels(observations)
    cut = min(top[o.trial] for o in first)
    whole = [level for level in LEVELS if level > cut]
    assert whole
    for level in whole:
        assert [o for o in first if top[o.trial] == level] == [o for o in observations if top[o.trial] == level]
    assert subsample(observations, len(observations), np.random.default_rng(0)) is observations
