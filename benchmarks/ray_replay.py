"""Side by side in real Ray Tune on replayed learning curves: MOBSTER (stopping, promotion) against
``ASHAScheduler`` (random search) and ``TuneBOHB`` + ``HyperBandForBOHB``.

    python -m benchmarks.ray_replay                                   # mlp_digits, 3 seeds
    python -m benchmarks.ray_replay --table hgb_breast_cancer --seeds 0 1 2 3 --budget 16
    python -m benchmarks.ray_replay --methods mobster-stopping asha --out /tmp/ray_replay

Each trial is a real Ray Tune trial whose trainable reports, epoch by epoch, the tabulated
validation error of the table configuration nearest to its suggested one (``benchmarks/tables.py``);
a checkpoint goes with every report, so promotion resumes trials exactly. Nothing is trained, so
the comparison is about decisions, not about hardware.

Budget: ``--budget`` full trainings' worth of epochs (``budget * max_resource`` reported results
over all trials, on ``--workers`` concurrent trials), the same for every method and seed; a Tune
``Stopper`` ends the experiment there. Figures per method, over seeds (same seeds for all):

* final regret: incumbent (best error observed at the full resource) minus the table's best;
* epochs to target: the first cumulative epoch count at which the incumbent reaches the target,
  the median over ASHA's seeds of ASHA's final incumbent (``method="higher"``, as the benchmark
  protocol says); ``inf`` if never reached;
* wall seconds of the whole run (decision time included: the GP runs on the driver).

Every method sees the same Ray space (the table's ranges, log where the grid is log-spaced,
categoricals as choices) and the same rungs (grace period 1, reduction factor 3, ``max_t`` the
table's maximum resource). TuneBOHB needs ``pip install hpbandster ConfigSpace``; without them it is
skipped with a note.
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

from benchmarks.tables import Table, load_table
from tune_mobster import MobsterScheduler, MobsterSearcher

METRIC = "error"
REDUCTION_FACTOR = 3
METHODS = ("mobster-stopping", "mobster-promotion", "asha", "bohb")


def ray_param_space(table: Table) -> dict[str, Any]:
    """The table's parameters as Ray domains over their grid ranges (values snap to the grid)."""
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


def replay(config: dict[str, Any], table: Table) -> None:
    """Report the nearest table configuration's curve, one epoch per result, with checkpoints."""
    row = table.nearest(config)
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder, open(os.path.join(folder, "epoch.json")) as file:
            start = json.load(file)
    for epoch in range(start + 1, table.max_resource + 1):
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "epoch.json"), "w") as file:
                json.dump(epoch, file)
            tune.report(
                {METRIC: float(table.curves[row, epoch - 1]), "row": row},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )


class EpochBudget(Stopper):
    """Ends the experiment after ``budget`` reported epochs; records the incumbent as it goes."""

    def __init__(self, budget: int, max_resource: int) -> None:
        self.budget = budget
        self.max_resource = max_resource
        self.epochs = 0
        self.incumbent = math.inf
        self.trace: list[tuple[int, float]] = []  # (cumulative epochs, incumbent) at each change
        self.trials: set[str] = set()  # trials that reported at least once

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self.epochs += 1
        self.trials.add(trial_id)
        if result.get("training_iteration") == self.max_resource and result[METRIC] < self.incumbent:
            self.incumbent = float(result[METRIC])
            self.trace.append((self.epochs, self.incumbent))
        return False

    def stop_all(self) -> bool:
        return self.epochs >= self.budget


@dataclass
class Run:
    method: str
    seed: int
    final_incumbent: float
    trace: list[tuple[int, float]]
    epochs: int
    trials: int
    wall_seconds: float
    note: str = ""
    epochs_to_target: float = field(default=math.inf)


def _searcher_and_scheduler(method: str, seed: int, max_t: int) -> tuple[Any, Any]:
    if method.startswith("mobster"):
        scheduler_type = method.split("-", 1)[1]
        return MobsterSearcher(seed=seed), MobsterScheduler(
            max_t=max_t, reduction_factor=REDUCTION_FACTOR, type=scheduler_type, seed=seed
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


def run_one(table: Table, method: str, seed: int, budget_trainings: int, workers: int, storage: str) -> Run:
    """One experiment: ``method`` with ``seed`` until ``budget_trainings * max_resource`` epochs."""
    np.random.seed(seed)  # ASHA samples brackets with numpy's global generator
    stopper = EpochBudget(budget_trainings * table.max_resource, table.max_resource)
    searcher, scheduler = _searcher_and_scheduler(method, seed, table.max_resource)
    started = time.perf_counter()
    tune.Tuner(
        tune.with_parameters(replay, table=table),
        param_space=ray_param_space(table),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="min",
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=100_000,  # the epoch budget ends the run
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


def epochs_to_target(trace: Sequence[tuple[int, float]], target: float) -> float:
    return next((float(epochs) for epochs, incumbent in trace if incumbent <= target), math.inf)


def summarise(table: Table, runs: list[Run]) -> tuple[str, dict[str, Any]]:
    """The side-by-side table (markdown) and its figures."""
    asha = [r.final_incumbent for r in runs if r.method == "asha" and math.isfinite(r.final_incumbent)]
    target = float(np.quantile(asha, 0.5, method="higher")) if asha else math.nan
    for run in runs:
        run.epochs_to_target = epochs_to_target(run.trace, target)
    best = table.best_final_error()
    lines = [
        f"Table {table.name}: max resource {table.max_resource}, best final error {best:.4f}, "
        f"target (ASHA's median final incumbent) {target:.4f}",
        "",
        "| method | seeds | final regret median [IQR] | epochs to target median | trials | wall s median |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    figures: dict[str, Any] = {"table": table.name, "target": target, "best": best, "methods": {}}
    for method in dict.fromkeys(r.method for r in runs):
        mine = [r for r in runs if r.method == method]
        regret = np.array([r.final_incumbent - best for r in mine])
        q1, median, q3 = np.quantile(regret, [0.25, 0.5, 0.75])
        to_target = float(np.median([r.epochs_to_target for r in mine]))
        trials = float(np.median([r.trials for r in mine]))
        wall = float(np.median([r.wall_seconds for r in mine]))
        lines.append(
            f"| {method} | {len(mine)} | {median:.4f} [{q1:.4f}, {q3:.4f}] | {to_target:.0f} "
            f"| {trials:.0f} | {wall:.0f} |"
        )
        figures["methods"][method] = {
            "final_regret_median": float(median),
            "final_regret_iqr": [float(q1), float(q3)],
            "epochs_to_target_median": to_target,
            "trials_median": trials,
            "wall_seconds_median": wall,
        }
    return "\n".join(lines), figures


def main(argv: Sequence[str] | None = None, *, run: Callable[..., Run] = run_one) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default="mlp_digits")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=12, help="full trainings' worth of epochs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="folder for runs.json and summary.md")
    args = parser.parse_args(argv)

    table = load_table(args.table)
    methods = [m for m in args.methods if m != "bohb" or bohb_available()]
    notes = [] if methods == list(args.methods) else ["TuneBOHB skipped: pip install hpbandster ConfigSpace"]
    if "asha" not in methods:
        notes.append("no ASHA runs: the target is undefined")
    ray.init(num_cpus=args.workers, include_dashboard=False, ignore_reinit_error=True)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as storage:
        for seed in args.seeds:  # seed-major, so that a cut-short run still compares methods
            for method in methods:
                runs.append(run(table, method, seed, args.budget, args.workers, storage))
                print(f"{method} seed {seed}: incumbent {runs[-1].final_incumbent:.4f} "
                      f"after {runs[-1].epochs} epochs, {runs[-1].trials} trials, {runs[-1].wall_seconds:.0f} s",
                      flush=True)  # fmt: skip
    text, figures = summarise(table, runs)
    text = "\n".join([text, *notes])
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "runs.json").write_text(json.dumps([asdict(r) for r in runs], indent=1))
        (args.out / "summary.md").write_text(text + "\n")
    return figures


if __name__ == "__main__":
    main()
