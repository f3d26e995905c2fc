"""One or several objectives: the ``metric``/``mode`` arguments both Ray plugins take.

A string is one objective, as before; lists (or tuples) of two or more names and modes are
several objectives, ranked by the Pareto order (:mod:`mobster.pareto`). Ray's
``tune.TuneConfig`` refuses a list ``mode`` (its check is ``mode in ["min", "max"]``), so
several objectives are given to ``MobsterSearcher`` and ``MobsterScheduler`` directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mobster.pareto import validate_objectives
from mobster.rungs import minimising_sign

#: What ``metric`` and ``mode`` hold once resolved: a name, a list of names, or not set yet.
Objective = str | list[str] | None


def resolve_objectives(metric: Any, mode: Any, owner: str) -> tuple[Objective, Objective]:
    """Check ``metric`` and ``mode`` and return them as ``str`` (one objective) or ``list``
    (several), raising ``ValueError`` naming the problem. A list of one is one objective."""
    metric_is_list = isinstance(metric, (list, tuple))
    mode_is_list = isinstance(mode, (list, tuple))
    if not metric_is_list and not mode_is_list:
        if mode is not None:
            minimising_sign(mode)  # the one check of a mode
        return metric, mode
    if not (metric_is_list and mode_is_list):
        raise ValueError(
            f"{owner} got metric={metric!r} and mode={mode!r}: for several objectives give both as "
            "lists of the same length (tune.TuneConfig refuses a list mode, so give them to the "
            "searcher and the scheduler directly), or a single metric with a single mode"
        )
    try:
        validate_objectives(list(metric), list(mode))
    except ValueError as error:
        raise ValueError(f"{owner}: {error}") from None
    if not all(isinstance(name, str) for name in metric):
        raise ValueError(f"{owner}: metric names must be strings, got {list(metric)}")
    if len(metric) == 1:
        return metric[0], mode[0]
    return list(metric), list(mode)


def names(metric: Objective) -> list[str]:
    """The metric names (one for a single objective, none when not set)."""
    if metric is None:
        return []
    return [metric] if isinstance(metric, str) else list(metric)


def is_multi(metric: Objective) -> bool:
    """Whether ``metric`` (as resolved) names several objectives."""
    return isinstance(metric, list)


class ObjectiveNames:
    """The ``metrics`` and ``modes`` both Ray plugins show, from their resolved ``_metric`` and
    ``_mode``."""

    _metric: Objective
    _mode: Objective

    @property
    def metrics(self) -> list[str]:
        """The metric names: one, or one per objective (empty while not set)."""
        return names(self._metric)

    @property
    def modes(self) -> list[str]:
        """``"min"`` or ``"max"`` per metric of :attr:`metrics` (empty while not set)."""
        return names(self._mode)


def reported_values(result: Any, metrics: Sequence[str]) -> tuple[Any, ...] | None:
    """The values of ``metrics`` in ``result``, or ``None`` when one of them is missing."""
    if not all(name in result for name in metrics):
        return None
    return tuple(result[name] for name in metrics)
