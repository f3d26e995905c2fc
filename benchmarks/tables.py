"""Tabulated multi-fidelity learning curves for simulated benchmarking.

A table holds, for every configuration of a grid (the stored tables are full factorial grids),
the validation error after every resource unit (epoch or boosting iteration) and the measured
training cost per unit. The simulator replays these curves instead of training, so a whole
asynchronous tuning run costs seconds. Suggestions from a tuner are mapped onto the table with
:meth:`Table.nearest`: each parameter snaps to its nearest grid value.

On disk a table ``NAME`` is two files in ``benchmarks/data/``: ``NAME.json`` (parameters, resource
and metric description, provenance) and ``NAME.npz`` (``curves`` float32 ``(N, R)``,
``seconds_per_unit`` float32 ``(N,)``, and ``config_index`` int16 ``(N, P)``: for each configuration
the index of its value in each parameter's grid). Tables are rebuilt by
``python -m benchmarks.build_tables``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Parameter:
    """One hyperparameter and its finite grid.

    ``values`` are sorted ascending for ``float`` and ``int`` parameters and are the choices for a
    ``categorical`` one. ``log`` says the grid is log-spaced, so snapping and distances use log scale.
    """

    name: str
    kind: Literal["float", "int", "categorical"]
    values: tuple
    log: bool = False

    def snap(self, value: Any) -> int:
        """Index of the grid value nearest to ``value`` (on log scale for log parameters)."""
        if self.kind == "categorical":
            try:
                return self.values.index(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a choice of parameter {self.name!r}") from None
        grid = self._scaled(np.asarray(self.values, dtype=float))
        return int(np.argmin(np.abs(grid - self._scaled(value))))

    def unit(self, value: Any) -> float:
        """Position of a numeric ``value`` in [0, 1] across the grid's range (clipped, log if ``log``)."""
        lo, hi = self._scaled(self.values[0]), self._scaled(self.values[-1])
        return 0.0 if hi == lo else float((self._scaled(value) - lo) / (hi - lo))

    def _scaled(self, value: Any) -> Any:
        # Clipping to the grid's range first keeps log() defined for any input.
        x = np.clip(np.asarray(value, dtype=float), float(self.values[0]), float(self.values[-1]))
        return np.log(x) if self.log else x


@dataclass(frozen=True)
class Evaluation:
    """What training one configuration gives, at every resource unit 1..R.

    ``errors[r - 1]`` is the validation error after ``r`` units and ``seconds[r - 1]`` that unit's
    cost (before the simulator's time scale); ``key`` identifies the configuration trained (a table
    row, or a hash of the exact values), so runs can count how many distinct ones they trained.
    """

    errors: np.ndarray
    seconds: np.ndarray
    key: int


class Benchmark(Protocol):
    """What the simulators need of a benchmark: a stored :class:`Table` or an LCBench task."""

    name: str
    parameters: list[Parameter]
    max_resource: int

    def evaluate(self, config: Mapping[str, Any]) -> Evaluation: ...

    def median_full_training_seconds(self) -> float: ...

    def best_final_error(self) -> float: ...


@dataclass
class Table:
    """Learning curves of ``N`` grid configurations.

    ``curves[i, r - 1]`` is the validation error (lower is better) of ``configs[i]`` after ``r``
    resource units; ``seconds_per_unit[i]`` is its measured training cost per unit. ``metadata``
    describes the model, dataset, metric and how the table was built.
    """

    name: str
    parameters: list[Parameter]
    configs: list[dict[str, Any]]
    curves: np.ndarray
    seconds_per_unit: np.ndarray
    max_resource: int
    metadata: dict[str, Any] = field(default_factory=dict)
    # Lookup structures for nearest(), derived from the fields above: the grid index of each
    # configuration's values, a map from those index tuples to rows, and normalised numeric values.
    _grid_index: np.ndarray = field(init=False, repr=False, compare=False)
    _rows: dict[tuple[int, ...], int] = field(init=False, repr=False, compare=False)
    _units: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.configs)
        if self.curves.shape != (n, self.max_resource):
            raise ValueError(f"curves have shape {self.curves.shape}, expected {(n, self.max_resource)}")
        if self.seconds_per_unit.shape not in ((n,), (n, self.max_resource)):
            raise ValueError(f"seconds_per_unit has shape {self.seconds_per_unit.shape}")
        self._grid_index = np.array(
            [[p.snap(c[p.name]) for p in self.parameters] for c in self.configs], dtype=np.int64
        ).reshape(n, len(self.parameters))
        self._rows = {tuple(row): i for i, row in enumerate(self._grid_index.tolist())}
        # Categorical columns stay 0 here; nearest() compares their grid indices instead.
        self._units = np.array(
            [[0.0 if p.kind == "categorical" else p.unit(c[p.name]) for p in self.parameters] for c in self.configs]
        ).reshape(n, len(self.parameters))

    def nearest(self, config: Mapping[str, Any]) -> int:
        """Index of the table configuration nearest to ``config``.

        Each parameter is snapped to its nearest grid value (log scale for log parameters). If that
        combination is in the table it is returned; otherwise the configuration minimising the
        squared distance to ``config`` is: numeric parameters on their [0, 1]-normalised (log)
        scale, plus 1 per categorical mismatch.
        """
        snapped = tuple(p.snap(config[p.name]) for p in self.parameters)
        if snapped in self._rows:
            return self._rows[snapped]
        dist = np.zeros(len(self.configs))
        for j, p in enumerate(self.parameters):
            if p.kind == "categorical":
                dist += self._grid_index[:, j] != snapped[j]
            else:
                dist += (self._units[:, j] - p.unit(config[p.name])) ** 2
        return int(np.argmin(dist))

    def best_final_error(self) -> float:
        """Lowest validation error at the full resource over all configurations."""
        return float(self.curves[:, -1].min())

    def unit_seconds(self) -> np.ndarray:
        """Seconds of every unit of every configuration, ``(N, R)`` (a constant per-unit cost repeated)."""
        per_unit = np.asarray(self.seconds_per_unit, dtype=float)
        return np.repeat(per_unit[:, None], self.max_resource, axis=1) if per_unit.ndim == 1 else per_unit

    def evaluate(self, config: Mapping[str, Any]) -> Evaluation:
        """The curve of the table row nearest to ``config`` (:meth:`nearest`)."""
        row = self.nearest(config)
        seconds = np.asarray(self.seconds_per_unit[row], dtype=float)
        return Evaluation(self.curves[row], np.broadcast_to(seconds, (self.max_resource,)), row)

    def median_full_training_seconds(self) -> float:
        """Median over the table's configurations of all their units' seconds."""
        return float(np.median(self.unit_seconds().sum(axis=1)))


def halving_results(table: Table, rows: np.ndarray, reduction_factor: int = 3) -> dict[int, dict[int, float]]:
    """Row -> {rung level: error} as synchronous successive halving over ``rows`` leaves them:
    every row is measured at rung 1, and at each rung the best ``1 / reduction_factor`` (ties
    included) goes on to the next (rungs 1, eta, eta^2, ... and the full resource)."""
    # Imported here: the reference runner's environment (Syne Tune, no torch) imports this module,
    # and importing the mobster package loads torch.
    from mobster.rungs import rung_levels

    results: dict[int, dict[int, float]] = {int(row): {} for row in rows}
    alive = [int(row) for row in rows]
    for level in rung_levels(1, table.max_resource, reduction_factor):
        values = table.curves[alive, level - 1]
        for row, value in zip(alive, values):
            results[row][level] = float(value)
        bar = np.quantile(values, 1 / reduction_factor)
        alive = [row for row, value in zip(alive, values) if value <= bar]
    return results


def list_tables(data_dir: Path = DATA_DIR) -> list[str]:
    """Names of the tables stored in ``data_dir``, sorted."""
    return sorted(p.stem for p in Path(data_dir).glob("*.json") if p.with_suffix(".npz").exists())


def load_table(name: str, data_dir: Path = DATA_DIR) -> Table:
    """Load table ``name`` from ``data_dir``."""
    base = Path(data_dir) / name
    meta = json.loads(base.with_suffix(".json").read_text())
    parameters = [
        Parameter(p["name"], p["kind"], tuple(p["values"]), bool(p["log"])) for p in meta.pop("parameters")
    ]
    with np.load(base.with_suffix(".npz")) as arrays:
        curves = arrays["curves"].astype(np.float64)
        seconds = arrays["seconds_per_unit"].astype(np.float64)
        index = arrays["config_index"]
    configs = [{p.name: p.values[k] for p, k in zip(parameters, row)} for row in index.tolist()]
    return Table(meta.pop("name"), parameters, configs, curves, seconds, int(meta.pop("max_resource")), meta)


def save_table(table: Table, data_dir: Path = DATA_DIR) -> None:
    """Write ``table`` as ``NAME.json`` + ``NAME.npz`` in ``data_dir`` (the format ``load_table`` reads)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "name": table.name,
        "max_resource": table.max_resource,
        "parameters": [
            {"name": p.name, "kind": p.kind, "values": list(p.values), "log": p.log} for p in table.parameters
        ],
        **table.metadata,
    }
    (data_dir / f"{table.name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    np.savez_compressed(
        data_dir / f"{table.name}.npz",
        curves=table.curves.astype(np.float32),
        seconds_per_unit=table.seconds_per_unit.astype(np.float32),
        config_index=table._grid_index.astype(np.int16),
    )
