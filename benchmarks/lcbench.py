"""LCBench (Zimmer et al. 2021) through YAHPO Gym's ONNX surrogate (Pfisterer et al. 2022).

34 OpenML tasks; an MLP trained for 52 epochs with 7 numerical hyperparameters. Each task is one
benchmark, named ``lcbench-<OpenML task id>`` (for example ``lcbench-7593``). Unlike the stored
tables, a suggestion is evaluated at exactly the values the sampler chose: the surrogate is
queried at every epoch 1..52 of that configuration, and returns validation accuracy and the
cumulative training time. The metric is the validation error ``1 - val_accuracy / 100``; the cost
of an epoch is the increase of the cumulative time (scaled by the simulator so that the median
full training lasts 600 simulated seconds, as for every benchmark).

The surrogate's files (``model.onnx``, ``config_space.json``, ``encoding.json``; Apache 2.0) are
never part of this repository. They are read from ``$YAHPO_DATA/lcbench/``, else from
``../shared/data/yahpo/lcbench/`` beside the repository; get them from the public ``yahpo_data``
repository (its ``lcbench`` folder) and point ``$YAHPO_DATA`` at the folder that holds ``lcbench/``.

Why not ``yahpo_gym.BenchmarkSet``: yahpo_gym 1.0.2 requires ``numpy<2`` and ``ConfigSpace<=0.6.1``,
and this project runs on numpy 2 (torch, Ray, Optuna) with ConfigSpace 1.x (Ray's TuneBOHB). So the
ONNX model is called with ``onnxruntime`` exactly as ``BenchmarkSet.objective_function`` calls it:
inputs ``x_cat`` (int32, the task's code from ``encoding.json``) and ``x_cont`` (float32: epoch,
batch_size, learning_rate, momentum, weight_decay, num_layers, max_units, max_dropout as raw
values), outputs ``(time, val_accuracy, val_cross_entropy, val_balanced_accuracy,
test_cross_entropy, test_balanced_accuracy)``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.tables import Evaluation, Parameter

PREFIX = "lcbench-"
MAX_EPOCHS = 52
#: The surrogate's continuous inputs, in the order the model takes them.
INPUTS = ("epoch", "batch_size", "learning_rate", "momentum", "weight_decay", "num_layers", "max_units", "max_dropout")
#: Output columns used here.
TIME_COLUMN, ACCURACY_COLUMN = 0, 1
#: The 34 tasks of LCBench (YAHPO's instances).
TASKS = (
    "3945", "7593", "34539", "126025", "126026", "126029", "146212", "167104", "167149", "167152",
    "167161", "167168", "167181", "167184", "167185", "167190", "167200", "167201", "168329", "168330",
    "168331", "168335", "168868", "168908", "168910", "189354", "189862", "189865", "189866", "189873",
    "189905", "189906", "189908", "189909",
)  # fmt: skip
#: The only tasks on which the library's defaults may be chosen; the others are for reporting.
TUNING_TASKS = ("34539", "126025", "126029", "146212", "167104", "167149", "167152", "167161", "167168", "167181")
EVALUATION_TASKS = tuple(t for t in TASKS if t not in TUNING_TASKS)
#: Random configurations behind a task's time scale and its reference best error.
REFERENCE_CONFIGURATIONS = 20_000
REFERENCE_SEED = 0
#: An epoch never costs less than this share of the configuration's mean epoch (the surrogate's
#: cumulative time is not always increasing).
MIN_EPOCH_SHARE = 0.01
#: Where the data is looked for when ``$YAHPO_DATA`` is not set: ``shared/`` beside the repository.
FALLBACK_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "yahpo"


class MissingDataError(FileNotFoundError):
    """The LCBench surrogate files are not where they are looked for."""


def data_folder() -> Path:
    """The folder holding ``model.onnx`` & co: ``$YAHPO_DATA/lcbench`` or the shared fallback."""
    root = Path(os.environ["YAHPO_DATA"]) if os.environ.get("YAHPO_DATA") else FALLBACK_DATA
    return root / "lcbench"


def require_data() -> Path:
    """:func:`data_folder`, or a :class:`MissingDataError` that says how to get the files."""
    folder = data_folder()
    missing = [f for f in ("model.onnx", "config_space.json", "encoding.json") if not (folder / f).is_file()]
    if missing:
        raise MissingDataError(
            f"LCBench surrogate not found: {folder} lacks {', '.join(missing)}. Download the 'lcbench' folder of "
            "the public yahpo_data repository (YAHPO Gym's surrogates, Apache 2.0) and set YAHPO_DATA to the "
            "folder that holds it (YAHPO_DATA=/path/to/yahpo_data, with /path/to/yahpo_data/lcbench/model.onnx)."
        )
    return folder


def benchmark_names(tasks: tuple[str, ...] = TASKS) -> list[str]:
    return [PREFIX + t for t in tasks]


def is_lcbench(name: str) -> bool:
    return name.startswith(PREFIX) and name[len(PREFIX):] in TASKS


def _parameters(config_space: Mapping[str, Any]) -> list[Parameter]:
    """The config space's numerical hyperparameters (epoch and the task id excluded), by name."""
    params = []
    for hp in sorted(config_space["hyperparameters"], key=lambda h: h["name"]):
        if hp["name"] in ("epoch", "OpenML_task_id"):
            continue
        kind = "int" if hp["type"] == "uniform_int" else "float"
        lo, hi = (int(hp["lower"]), int(hp["upper"])) if kind == "int" else (float(hp["lower"]), float(hp["upper"]))
        # Only the range is used: values[0] and values[-1] (there is no grid to snap to).
        params.append(Parameter(hp["name"], kind, (lo, hi), bool(hp["log"])))
    return params


@functools.cache
def _session(model: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread: benchmark processes run side by side and decision time is measured on one core.
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])


@dataclass(eq=False)  # hashed by identity: curves are cached per (benchmark, configuration)
class LCBench:
    """One LCBench task: evaluates any configuration of its space at every epoch."""

    task: str
    folder: Path = field(default_factory=require_data)
    max_resource: int = MAX_EPOCHS

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown LCBench task {self.task!r}; known: {', '.join(TASKS)}")
        self.name = PREFIX + self.task
        self.parameters = _parameters(json.loads((self.folder / "config_space.json").read_text()))
        encoding = json.loads((self.folder / "encoding.json").read_text())["OpenML_task_id"]
        self._code = np.int32(encoding[self.task])
        self._session = _session(self.folder / "model.onnx")
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._output = self._session.get_outputs()[0].name

    # ----- the surrogate ---------------------------------------------------------------------

    def predict(self, configs: list[Mapping[str, Any]], epochs: np.ndarray) -> np.ndarray:
        """Raw surrogate outputs, shape ``(len(configs), len(epochs), 6)``."""
        hp = np.array([[float(c[name]) for name in INPUTS[1:]] for c in configs], dtype=np.float32)
        n, e = len(configs), len(epochs)
        x_cont = np.empty((n, e, len(INPUTS)), dtype=np.float32)
        x_cont[:, :, 0] = np.asarray(epochs, dtype=np.float32)[None, :]
        x_cont[:, :, 1:] = hp[:, None, :]
        x_cat = np.full((n * e, 1), self._code, dtype=np.int32)
        out = self._session.run([self._output], {self._inputs[0]: x_cat, self._inputs[1]: x_cont.reshape(n * e, -1)})[0]
        return np.asarray(out, dtype=np.float64).reshape(n, e, -1)

    def curves(self, configs: list[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Validation error and seconds of each epoch 1..52, each ``(len(configs), 52)``."""
        out = self.predict(configs, np.arange(1, self.max_resource + 1))
        error = np.clip(1.0 - out[:, :, ACCURACY_COLUMN] / 100.0, 0.0, 1.0)
        cumulative = np.maximum.accumulate(np.maximum(out[:, :, TIME_COLUMN], 0.0), axis=1)
        per_epoch = np.diff(cumulative, axis=1, prepend=0.0)
        floor = MIN_EPOCH_SHARE * np.maximum(cumulative[:, -1:], 1e-9) / self.max_resource
        return error, np.maximum(per_epoch, floor)

    # ----- the benchmark interface (as benchmarks.tables.Table) ------------------------------

    def evaluate(self, config: Mapping[str, Any]) -> Evaluation:
        """The learning curve of ``config`` exactly as given (no grid, no snapping)."""
        values = tuple(float(config[p.name]) for p in self.parameters)
        error, seconds = _cached_curve(self, values)
        return Evaluation(error, seconds, config_key(values))

    def median_full_training_seconds(self) -> float:
        """Median over 20,000 random configurations of the surrogate's time for all 52 epochs."""
        return self._reference()[0]

    def best_final_error(self) -> float:
        """The best final error of the same 20,000 random configurations (regret is taken against it;
        a tuner can end below it, where a regret of 0 is recorded)."""
        return self._reference()[1]

    def random_configs(self, n: int, seed: int) -> list[dict[str, Any]]:
        """``n`` configurations drawn uniformly from the space (log scale for log parameters)."""
        rng = np.random.default_rng(seed)
        columns = {}
        for p in self.parameters:
            lo, hi = float(p.values[0]), float(p.values[-1])
            if p.kind == "int":
                # As a sampler draws an int: uniform over the integers (on log scale if log).
                u = rng.uniform(np.log(lo - 0.5) if p.log else lo - 0.5, np.log(hi + 0.5) if p.log else hi + 0.5, n)
                columns[p.name] = np.clip(np.round(np.exp(u) if p.log else u), lo, hi).astype(int)
            else:
                u = rng.uniform(np.log(lo) if p.log else lo, np.log(hi) if p.log else hi, n)
                columns[p.name] = np.exp(u) if p.log else u
        return [{name: col[i].item() for name, col in columns.items()} for i in range(n)]

    def at_bounds(self, config: Mapping[str, Any], tolerance: float = 0.01) -> list[str]:
        """Parameters of ``config`` within ``tolerance`` of their range's ends (on log scale if log):
        where a surrogate extrapolates, the best configurations it rewards tend to sit there."""
        return [p.name for p in self.parameters if min(p.unit(config[p.name]), 1 - p.unit(config[p.name])) <= tolerance]

    def corners(self) -> tuple[float, int]:
        """The best final error over the 2^7 corners of the space (every parameter at one of its
        bounds), and how many corners end below :meth:`best_final_error`. Where corners beat the
        best of 20,000 random configurations, the surrogate extrapolates in a tuner's favour: a
        method that ends there has found the surrogate's optimum, not necessarily the MLP's."""
        return _corner_figures(self.folder, self.task)

    def _reference(self) -> tuple[float, float]:
        return _reference_figures(self.folder, self.task)


def config_key(values: tuple[float, ...]) -> int:
    """A stable 48-bit identity of a configuration (``rows`` of a run, for distinct-config counts)."""
    return int.from_bytes(hashlib.blake2b(repr(values).encode(), digest_size=6).digest(), "big")


@functools.lru_cache(maxsize=4096)
def _cached_curve(bench: LCBench, values: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    error, seconds = bench.curves([dict(zip((p.name for p in bench.parameters), values))])
    return error[0], seconds[0]


@functools.cache
def _reference_figures(folder: Path, task: str) -> tuple[float, float]:
    bench = LCBench(task, folder)
    configs = bench.random_configs(REFERENCE_CONFIGURATIONS, REFERENCE_SEED)
    full_time = np.empty(len(configs))
    final_error = np.empty(len(configs))
    for start in range(0, len(configs), 2000):
        chunk = configs[start:start + 2000]
        out = bench.predict(chunk, np.array([bench.max_resource]))
        full_time[start:start + 2000] = np.maximum(out[:, 0, TIME_COLUMN], 0.0)
        final_error[start:start + 2000] = np.clip(1.0 - out[:, 0, ACCURACY_COLUMN] / 100.0, 0.0, 1.0)
    return float(np.median(full_time)), float(final_error.min())


@functools.cache
def _corner_figures(folder: Path, task: str) -> tuple[float, int]:
    bench = LCBench(task, folder)
    bounds = [(p.values[0], p.values[-1]) for p in bench.parameters]
    corners = [
        {p.name: pair[bit] for p, pair, bit in zip(bench.parameters, bounds, bits)}
        for bits in itertools.product((0, 1), repeat=len(bounds))
    ]
    final = np.clip(1.0 - bench.predict(corners, np.array([bench.max_resource]))[:, 0, ACCURACY_COLUMN] / 100.0, 0.0, 1.0)
    return float(final.min()), int(np.sum(final < bench.best_final_error()))


@functools.cache
def load(name: str) -> LCBench:
    """The benchmark ``lcbench-<task>`` (one per process: the ONNX session is shared)."""
    if not is_lcbench(name):
        raise ValueError(f"{name!r} is not an LCBench benchmark; known: {', '.join(benchmark_names())}")
    return LCBench(name[len(PREFIX):])
