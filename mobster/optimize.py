"""Maximising the acquisition function over the mixed search space, never proposing a duplicate.

A lean version of BoTorch's alternating mixed optimiser, sized so a suggestion stays well under a
second: one batched evaluation of a random pool plus perturbations of the best known
configurations, then from the best few starts, rounds of (L-BFGS-B on the continuous coordinates
with BoTorch's ``gen_candidates_scipy``, discrete ones fixed) and (a one-coordinate neighbourhood
search over the discrete and categorical ones).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction
from botorch.exceptions.warnings import OptimizationWarning
from botorch.generation.gen import gen_candidates_scipy

from mobster.space import SearchSpace

#: Random configurations scored in the initial pool.
RAW_SAMPLES = 512
#: Perturbed copies of each anchor (a good known configuration) added to the pool.
SPRAY_PER_ANCHOR = 32
#: Standard deviation of the perturbation of continuous coordinates around an anchor.
SPRAY_SCALE = 0.1
#: Starts that get a local search.
NUM_RESTARTS = 3
#: Rounds of (continuous L-BFGS-B, discrete neighbourhood step) per start.
LOCAL_ROUNDS = 1
#: L-BFGS-B iterations per continuous step.
LBFGS_MAXITER = 20
#: Least distance (search coordinates) of a runner-up from every better-ranked candidate: restarts
#: that converge to one optimum end a hair apart, and a runner-up is meant to be another place.
RUNNER_UP_DISTANCE = 0.1


def search_bounds(space: SearchSpace, **tensor_kwargs) -> torch.Tensor:
    """``2 x dim`` bounds: [0, 1] for numbers, the extreme allowed values for enumerated ones."""
    lower, upper = [0.0] * space.dim, [1.0] * space.dim
    for j, values in {**space.discrete_values(), **space.categorical_values()}.items():
        lower[j], upper[j] = min(values), max(values)
    return torch.tensor([lower, upper], **tensor_kwargs)


def _evaluate(acquisition: AcquisitionFunction, units: np.ndarray, tensor_kwargs: dict) -> np.ndarray:
    with torch.no_grad():
        values = acquisition(torch.tensor(units, **tensor_kwargs).unsqueeze(-2))
    return values.detach().cpu().numpy()


def _spray(space: SearchSpace, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Perturbed copies of ``anchors``: continuous noise, and sometimes one enumerated coordinate resampled."""
    if len(anchors) == 0:
        return np.zeros((0, space.dim))
    enumerated = {**space.discrete_values(), **space.categorical_values()}
    copies = np.repeat(anchors, SPRAY_PER_ANCHOR, axis=0)
    copies = copies + rng.normal(0.0, SPRAY_SCALE, copies.shape)
    for row in copies:
        if enumerated and rng.random() < 0.5:
            j = list(enumerated)[rng.integers(len(enumerated))]
            row[j] = enumerated[j][rng.integers(len(enumerated[j]))]
    bounds = search_bounds(space).numpy()
    return space.round_unit(np.clip(copies, bounds[0], bounds[1]))


def _neighbours(space: SearchSpace, unit: np.ndarray) -> np.ndarray:
    """Configurations that differ from ``unit`` in one discrete or categorical coordinate."""
    rows = []
    for j, values in {**space.discrete_values(), **space.categorical_values()}.items():
        for value in values:
            if value != unit[j]:
                row = unit.copy()
                row[j] = value
                rows.append(row)
    return np.array(rows).reshape(-1, space.dim)


def _continuous_step(
    acquisition: AcquisitionFunction, space: SearchSpace, starts: np.ndarray, tensor_kwargs: dict
) -> np.ndarray:
    enumerated = {**space.discrete_values(), **space.categorical_values()}
    if len(enumerated) == space.dim:
        return starts
    bounds = search_bounds(space, **tensor_kwargs)
    initial = torch.tensor(starts, **tensor_kwargs).unsqueeze(-2)
    fixed = {j: initial[:, 0, j].clone() for j in enumerated}
    # L-BFGS-B stopping ABNORMAL (its line search found no better point) is harmless here: the
    # best point it reached is used. BoTorch warns of it under its own "always" filter, so the
    # warnings are recorded, that one dropped and any other passed on.
    with warnings.catch_warnings(record=True) as caught:
        candidates, _ = gen_candidates_scipy(
            initial,
            acquisition,
            lower_bounds=bounds[0],
            upper_bounds=bounds[1],
            fixed_features=fixed or None,
            options={"maxiter": LBFGS_MAXITER},
        )
    for warning in caught:
        if not (issubclass(warning.category, OptimizationWarning) and "ABNORMAL" in str(warning.message)):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return space.round_unit(candidates.detach().cpu().numpy().reshape(len(starts), space.dim))


def maximize_acquisition(
    acquisition: AcquisitionFunction,
    space: SearchSpace,
    is_excluded: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    tensor_kwargs: dict,
    anchors: np.ndarray | None = None,
) -> np.ndarray:
    """Search coordinates of a valid, non-excluded configuration with high acquisition value.

    ``anchors`` (search coordinates of good known configurations) seed part of the pool, so the
    search looks both everywhere and near the incumbents. ``is_excluded`` takes rows of
    candidates (``m x dim``) and says which of them must not be proposed. Raises ``LookupError`` when every
    candidate is excluded (a tiny, exhausted space).
    """
    return rank_acquisition_candidates(acquisition, space, is_excluded, rng, tensor_kwargs, anchors, count=1)[0]


def rank_acquisition_candidates(
    acquisition: AcquisitionFunction,
    space: SearchSpace,
    is_excluded: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    tensor_kwargs: dict,
    anchors: np.ndarray | None = None,
    count: int = 1,
) -> np.ndarray:
    """:func:`maximize_acquisition`'s choice first, then up to ``count - 1`` runner-ups: the
    non-excluded candidates this optimisation scored next best, each at least
    ``RUNNER_UP_DISTANCE`` from every better one (``m x dim``, ``m <= count``).

    The runner-ups cost nothing extra (every one was evaluated on the way), and the first row is
    the same whatever ``count`` is. They are what a sampler proposes instead when a process
    sampling at the same moment took the first (``optuna_mobster._claims``).
    """
    anchors = anchors if anchors is not None else np.zeros((0, space.dim))
    pool = np.concatenate([space.sample_unit(rng, RAW_SAMPLES), _spray(space, anchors, rng)])
    pool = pool[~is_excluded(pool)]
    if len(pool) == 0:
        raise LookupError("no configuration left that has not been evaluated")
    values = _evaluate(acquisition, pool, tensor_kwargs)
    order = np.argsort(-values)
    # Every allowed candidate scored, each batch in its own order and the pool first, so that a
    # stable sort of them all ranks ties as the search met them (the first row never changes).
    scored_units, scored_values = [pool[order]], [values[order]]
    starts = pool[order[:NUM_RESTARTS]]
    with torch.random.fork_rng():
        torch.manual_seed(int(rng.integers(2**31)))
        for _ in range(LOCAL_ROUNDS):
            starts = _continuous_step(acquisition, space, starts, tensor_kwargs)
            # Every start's neighbourhood in one batched evaluation (a call costs more than a row).
            groups = [np.concatenate([start[None, :], _neighbours(space, start)]) for start in starts]
            values_per_group = np.split(
                _evaluate(acquisition, np.concatenate(groups), tensor_kwargs), np.cumsum([len(g) for g in groups])[:-1]
            )
            improved = []
            for start, candidates, candidate_values in zip(starts, groups, values_per_group):
                order = np.argsort(-candidate_values)
                order = order[~is_excluded(candidates[order])]
                scored_units.append(candidates[order])
                scored_values.append(candidate_values[order])
                improved.append(candidates[order[0]] if len(order) else start)
            starts = np.array(improved)
    units, values = np.concatenate(scored_units), np.concatenate(scored_values)
    ranked: list[np.ndarray] = []
    for index in np.argsort(-values, kind="stable"):
        if all(np.linalg.norm(units[index] - better) >= RUNNER_UP_DISTANCE for better in ranked):
            ranked.append(units[index])
            if len(ranked) == count:
                break
    return np.stack(ranked)


__all__ = ["maximize_acquisition", "rank_acquisition_candidates", "search_bounds"]
