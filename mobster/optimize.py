"""Maximising the acquisition function over the mixed search space, never proposing a duplicate."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction
from botorch.optim import optimize_acqf
from botorch.optim.optimize_mixed import optimize_acqf_mixed_alternating

from mobster.space import SearchSpace

#: Multi-start settings: random starting points scored, and how many get a local search.
RAW_SAMPLES = 256
NUM_RESTARTS = 4
#: Random candidates scored when the optimum is a duplicate of a known configuration.
FALLBACK_POOL = 512


def search_bounds(space: SearchSpace, **tensor_kwargs) -> torch.Tensor:
    """``2 x dim`` bounds: [0, 1] for numbers, the extreme allowed values for enumerated ones."""
    lower, upper = [0.0] * space.dim, [1.0] * space.dim
    for j, values in {**space.discrete_values(), **space.categorical_values()}.items():
        lower[j], upper[j] = min(values), max(values)
    return torch.tensor([lower, upper], **tensor_kwargs)


def maximize_acquisition(
    acquisition: AcquisitionFunction,
    space: SearchSpace,
    is_excluded: Callable[[np.ndarray], bool],
    rng: np.random.Generator,
    tensor_kwargs: dict,
) -> np.ndarray:
    """Search coordinates of a valid, non-excluded configuration with high acquisition value.

    BoTorch's mixed optimiser (alternating discrete local search and L-BFGS-B, from the best of
    ``RAW_SAMPLES`` random starts) does the work when there are discrete or categorical
    coordinates, ``optimize_acqf`` (multi-start L-BFGS-B) otherwise. If the optimum rounds to an
    excluded configuration (seen, pending or failed), the best of a random pool is taken instead.
    """
    bounds = search_bounds(space, **tensor_kwargs)
    discrete, categorical = space.discrete_values(), space.categorical_values()
    torch_seed = int(rng.integers(2**31))
    with torch.random.fork_rng(), warnings.catch_warnings():
        torch.manual_seed(torch_seed)
        warnings.simplefilter("ignore", RuntimeWarning)
        if discrete or categorical:
            candidate, _ = optimize_acqf_mixed_alternating(
                acquisition,
                bounds=bounds,
                discrete_dims=discrete or None,
                cat_dims=categorical or None,
                raw_samples=RAW_SAMPLES,
                num_restarts=NUM_RESTARTS,
                options={"maxiter_alternating": 16},
            )
        else:
            candidate, _ = optimize_acqf(
                acquisition, bounds=bounds, q=1, raw_samples=RAW_SAMPLES, num_restarts=NUM_RESTARTS
            )
    best = space.round_unit(candidate.detach().cpu().numpy().reshape(-1))
    if not is_excluded(best):
        return best
    return best_of_random_pool(acquisition, space, is_excluded, rng, tensor_kwargs)


def best_of_random_pool(
    acquisition: AcquisitionFunction,
    space: SearchSpace,
    is_excluded: Callable[[np.ndarray], bool],
    rng: np.random.Generator,
    tensor_kwargs: dict,
) -> np.ndarray:
    """The best non-excluded configuration among ``FALLBACK_POOL`` random ones.

    Raises ``LookupError`` when every candidate is excluded (a tiny, exhausted space).
    """
    pool = space.sample_unit(rng, FALLBACK_POOL)
    allowed = [row for row in pool if not is_excluded(row)]
    if not allowed:
        raise LookupError("no configuration left that has not been evaluated")
    with torch.no_grad():
        values = acquisition(torch.tensor(np.stack(allowed), **tensor_kwargs).unsqueeze(-2))
    return allowed[int(torch.argmax(values))]


__all__ = ["maximize_acquisition", "best_of_random_pool", "search_bounds"]
