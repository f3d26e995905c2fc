"""The rung rules for several objectives: who is "in the top ``1/eta``" when values are vectors.

At a rung, trials are ordered by non-dominated sorting, and within a front by crowding distance
(larger first), as NSGA-II does (Deb et al. 2002, "A fast and elitist multiobjective genetic
algorithm: NSGA-II"); MO-ASHA (Schmucker et al. 2021, "Multi-objective Asynchronous Successive
Halving") uses this order for asynchronous successive halving. With that order in place of the
sorted values, the stopping and promotion rules are those of :mod:`mobster.rungs`, unchanged.

Every vector here is minimised (callers negate maximised objectives first), and a vector with a
non-finite component counts as the worst (it is stopped, never promoted). One objective never
comes here: :mod:`mobster.rungs` decides those, exactly as before.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence, Set

import numpy as np

from mobster.rungs import minimising_sign

Vector = Sequence[float]


def minimising_signs(modes: Sequence[str]) -> np.ndarray:
    """Per objective, the factor that makes it minimised (see :func:`mobster.rungs.minimising_sign`)."""
    return np.array([minimising_sign(mode) for mode in modes], dtype=float)


def validate_objectives(metrics: Sequence[str], modes: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the problem when a metric list and a mode list do not match."""
    if len(metrics) != len(modes):
        raise ValueError(
            f"metric and mode must have the same length, got {len(metrics)} metrics {list(metrics)} "
            f"and {len(modes)} modes {list(modes)}"
        )
    if len(metrics) < 1:
        raise ValueError("at least one metric is needed")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metric names must differ, got {list(metrics)}")
    minimising_signs(modes)  # each mode is 'min' or 'max'


def is_finite_vector(value: Vector) -> bool:
    return all(isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) for v in value)


def nondominated_fronts(points: np.ndarray) -> np.ndarray:
    """Front index of every row of ``points`` (``n x m``, minimised): 0 for the non-dominated
    rows, 1 for those dominated only by front 0, and so on. O(n^2 m), vectorised."""
    points = np.asarray(points, dtype=float)
    n = len(points)
    if n == 0:
        return np.zeros(0, dtype=int)
    # dominates[i, j]: row i is no worse than row j everywhere and better somewhere.
    no_worse = (points[:, None, :] <= points[None, :, :]).all(-1)
    better = (points[:, None, :] < points[None, :, :]).any(-1)
    dominates = no_worse & better
    dominated_by = dominates.sum(0)
    fronts = np.full(n, -1, dtype=int)
    front, current = 0, np.flatnonzero(dominated_by == 0)
    while current.size:
        fronts[current] = front
        dominated_by = dominated_by - dominates[current].sum(0)
        dominated_by[fronts >= 0] = -1  # assigned rows never come back
        front, current = front + 1, np.flatnonzero(dominated_by == 0)
    return fronts


def crowding_distances(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each row within its set (one front): the sum over
    objectives of the normalised gap between its neighbours; the extremes get ``inf``."""
    points = np.asarray(points, dtype=float)
    n, m = points.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(points[:, k], kind="stable")
        column = points[order, k]
        span = column[-1] - column[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (column[2:] - column[:-2]) / span
    return distance


def pareto_order(values: Mapping[Hashable, Vector]) -> list[Hashable]:
    """The trials best first: by front, then by crowding distance within a front (larger first),
    then by name (so every process orders ties alike). Non-finite vectors come last."""
    finite = [t for t, v in values.items() if is_finite_vector(v)]
    rest = sorted((t for t in values if t not in set(finite)), key=str)
    if not finite:
        return rest
    points = np.array([list(values[t]) for t in finite], dtype=float)
    fronts = nondominated_fronts(points)
    crowding = np.zeros(len(finite))
    for front in np.unique(fronts):
        members = np.flatnonzero(fronts == front)
        crowding[members] = crowding_distances(points[members])
    ranked = sorted(range(len(finite)), key=lambda i: (fronts[i], -crowding[i], str(finite[i])))
    return [finite[i] for i in ranked] + rest


def should_stop(trial: Hashable, rung_values: Mapping[Hashable, Vector], reduction_factor: float) -> bool:
    """The stopping rule of :func:`mobster.rungs.should_stop` for vectors: stop ``trial`` unless
    at most ``(n - 1) / eta`` of the ``n`` finite vectors recorded at the rung (its own included)
    come before it in :func:`pareto_order`. A non-finite vector is always stopped."""
    if trial not in rung_values or not is_finite_vector(rung_values[trial]):
        return True
    finite = {t: v for t, v in rung_values.items() if is_finite_vector(v)}
    position = pareto_order(finite).index(trial)
    return position > (len(finite) - 1) / reduction_factor


def promotable_trial(
    rung_values: Mapping[Hashable, Vector],
    already_promoted: Set[Hashable],
    candidates: Set[Hashable],
    reduction_factor: float,
    *,
    finishing: bool = False,
) -> Hashable | None:
    """:func:`mobster.rungs.promotable_trial` for vectors: the best candidate not yet promoted
    among the first ``floor(n / eta)`` (``ceil`` when ``finishing``) of :func:`pareto_order`."""
    n = len(rung_values)
    num_top = math.ceil(n / reduction_factor) if finishing else int(n // reduction_factor)
    finite = {t: v for t, v in rung_values.items() if is_finite_vector(v)}
    for trial in pareto_order(finite)[:num_top]:
        if trial in candidates and trial not in already_promoted:
            return trial
    return None


def hypervolume_2d(points: np.ndarray, reference: Sequence[float]) -> float:
    """The area dominated by ``points`` (``n x 2``, minimised) and bounded by ``reference``;
    points not better than the reference in both objectives add nothing."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    inside = points[(points[:, 0] < reference[0]) & (points[:, 1] < reference[1])]
    if inside.size == 0:
        return 0.0
    inside = inside[np.argsort(inside[:, 0], kind="stable")]
    area, lowest = 0.0, float(reference[1])
    for x, y in inside:
        if y < lowest:
            area += (reference[0] - x) * (lowest - y)
            lowest = y
    return float(area)
