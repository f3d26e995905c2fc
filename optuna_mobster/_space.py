"""Optuna distributions to the core's search space."""

from __future__ import annotations

from collections.abc import Mapping

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from mobster.space import Categorical, Domain, Float, Integer, InvalidSpaceError, SearchSpace


def to_domain(name: str, distribution: BaseDistribution) -> Domain:
    """The core domain of one Optuna distribution; ``InvalidSpaceError`` names unknown types."""
    if isinstance(distribution, FloatDistribution):
        return Float(distribution.low, distribution.high, log=distribution.log, step=distribution.step)
    if isinstance(distribution, IntDistribution):
        return Integer(distribution.low, distribution.high, log=distribution.log, step=distribution.step)
    if isinstance(distribution, CategoricalDistribution):
        return Categorical(tuple(distribution.choices))
    raise InvalidSpaceError(f"parameter {name!r}: unsupported distribution {type(distribution).__name__}")


def to_search_space(distributions: Mapping[str, BaseDistribution]) -> SearchSpace:
    """The core search space of a relative search space (parameters in sorted order)."""
    return SearchSpace({name: to_domain(name, distributions[name]) for name in sorted(distributions)})
