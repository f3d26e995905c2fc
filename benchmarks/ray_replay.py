"""Side by side in real Ray Tune, in compressed time: MOBSTER (``mobster-stopping``: the stopping
rule alone; ``mobster-promotion``; ``mobster-rescue``: the stopping rule with the model's rescue,
the scheduler's default) against ``ASHAScheduler`` (random search) and ``TuneBOHB`` +
``HyperBandForBOHB``, on the tables and the LCBench tasks.

    python -m benchmarks.ray_replay                                    # mlp_digits, 3 seeds
    python -m benchmarks.ray_replay --table hgb_breast_cancer --seeds 0 1 2 3
    python -m benchmarks.ray_replay --table lcbench-34539 --methods mobster-rescue asha bohb
    python -m benchmarks.ray_replay --methods mobster-stopping asha --out /tmp/ray_replay
    python -m benchmarks.ray_replay --methods mobster-rescue --merge --out benchmarks/results/ray
    python -m benchmarks.ray_replay --seeds 3 4 5 --merge --out benchmarks/results/ray   # add seeds

Each trial is a real Ray Tune trial whose trainable replays, epoch by epoch, the validation error
of its configuration: on a table, of the row its suggestion snaps to (``benchmarks/tables.py``);
on LCBench, the surrogate's at exactly the suggested values (``benchmarks/lcbench.py``), with a checkpoint per report so that promotion resumes trials exactly. Before each report it
sleeps for the epoch's cost, scaled as in the simulator (the median full training lasts 600
simulated seconds) and compressed ``--compression`` times: at the default 50, a run's budget of
4,800 simulated seconds (the protocol's, 4 workers) lasts 96 wall-clock seconds. Time is read off
the wall clock and multiplied back, so everything Ray and the tuners do on the driver counts too,
**compression times over**: a decision of 0.2 s costs 10 simulated seconds here, against 0.2 s in
the protocol's simulator. The model-based methods pay for that; ASHA's decisions are near free.

Figures per method, over seeds (the same seeds for all):

* time to target: the first simulated second at which the incumbent (the best error at the full
  resource) reaches the target, the median over ASHA's seeds of ASHA's final incumbent
  (``method="higher"``, as in the protocol); ``inf`` if never; the median over seeds and its
  ratio to ASHA's;
* final regret: the final incumbent minus the table's best (LCBench: the best of 20,000 random
  configurations);
* trials started, and epochs reported.

Every method sees the same Ray space (the table's ranges, log where the grid is log-spaced,
categoricals as choices) and the same rungs (grace period 1, reduction factor 3, ``max_t`` the
table's maximum resource). TuneBOHB needs ``hpbandster`` and ``ConfigSpace`` (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import BasicVariantGenerator
from ray.tune.stopper import Stopper

from benchmarks.report import format_ratio
from benchmarks.simulator import BUDGET_FULL_TRAININGS, budget_seconds, time_scale
from benchmarks.suite import list_benchmarks, load_benchmark
from benchmarks.tables import Benchmark
from tune_mobster import MobsterScheduler, MobsterSearcher

METRIC = "error"
REDUCTION_FACTOR = 3
METHODS = ("mobster-stopping", "mobster-promotion", "mobster-rescue", "asha", "bohb")
#: Simulated seconds per wall-clock second.
DEFAULT_COMPRESSION = 50.0
DEFAULT_WORKERS = 4


def ray_param_space(table: Benchmark) -> dict[str, Any]:
    """The benchmark's parameters as Ray domains over their ranges (a table's values snap to its grid)."""
    space: dict[str, Any] = {}
    for p in table.parameters:
        low, high = p.values[0], p.values[-1]
        if p.kind == "categorical":
            space[p.name] = tune.choice(list(p.values))
        elif p.kind == "int":
            space[p.name] = (tune.lograndint if p.log else tune.randint)(int(low), int(high) + 1)
        else:
            space[p.name] = (tune.loguniform if p.log else tune.uniform)(float(low), float(high))
    return space


def replay(config: dict[str, Any], benchmark: str, wall_scale: float) -> None:
    """Report the configuration's curve, one epoch per result, sleeping each epoch's compressed
    cost (its seconds times ``wall_scale``) first; a checkpoint goes with every report."""
    # Loaded in the worker from its name: an LCBench task holds an ONNX session, which does not
    # pickle (and its loader caches one per process).
    from benchmarks.suite import load_benchmark

    table = load_benchmark(benchmark)
    curve = table.evaluate(config)
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder, open(os.path.join(folder, "epoch.json")) as file:
            start = json.load(file)
    for epoch in range(start + 1, table.max_resource + 1):
        began = time.time()  # the simulated clock starts when the first epoch of any trial does
        time.sleep(float(curve.seconds[epoch - 1]) * wall_scale)
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "epoch.json"), "w") as file:
                json.dump(epoch, file)
            tune.report(
                {METRIC: float(curve.errors[epoch - 1]), "row": curve.key, "epoch_began": began},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )


class SimulatedBudget(Stopper):
    """Ends the experiment once ``budget`` simulated seconds have passed; records the incumbent.

    Simulated time is the wall-clock time since the first epoch of the first trial began (the
    ``epoch_began`` of the first result: Ray's start-up of the experiment, the same for every
    method, is left out) times ``compression``.
    """

    def __init__(
        self, budget: float, compression: float, max_resource: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.budget = budget
        self.compression = compression
        self.max_resource = max_resource
        self._clock = clock
        self._start: float | None = None
        self.epochs = 0
        self.incumbent = math.inf
        self.trace: list[tuple[float, float]] = []  # (simulated seconds, incumbent) at each improvement
        self.trials: set[str] = set()  # trials that reported at least once

    def now(self) -> float:
        return 0.0 if self._start is None else (self._clock() - self._start) * self.compression

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if self._start is None:
            self._start = float(result.get("epoch_began", self._clock()))
        self.epochs += 1
        self.trials.add(trial_id)
        if result.get("training_iteration") == self.max_resource and result[METRIC] < self.incumbent:
            self.incumbent = float(result[METRIC])
            self.trace.append((self.now(), self.incumbent))
        return False

    def stop_all(self) -> bool:
        return self.now() >= self.budget


@dataclass
class Run:
    method: str
    seed: int
    final_incumbent: float
    trace: list[tuple[float, float]]
    epochs: int
    trials: int
    wall_seconds: float
    time_to_target: float = field(default=math.inf)


def _searcher_and_scheduler(method: str, seed: int, max_t: int) -> tuple[Any, Any]:
    if method.startswith("mobster"):
        # Stopping with the model's rescue (the default), stopping alone, or promotion.
        rescue = method == "mobster-rescue"
        scheduler_type = "stopping" if rescue else method.split("-", 1)[1]
        # In the background, the GP's fit does not hold up Ray's event loop (and the sleeping
        # trials with it); the Ray plugin's documented mode for short trials.
        return MobsterSearcher(seed=seed, background=True), MobsterScheduler(
            max_t=max_t, reduction_factor=REDUCTION_FACTOR, type=scheduler_type, seed=seed, rescue_by_model=rescue
        )
    if method == "asha":
        return BasicVariantGenerator(random_state=seed), ASHAScheduler(
            max_t=max_t, grace_period=1, reduction_factor=REDUCTION_FACTOR
        )
    if method == "bohb":
        from ray.tune.schedulers import HyperBandForBOHB
        from ray.tune.search.bohb import TuneBOHB

        return TuneBOHB(seed=seed), HyperBandForBOHB(
            time_attr="training_iteration", max_t=max_t, reduction_factor=REDUCTION_FACTOR
        )
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def bohb_available() -> bool:
    try:
        import ConfigSpace  # noqa: F401
        import hpbandster  # noqa: F401
    except ImportError:
        return False
    return True


def run_one(table: Benchmark, method: str, seed: int, compression: float, workers: int, storage: str) -> Run:
    """One experiment: ``method`` with ``seed`` for the protocol's budget in compressed time."""
    np.random.seed(seed)  # ASHA samples brackets with numpy's global generator
    searcher, scheduler = _searcher_and_scheduler(method, seed, table.max_resource)
    stopper = SimulatedBudget(budget_seconds(workers, BUDGET_FULL_TRAININGS), compression, table.max_resource)
    started = time.perf_counter()
    tune.Tuner(
        tune.with_parameters(replay, benchmark=table.name, wall_scale=time_scale(table) / compression),
        param_space=ray_param_space(table),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="min",
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=100_000,  # the time budget ends the run
            max_concurrent_trials=workers,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"{table.name}-{method}-{seed}", storage_path=storage, stop=stopper, verbose=0
        ),
    ).fit()
    return Run(
        method=method,
        seed=seed,
        final_incumbent=stopper.incumbent,
        trace=stopper.trace,
        epochs=stopper.epochs,
        trials=len(stopper.trials),
        wall_seconds=time.perf_counter() - started,
    )


def time_to_target(trace: Sequence[tuple[float, float]], target: float) -> float:
    return next((float(t) for t, incumbent in trace if incumbent <= target), math.inf)


def summarise(table: Benchmark, runs: list[Run]) -> tuple[str, dict[str, Any]]:
    """The side-by-side table (markdown) and its figures."""
    asha = [r.final_incumbent for r in runs if r.method == "asha" and math.isfinite(r.final_incumbent)]
    target = float(np.quantile(asha, 0.5, method="higher")) if asha else math.nan
    for run in runs:
        run.time_to_target = time_to_target(run.trace, target)
    asha_ttt = float(np.median([r.time_to_target for r in runs if r.method == "asha"])) if asha else math.nan
    best = table.best_final_error()
    lines = [
        f"Table {table.name}: best final error {best:.4f}, target (ASHA's median final incumbent) {target:.4f}",
        "",
        "| method | seeds | time to target (simulated s) | vs ASHA | reached | final regret median [IQR] "
        "| trials | epochs |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    figures: dict[str, Any] = {"table": table.name, "target": target, "best": best, "methods": {}}
    for method in dict.fromkeys(r.method for r in runs):
        mine = [r for r in runs if r.method == method]
        regret = np.array([r.final_incumbent - best for r in mine])
        with np.errstate(invalid="ignore"):
            q1, median, q3 = np.quantile(regret, [0.25, 0.5, 0.75])
        ttt = float(np.median([r.time_to_target for r in mine]))
        ratio = ttt / asha_ttt if math.isfinite(asha_ttt) and asha_ttt > 0 else math.nan
        reached = sum(math.isfinite(r.time_to_target) for r in mine)
        trials = float(np.median([r.trials for r in mine]))
        epochs = float(np.median([r.epochs for r in mine]))
        lines.append(
            f"| {method} | {len(mine)} | {ttt:.0f} | {format_ratio(ratio)} | {reached}/{len(mine)} "
            f"| {median:.4f} [{q1:.4f}, {q3:.4f}] | {trials:.0f} | {epochs:.0f} |"
        )
        figures["methods"][method] = {
            "time_to_target_median": ttt,
            "time_to_target_ratio": ratio,
            "reached": reached,
            "final_regret_median": float(median),
            "final_regret_iqr": [float(q1), float(q3)],
            "trials_median": trials,
            "epochs_median": epochs,
        }
    return "\n".join(lines), figures


def plot(table: Benchmark, runs: list[Run], budget: float, path: Path) -> None:
    """Median regret over simulated time (log scale), one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = np.linspace(0.0, budget, 300)
    best = table.best_final_error()
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
    for method in dict.fromkeys(r.method for r in runs):
        curves = []
        for run in (r for r in runs if r.method == method):
            incumbent = np.full(len(times), math.inf)
            for t, value in run.trace:
                incumbent[times >= t] = np.minimum(incumbent[times >= t], value)
            curves.append(np.maximum(incumbent - best, 1e-4))
        median = np.median(np.stack(curves), axis=0)
        finite = np.isfinite(median)
        ax.plot(times[finite], median[finite], label=f"{method} ({len(curves)} seeds)")
    ax.set_yscale("log")
    ax.set_xlim(0, budget)
    ax.set_xlabel("simulated seconds (real Ray Tune, time compressed, 4 workers)")
    ax.set_ylabel("regret of the incumbent (floored at 1e-4)")
    ax.set_title(f"{table.name} in Ray Tune: median regret over seeds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def stored_runs(path: Path, keep: Callable[[Run], bool]) -> list[Run]:
    """The runs stored in ``path`` (a ``runs_TABLE.json``) that ``keep`` accepts."""
    if not path.exists():
        return []
    runs = [Run(**{**r, "trace": [tuple(point) for point in r["trace"]]}) for r in json.loads(path.read_text())]
    return [r for r in runs if keep(r)]


def main(argv: Sequence[str] | None = None, *, run: Callable[..., Run] = run_one) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default="mlp_digits", choices=list_benchmarks(), metavar="BENCHMARK")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--compression", type=float, default=DEFAULT_COMPRESSION,
                        help="simulated seconds per wall-clock second (default 50)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--out", type=Path, default=None, help="folder for runs.json, summary.md and the PNG")
    parser.add_argument("--merge", action="store_true",
                        help="keep the runs stored under --out but those (method, seed) run now "
                             "(rerun one method, or add seeds)")
    args = parser.parse_args(argv)
    if args.merge and args.out is None:
        parser.error("--merge needs --out")

    table = load_benchmark(args.table)
    methods = [m for m in args.methods if m != "bohb" or bohb_available()]
    notes = [] if methods == list(args.methods) else ["TuneBOHB skipped: pip install hpbandster ConfigSpace"]
    # Trials sleep, so they need no real core each: one logical CPU per worker, plus the driver.
    ray.init(num_cpus=args.workers, include_dashboard=False, ignore_reinit_error=True)
    runs: list[Run] = []
    if args.merge:  # the stored runs, but those made again now
        planned = {(method, seed) for method in methods for seed in args.seeds}
        runs = stored_runs(args.out / f"runs_{table.name}.json", keep=lambda r: (r.method, r.seed) not in planned)
    with tempfile.TemporaryDirectory() as storage:
        for seed in args.seeds:  # seed-major, so that a cut-short run still compares methods
            for method in methods:
                runs.append(run(table, method, seed, args.compression, args.workers, storage))
                last = runs[-1]
                print(f"{method} seed {seed}: incumbent {last.final_incumbent:.4f}, {last.trials} trials, "
                      f"{last.epochs} epochs, {last.wall_seconds:.0f} s", flush=True)  # fmt: skip
    if not any(r.method == "asha" for r in runs):  # stored ones count (--merge)
        notes.append("no ASHA runs: the target is undefined")
    text, figures = summarise(table, runs)
    text = "\n".join([text, *notes])
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"runs_{table.name}.json").write_text(json.dumps([asdict(r) for r in runs], indent=1))
        (args.out / f"summary_{table.name}.md").write_text(text + "\n")
        plot(table, runs, budget_seconds(args.workers, BUDGET_FULL_TRAININGS), args.out / f"ray_regret_{table.name}.png")
    return figures


if __name__ == "__main__":
    main()
