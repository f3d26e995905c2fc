"""Ray Tune search spaces to the core's :class:`mobster.space.SearchSpace`, and back.

Ray's conventions are kept exactly, so that MOBSTER suggests the same set of values Ray's own
samplers would draw:

* ``tune.randint(a, b)`` and ``tune.lograndint(a, b)``: ``b`` is exclusive;
* ``tune.qrandint(a, b, q)`` and ``tune.qlograndint(a, b, q)`` with ``q > 1``: the multiples of
  ``q`` in ``[a, b]``, both inclusive (with ``q == 1`` the upper bound stays exclusive);
* ``tune.quniform(a, b, q)`` and ``tune.qloguniform(a, b, q)``: the multiples of ``q`` in
  ``[a, b]``, both inclusive, written as ``k * q`` as Ray writes them.

A quantized parameter is modelled as the integer ``k`` of its value ``k * q`` (on a log scale
for the log samplers), so the model and the optimiser only ever see valid values. Categorical
choices are modelled by their index, so unhashable choices (lists, dicts) work too.

Parameters that cannot be modelled (``tune.grid_search``, ``tune.sample_from``, ``tune.randn``
and other normal samplers) raise :class:`mobster.space.InvalidSpaceError` naming the key.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ray.tune.search import sample
from ray.tune.search.variant_generator import parse_spec_vars

from mobster.space import Categorical, Domain, Float, Integer, InvalidSpaceError, SearchSpace

Path = tuple[Any, ...]


def parameter_name(path: Path) -> str:
    """The name of a (possibly nested) parameter, its keys joined with ``/`` as Ray prints them."""
    return "/".join(str(key) for key in path)


@dataclass(frozen=True)
class Parameter:
    """How one Ray domain maps to one core parameter.

    Attributes:
        path: Keys (and list indices) from the top of the config to the parameter.
        domain: The core domain that models it.
        quantum: ``q`` of a quantized domain: the core value ``k`` stands for ``k * q``.
        choices: The categories of a ``tune.choice`` (the core value is their index).
        cast: ``int`` or ``float`` for numeric parameters, as Ray casts them.
    """

    path: Path
    domain: Domain
    quantum: float | int | None = None
    choices: tuple[Any, ...] | None = None
    cast: type | None = None

    @property
    def name(self) -> str:
        return parameter_name(self.path)

    def to_ray(self, value: Any) -> Any:
        """The Ray value of the core value ``value``."""
        if self.choices is not None:
            return self.choices[int(value)]
        if self.quantum is not None:
            return self.cast(int(value) * self.quantum)
        return self.cast(value)

    def to_core(self, value: Any) -> Any:
        """The core value of the Ray value ``value``; ``ValueError`` naming the key if invalid."""
        if self.choices is not None:
            for index, choice in enumerate(self.choices):
                if choice == value:
                    return index
            raise ValueError(f"parameter {self.name!r}: {value!r} is not one of {list(self.choices)}")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"parameter {self.name!r}: {value!r} is not a finite number")
        if self.quantum is not None:
            steps = value / self.quantum
            if not math.isclose(steps, round(steps), abs_tol=1e-9):
                raise ValueError(f"parameter {self.name!r}: {value!r} is not a multiple of q={self.quantum}")
            value = round(steps)
        assert isinstance(self.domain, (Float, Integer))
        if not self.domain.low <= value <= self.domain.high:
            raise ValueError(f"parameter {self.name!r}: {value!r} is out of its bounds")
        return int(value) if isinstance(self.domain, Integer) else float(value)


@dataclass
class RaySearchSpace:
    """A Ray Tune ``param_space`` as a core search space.

    Build it with :func:`convert_search_space`. ``space`` is what the core searcher sees (one
    parameter per Ray domain, named by :func:`parameter_name`); :meth:`to_ray` turns a core
    configuration into the dict that ``Searcher.suggest`` returns.
    """

    space: SearchSpace
    parameters: list[Parameter]
    #: The original ``param_space``, kept to fill lists that mix constants and domains.
    template: dict[str, Any] = field(repr=False)

    def to_ray(self, core_config: Mapping[str, Any]) -> dict[str, Any]:
        """The nested Ray config of a core configuration (only the searched keys).

        Nested dicts are returned as nested dicts (Ray merges them into ``param_space``); a list
        that contains a searched value is returned whole, its constants copied, because Ray
        replaces lists instead of merging them.
        """
        values = {p.path: p.to_ray(core_config[p.name]) for p in self.parameters}
        suggestion: dict[str, Any] = {}
        for path, value in values.items():
            list_at = next(
                (i for i in range(1, len(path)) if isinstance(_get_path(self.template, path[:i]), list)), None
            )
            if list_at is None:
                _set_path(suggestion, path, value)
                continue
            # The first list on the path is returned whole: copy it once, then fill it.
            root = path[:list_at]
            whole = _get_path(suggestion, root, default=None)
            if whole is None:
                whole = copy.deepcopy(_get_path(self.template, root))
                _set_path(suggestion, root, whole)
            _set_path(whole, path[list_at:], value)
        return suggestion

    def to_core(self, ray_config: Mapping[str, Any]) -> dict[str, Any]:
        """The core configuration of a nested Ray config (e.g. a point to evaluate).

        Raises ``ValueError`` naming the keys that are missing or hold an invalid value.
        """
        missing = [p.name for p in self.parameters if _get_path(ray_config, p.path, default=_ABSENT) is _ABSENT]
        if missing:
            raise ValueError(f"configuration {dict(ray_config)!r} has no value for {missing}")
        return {p.name: p.to_core(_get_path(ray_config, p.path)) for p in self.parameters}


_MISSING = object()  # no default: raise
_ABSENT = object()


def _get_path(node: Any, path: Path, default: Any = _MISSING) -> Any:
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            if default is _MISSING:
                raise
            return default
    return node


def _set_path(node: Any, path: Path, value: Any) -> None:
    for key in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        else:
            node = node[key]
    node[path[-1]] = value


def convert_search_space(param_space: Mapping[str, Any]) -> RaySearchSpace:
    """Convert a Ray Tune ``param_space`` (nested dicts of ``tune.*`` domains and constants).

    Constants are left to Ray (it merges the suggestion into ``param_space``). Raises
    :class:`InvalidSpaceError` naming the key for what MOBSTER cannot model.
    """
    _, domain_vars, grid_vars = parse_spec_vars(dict(param_space))
    if grid_vars:
        names = [parameter_name(path) for path, _ in grid_vars]
        raise InvalidSpaceError(
            f"parameter {names[0]!r}: tune.grid_search cannot be combined with a search algorithm; "
            "use tune.choice([...]) to let MOBSTER choose among the values"
        )
    parameters = [_convert_domain(tuple(path), domain) for path, domain in domain_vars]
    names = [p.name for p in parameters]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidSpaceError(f"parameter {duplicates[0]!r}: two keys have this name once joined with '/'")
    if not parameters:
        raise InvalidSpaceError("the search space has no tune.* domains to search")
    space = SearchSpace({p.name: p.domain for p in parameters})
    return RaySearchSpace(space=space, parameters=parameters, template=copy.deepcopy(dict(param_space)))


def _convert_domain(path: Path, domain: sample.Domain) -> Parameter:
    name = parameter_name(path)
    if domain.is_function():
        raise InvalidSpaceError(
            f"parameter {name!r}: tune.sample_from / lambda values cannot be modelled; "
            "give it a bounded domain (tune.uniform, tune.randint, tune.choice, ...)"
        )
    sampler = domain.get_sampler()
    quantum = None
    if isinstance(sampler, sample.Quantized):
        quantum = sampler.q
        sampler = sampler.get_sampler()
    if isinstance(sampler, sample.Normal):
        raise InvalidSpaceError(
            f"parameter {name!r}: normal distributions (tune.randn, tune.qrandn) are unbounded; "
            "MOBSTER needs bounds: use tune.uniform(low, high) or tune.quniform(low, high, q)"
        )
    if isinstance(domain, sample.Categorical):
        if not isinstance(sampler, sample.Uniform):
            raise InvalidSpaceError(f"parameter {name!r}: unsupported sampler {sampler} for tune.choice")
        choices = tuple(domain.categories)
        return Parameter(path, Categorical(tuple(range(len(choices)))), choices=choices)
    if not isinstance(sampler, (sample.Uniform, sample.LogUniform)):
        raise InvalidSpaceError(f"parameter {name!r}: unsupported sampler {sampler}")
    log = isinstance(sampler, sample.LogUniform)
    if isinstance(domain, sample.Float):
        _require_finite(name, domain)
        if quantum is None:
            return Parameter(path, Float(float(domain.lower), float(domain.upper), log=log), cast=float)
        low, high = _grid_indices(domain.lower, domain.upper, quantum)
        return Parameter(path, _index_domain(name, low, high, log), quantum=quantum, cast=float)
    if isinstance(domain, sample.Integer):
        _require_finite(name, domain)
        if quantum is None or quantum == 1:
            # randint / lograndint / qrandint(q=1): the upper bound is exclusive.
            return Parameter(path, Integer(int(domain.lower), int(domain.upper) - 1, log=log), cast=int)
        low, high = _grid_indices(domain.lower, domain.upper, quantum)
        return Parameter(path, _index_domain(name, low, high, log), quantum=quantum, cast=int)
    raise InvalidSpaceError(f"parameter {name!r}: unsupported domain type {type(domain).__name__}")


def _require_finite(name: str, domain: sample.Float | sample.Integer) -> None:
    if not (math.isfinite(domain.lower) and math.isfinite(domain.upper)):
        raise InvalidSpaceError(f"parameter {name!r}: bounds must be finite, got [{domain.lower}, {domain.upper}]")


def _grid_indices(lower: float, upper: float, q: float) -> tuple[int, int]:
    """Indices ``k`` of the multiples ``k * q`` inside ``[lower, upper]``, as Ray's sampler rounds them."""

    def index(bound: float, round_inwards: Any) -> int:
        scaled = bound / q
        return int(round(scaled)) if math.isclose(scaled, round(scaled)) else int(round_inwards(scaled))

    return index(lower, math.ceil), index(upper, math.floor)


def _index_domain(name: str, low: int, high: int, log: bool) -> Integer:
    if high < low:
        raise InvalidSpaceError(f"parameter {name!r}: no multiple of q lies between its bounds")
    return Integer(low, high, log=log)
