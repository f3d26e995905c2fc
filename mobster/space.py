"""Search spaces and their encoding to the unit cube.

Two encodings of a configuration:

* *search coordinates* (what the acquisition optimiser moves): one coordinate per non-constant
  parameter; floats and integers in [0, 1] (log scale where asked, integers relaxed by +-0.5 so
  every integer owns an equal share), categoricals as the index of the choice.
* *features* (what the GP sees): the same, with each categorical of k > 2 choices one-hot and a
  two-choice categorical a single 0/1 coordinate, as in the reference implementation.

Parameters with a single value (``low == high``, one choice) are constants: they are not encoded
and are always returned as that value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch

#: Discrete parameters with more values than this are optimised by continuous relaxation.
MAX_ENUMERATED_VALUES = 128


class InvalidSpaceError(ValueError):
    """A search space that cannot be modelled; the message names the parameter."""


@dataclass(frozen=True)
class Float:
    """A real parameter in ``[low, high]``, on a log scale if ``log``, a multiple of ``step`` if set."""

    low: float
    high: float
    log: bool = False
    step: float | None = None


@dataclass(frozen=True)
class Integer:
    """An integer parameter in ``[low, high]`` (both inclusive), optionally log-scaled or stepped."""

    low: int
    high: int
    log: bool = False
    step: int = 1


@dataclass(frozen=True)
class Categorical:
    """A choice among ``choices`` (any hashable values), with no order."""

    choices: tuple[Any, ...]


Domain = Union[Float, Integer, Categorical]


def _validate(name: str, domain: Domain) -> None:
    if isinstance(domain, Categorical):
        if len(domain.choices) == 0:
            raise InvalidSpaceError(f"parameter {name!r}: categorical with no choices")
        return
    if not isinstance(domain, (Float, Integer)):
        raise InvalidSpaceError(f"parameter {name!r}: unknown domain type {type(domain).__name__}")
    low, high = domain.low, domain.high
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InvalidSpaceError(f"parameter {name!r}: bounds must be finite, got [{low}, {high}]")
    if low > high:
        raise InvalidSpaceError(f"parameter {name!r}: low={low} is greater than high={high}")
    if domain.log and low <= 0:
        raise InvalidSpaceError(f"parameter {name!r}: log scale needs low > 0, got low={low}")
    if not math.isfinite(float(high) - float(low)):
        raise InvalidSpaceError(f"parameter {name!r}: the range [{low}, {high}] is too wide to encode")
    if domain.step is not None and domain.step <= 0:
        raise InvalidSpaceError(f"parameter {name!r}: step must be positive, got {domain.step}")
    if domain.log and domain.step not in (None, 1):
        raise InvalidSpaceError(f"parameter {name!r}: log scale cannot be combined with step={domain.step}")


def _num_values(domain: Domain) -> int | None:
    """Number of distinct values of a discrete domain (``None`` for a continuous float)."""
    if isinstance(domain, Categorical):
        return len(domain.choices)
    if isinstance(domain, Integer):
        return (domain.high - domain.low) // domain.step + 1
    if domain.step is not None:
        return int(math.floor((domain.high - domain.low) / domain.step + 1e-9)) + 1
    if domain.log and math.log(domain.high) == math.log(domain.low):
        return 1  # bounds one ulp apart: a constant on the log scale
    return None if domain.high > domain.low else 1


#: Below this many doubles in a continuous range, decoding rounds search coordinates visibly.
COARSE_DOUBLES = 2**20


def _doubles_between(low: float, high: float) -> int:
    """How many doubles lie in ``[low, high]`` (a large number when the range spans zero)."""
    if low <= 0.0 <= high and low != high:
        return 2**62
    a, b = (np.array([abs(low), abs(high)], dtype=np.float64).view(np.int64))
    return int(abs(int(b) - int(a))) + 1


class SearchSpace:
    """An ordered mapping of parameter names to domains, with the two encodings.

    Raises :class:`InvalidSpaceError` naming the parameter for empty choices, ``low > high``,
    log scale with non-positive bounds, non-finite bounds or an unknown domain type.
    """

    def __init__(self, domains: Mapping[str, Domain]) -> None:
        if not domains:
            raise InvalidSpaceError("the search space has no parameters")
        for name, domain in domains.items():
            _validate(name, domain)
        self.domains: dict[str, Domain] = dict(domains)
        self.constants: dict[str, Any] = {}
        self.variables: list[str] = []
        for name, domain in self.domains.items():
            if _num_values(domain) == 1:
                self.constants[name] = domain.choices[0] if isinstance(domain, Categorical) else domain.low
            else:
                self.variables.append(name)
        self._feature_slices: list[slice] = []
        start = 0
        for name in self.variables:
            width = self._feature_width(self.domains[name])
            self._feature_slices.append(slice(start, start + width))
            start += width
        self.num_features = start

    def __repr__(self) -> str:
        return f"SearchSpace({self.domains!r})"

    @staticmethod
    def _feature_width(domain: Domain) -> int:
        if isinstance(domain, Categorical) and len(domain.choices) > 2:
            return len(domain.choices)
        return 1

    @property
    def dim(self) -> int:
        """Number of search coordinates."""
        return len(self.variables)

    # ----- search coordinates -------------------------------------------------------------

    def to_unit(self, config: Mapping[str, Any]) -> np.ndarray:
        """Search coordinates of ``config``; raises ``KeyError``/``ValueError`` naming a bad value."""
        return np.array([self._value_to_unit(n, config[n]) for n in self.variables], dtype=float)

    def _value_to_unit(self, name: str, value: Any) -> float:
        domain = self.domains[name]
        if isinstance(domain, Categorical):
            for index, choice in enumerate(domain.choices):
                if choice == value:
                    return float(index)
            raise ValueError(f"parameter {name!r}: {value!r} is not one of {domain.choices}")
        lo, hi = self._unit_range(domain)
        x = math.log(value) if domain.log else float(value)
        return min(max((x - lo) / (hi - lo), 0.0), 1.0)

    @staticmethod
    def _top(domain: Float | Integer) -> float:
        """The largest valid value: ``high``, or the last grid point below it for stepped domains."""
        count = _num_values(domain)
        if isinstance(domain, Integer) or domain.step is not None:
            # min(): low + k * step may round a hair above high for float steps.
            return min(domain.low + (count - 1) * (domain.step or 1), domain.high)
        return domain.high

    @classmethod
    def _unit_range(cls, domain: Float | Integer) -> tuple[float, float]:
        low, high = float(domain.low), float(cls._top(domain))
        if isinstance(domain, Integer) or domain.step is not None:
            half = 0.5 * (domain.step or 1)
            low, high = low - half, high + half
            if domain.log:
                low = max(low, 0.5 * domain.low)
        return (math.log(low), math.log(high)) if domain.log else (low, high)

    def from_unit(self, unit: Sequence[float]) -> dict[str, Any]:
        """The configuration at search coordinates ``unit`` (rounded, snapped, clipped)."""
        config: dict[str, Any] = {}
        for name, u in zip(self.variables, unit):
            config[name] = self._unit_to_value(name, float(u))
        config.update(self.constants)
        return {name: config[name] for name in self.domains}

    def _unit_to_value(self, name: str, u: float) -> Any:
        domain = self.domains[name]
        if isinstance(domain, Categorical):
            return domain.choices[int(np.clip(round(u), 0, len(domain.choices) - 1))]
        lo, hi = self._unit_range(domain)
        x = lo + float(np.clip(u, 0.0, 1.0)) * (hi - lo)
        x = math.exp(x) if domain.log else x
        if isinstance(domain, Integer):
            steps = round((x - domain.low) / domain.step)
            return int(np.clip(domain.low + steps * domain.step, domain.low, self._top(domain)))
        if domain.step is not None:
            steps = round((x - domain.low) / domain.step)
            x = domain.low + steps * domain.step
        return float(np.clip(x, domain.low, self._top(domain)))

    def round_unit(self, unit: np.ndarray) -> np.ndarray:
        """Snap search coordinates to the ones of valid configurations (same shape), vectorised."""
        rows = np.array(np.atleast_2d(unit), dtype=float)
        for j, name in enumerate(self.variables):
            rows[:, j] = self._round_column(self.domains[name], rows[:, j])
        return rows.reshape(np.shape(unit))

    def _round_column(self, domain: Domain, column: np.ndarray) -> np.ndarray:
        if isinstance(domain, Categorical):
            return np.clip(np.round(column), 0, len(domain.choices) - 1)
        column = np.clip(column, 0.0, 1.0)
        if isinstance(domain, Float) and domain.step is None:
            return column
        lo, hi = self._unit_range(domain)
        x = lo + column * (hi - lo)
        x = np.exp(x) if domain.log else x
        step = domain.step or 1
        values = np.clip(domain.low + np.round((x - domain.low) / step) * step, domain.low, self._top(domain))
        x = np.log(values) if domain.log else values
        return np.clip((x - lo) / (hi - lo), 0.0, 1.0)

    def sample_unit(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniformly random valid search-coordinate rows."""
        rows = rng.random((n, self.dim))
        for j, name in enumerate(self.variables):
            domain = self.domains[name]
            if isinstance(domain, Categorical):
                rows[:, j] = rng.integers(0, len(domain.choices), size=n)
        return self.round_unit(rows) if self.dim else rows

    def enumerate_unit(self, limit: int) -> np.ndarray | None:
        """Search coordinates of every configuration, or ``None`` beyond ``limit`` (or continuous)."""
        axes = []
        total = 1
        for name in self.variables:
            domain = self.domains[name]
            count = _num_values(domain)
            if count is None or total * count > limit:
                return None
            total *= count
            if isinstance(domain, Categorical):
                axes.append(np.arange(count, dtype=float))
            else:
                step = domain.step or 1
                axes.append(np.array([self._value_to_unit(name, domain.low + k * step) for k in range(count)]))
        if not axes:
            return np.zeros((1, 0))
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))

    def discrete_values(self) -> dict[int, list[float]]:
        """Ordered discrete coordinates (ints, stepped floats) with their allowed unit values.

        Coordinates with more than ``MAX_ENUMERATED_VALUES`` values are left out: the optimiser
        relaxes them and :meth:`from_unit` rounds the result.
        """
        values: dict[int, list[float]] = {}
        for j, name in enumerate(self.variables):
            domain = self.domains[name]
            count = _num_values(domain)
            if isinstance(domain, Categorical) or count is None or count > MAX_ENUMERATED_VALUES:
                continue
            step = domain.step or 1
            points = [domain.low + k * step for k in range(count)]
            values[j] = sorted({self._value_to_unit(name, p) for p in points})
        return values

    def categorical_values(self) -> dict[int, list[float]]:
        """Categorical coordinates with their allowed indices."""
        return {
            j: [float(i) for i in range(len(self.domains[name].choices))]
            for j, name in enumerate(self.variables)
            if isinstance(self.domains[name], Categorical)
        }

    # ----- features -----------------------------------------------------------------------

    def features(self, unit: torch.Tensor) -> torch.Tensor:
        """GP features of search coordinates ``unit`` (``... x dim`` to ``... x num_features``).

        Differentiable in the float and integer coordinates; categorical indices are rounded.
        """
        columns: list[torch.Tensor] = []
        for j, name in enumerate(self.variables):
            domain = self.domains[name]
            column = unit[..., j : j + 1]
            if isinstance(domain, Categorical) and len(domain.choices) > 2:
                index = column.round().clamp(0, len(domain.choices) - 1).long().squeeze(-1)
                columns.append(torch.nn.functional.one_hot(index, len(domain.choices)).to(unit))
            elif isinstance(domain, Categorical):
                columns.append(column.round().clamp(0, 1))
            else:
                columns.append(column)
        if not columns:
            return unit[..., :0]
        return torch.cat(columns, dim=-1)

    def has_coarse_floats(self) -> bool:
        """Whether a continuous parameter's range holds so few doubles (an extremely narrow range)
        that nearby search coordinates decode to one value: only then must candidates be
        compared after decoding, which costs far more than comparing coordinates."""
        return any(
            isinstance(domain, Float) and domain.step is None and _doubles_between(domain.low, domain.high) < COARSE_DOUBLES
            for domain in self.domains.values()
        )

    def realised(self, unit: np.ndarray) -> np.ndarray:
        """The search coordinates of the configuration ``unit`` decodes to."""
        return self.to_unit(self.from_unit(unit))

    def config_key(self, config: Mapping[str, Any]) -> tuple:
        """A hashable key identifying ``config`` up to rounding (for duplicate detection)."""
        return tuple(np.round(self.realised(self.to_unit(config)), 9))
