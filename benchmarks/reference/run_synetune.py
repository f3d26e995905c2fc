"""The reference MOBSTER and ASHA (Syne Tune 0.13.0) on the benchmarks, in its own simulator.

Runs in the separate environment that ``benchmarks/reference/setup.sh`` builds (Syne Tune 0.13.0
wants numpy<2; it is never a dependency of the library)::

    bash benchmarks/reference/setup.sh
    .venv-synetune/bin/python -m benchmarks.reference.run_synetune --tables mlp_digits --seeds 10
    .venv-synetune/bin/python -m benchmarks.reference.run_synetune --tables lcbench --seeds 10

``--tables`` takes benchmark and group names as ``benchmarks.run`` does (``benchmarks/suite.py``:
``real``, ``lcbench``, ``lcbench-tuning``, ``lcbench-evaluation``); results go by default where
``benchmarks.run`` puts them (``benchmarks/results/v2/budget-B``).

Each benchmark becomes a Syne Tune ``Blackbox`` that trains a configuration with
``Benchmark.evaluate``: a stored table replays its nearest row (``Table.nearest``), an LCBench
task evaluates its surrogate at exactly the suggested values. The elapsed time per epoch is the
benchmark's, scaled exactly as in ``benchmarks/simulator.py`` (median full training = 600 s);
``UserBlackboxBackend`` +
``SimulatorCallback`` replay it with ``K`` workers for the same budget. Schedulers are the
documented defaults: ``MOBSTER`` / ``ASHA`` (``type="stopping"``, one bracket, GP model
``gp_multitask`` with the ``exp-decay-sum`` kernel), ``grace_period=1``, ``reduction_factor=3``.

Decision time. Syne Tune's simulator adds to its clock the WALL time spent outside the backend
(the whole tuner loop, its result bookkeeping included). To measure both tuners the same way,
the runner replaces that with the CPU seconds spent inside the scheduler's own methods
(``suggest``, ``on_trial_add``, ``on_trial_result``, ``on_trial_complete``, ...), one thread.
The "free" clock of a completion is its charged time less the decision seconds charged before it
(the reference's decisions delay every worker at once in its simulator, so this is approximate).

Results are merged into ``OUT/runs/`` in the format of ``benchmarks/report.py`` (methods
``ref-mobster`` and ``ref-asha``); ``python -m benchmarks.report`` (library venv) includes them.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import report  # noqa: E402
from benchmarks.simulator import (  # noqa: E402
    BUDGET_FULL_TRAININGS,
    DEFAULT_WORKERS,
    Simulation,
    Suggestion,
    budget_seconds,
    time_scale,
)
from benchmarks.lcbench import MissingDataError  # noqa: E402
from benchmarks.suite import expand, groups, list_benchmarks, load_benchmark  # noqa: E402
from benchmarks.tables import Benchmark  # noqa: E402

METHODS = {"ref-mobster": "MOBSTER", "ref-asha": "ASHA"}
METRIC = "error"
RESOURCE = "epoch"
MAX_RESOURCE_ATTR = "epochs"
ELAPSED = "elapsed_time"
#: Simulated seconds between two tuner loop iterations (Syne Tune's default is 5 s; results
#: reach the scheduler at that granularity, so finer is closer to the event-driven simulator).
TUNER_SLEEP_SECONDS = 1.0
VERSION = "syne-tune 0.13.0"


def config_space(table: Benchmark) -> dict[str, Any]:
    """The benchmark's parameters as Syne Tune domains over their ranges (log where log-spaced)."""
    from syne_tune.config_space import choice, lograndint, loguniform, randint, uniform

    space: dict[str, Any] = {}
    for p in table.parameters:
        lo, hi = p.values[0], p.values[-1]
        if p.kind == "categorical":
            space[p.name] = choice(list(p.values))
        elif p.kind == "int":
            space[p.name] = lograndint(int(lo), int(hi)) if p.log else randint(int(lo), int(hi))
        else:
            space[p.name] = loguniform(float(lo), float(hi)) if p.log else uniform(float(lo), float(hi))
    return space


def make_blackbox(table: Benchmark, scale: float) -> Any:
    """A Syne Tune ``Blackbox`` training with ``table.evaluate``: error and cumulative scaled
    seconds per epoch (a table's nearest row, or an LCBench surrogate at the exact values)."""
    from syne_tune.blackbox_repository.blackbox import Blackbox
    from syne_tune.config_space import randint

    class BenchmarkBlackbox(Blackbox):
        def __init__(self) -> None:
            super().__init__(
                configuration_space=config_space(table),
                fidelity_space={RESOURCE: randint(1, table.max_resource)},
                objectives_names=[METRIC, ELAPSED],
            )

        @property
        def fidelity_values(self) -> np.ndarray:
            return np.arange(1, table.max_resource + 1)

        def _objective_function(self, configuration: dict, fidelity: dict | None = None, seed: int | None = None):
            curve = table.evaluate(configuration)
            elapsed = np.cumsum(np.asarray(curve.seconds, dtype=float) * scale)
            values = np.stack([np.asarray(curve.errors, dtype=float), elapsed], axis=1)
            if fidelity is None:
                return values
            r = int(fidelity[RESOURCE])
            return dict(zip(self.objectives_names, values[r - 1]))

    return BenchmarkBlackbox()


class DecisionMeter:
    """CPU seconds inside the scheduler: per suggestion, in total, and still to charge the clock."""

    def __init__(self, charge: bool) -> None:
        self.charge = charge
        self.uncharged = 0.0  # measured but not yet added to the simulated clock
        self.total = 0.0
        self.suggestions: list[Suggestion] = []
        self.other_seconds = 0.0
        self.results = 0

    def wrap(self, method: Callable[..., Any], *, is_suggest: bool = False) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            data = (len(self.suggestions), self.results)
            before = time.process_time()
            out = method(*args, **kwargs)
            seconds = time.process_time() - before
            self.total += seconds
            self.uncharged += seconds
            if is_suggest:
                self.suggestions.append(Suggestion(seconds, *data))
            else:
                self.other_seconds += seconds
            return out

        return timed

    def take(self) -> float:
        """What the simulator's clock advances by now (replaces its wall-time measurement)."""
        seconds, self.uncharged = self.uncharged, 0.0
        return seconds if self.charge else 0.0


def run_one(
    table: Benchmark, method: str, seed: int, workers: int, budget_trainings: float, charge: bool
) -> report.Run:
    """One reference run; returns its record in the report's format."""
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.blackbox_repository.simulated_tabular_backend import UserBlackboxBackend
    from syne_tune.constants import ST_TUNER_TIME
    from syne_tune.optimizer import baselines

    scale = time_scale(table)
    budget = budget_seconds(workers, budget_trainings)
    space = {**config_space(table), MAX_RESOURCE_ATTR: table.max_resource}
    scheduler = getattr(baselines, METHODS[method])(
        space,
        metric=METRIC,
        mode="min",
        resource_attr=RESOURCE,
        max_resource_attr=MAX_RESOURCE_ATTR,
        grace_period=1,
        reduction_factor=3,
        random_seed=seed,
    )
    backend = UserBlackboxBackend(
        blackbox=make_blackbox(table, scale),
        elapsed_time_attr=ELAPSED,
        max_resource_attr=MAX_RESOURCE_ATTR,
        tuner_sleep_time=TUNER_SLEEP_SECONDS,
    )
    meter = DecisionMeter(charge)
    rows: dict[int, int] = {}  # trial id -> Evaluation.key of its configuration (a table's row)
    backend.time_keeper.real_time_since_last_recent_exit = meter.take  # CPU seconds of decisions only

    sim = Simulation(table=table.name, workers=workers, budget=budget, scale=scale)
    finished: set[int] = set()
    configs: list[dict[str, Any]] = []  # the parameters of each of sim.completions, in step
    stops = 0

    def record(trial: Any, result: dict[str, Any]) -> None:
        if int(result.get(RESOURCE, 0)) == table.max_resource and trial.trial_id not in finished:
            finished.add(trial.trial_id)
            now = float(result[ST_TUNER_TIME])
            free = now - (meter.total if charge else 0.0)
            sim.completions.append((now, free, float(result[METRIC])))
            configs.append(params(trial.config))

    on_result = meter.wrap(scheduler.on_trial_result)

    def on_trial_result(trial: Any, result: dict[str, Any]) -> str:
        nonlocal stops
        meter.results += 1
        record(trial, result)
        decision = on_result(trial, result)
        stops += decision == "STOP" and int(result.get(RESOURCE, 0)) < table.max_resource
        return decision

    on_complete = meter.wrap(scheduler.on_trial_complete)

    def on_trial_complete(trial: Any, result: dict[str, Any]) -> None:
        if result is not None:
            record(trial, result)
        on_complete(trial, result)

    suggest = meter.wrap(scheduler.suggest, is_suggest=True)

    def suggest_and_note_row(trial_id: int) -> Any:
        suggestion = suggest(trial_id)
        if suggestion is not None and suggestion.config is not None:
            rows[trial_id] = table.evaluate(suggestion.config).key  # cached: the blackbox reuses it
        return suggestion

    scheduler.suggest = suggest_and_note_row
    scheduler.on_trial_result = on_trial_result
    scheduler.on_trial_complete = on_trial_complete
    for name in ("on_trial_add", "on_trial_error", "on_trial_remove"):
        setattr(scheduler, name, meter.wrap(getattr(scheduler, name)))

    started = time.perf_counter()
    tuner = Tuner(
        trial_backend=backend,
        scheduler=scheduler,
        stop_criterion=StoppingCriterion(max_wallclock_time=budget),
        n_workers=workers,
        sleep_time=0,
        callbacks=[SimulatorCallback()],
        tuner_name=f"{table.name.replace('_', '-')}-{method}-{seed}",
        results_update_interval=1e9,
        print_update_interval=1e9,
        save_tuner=False,
        suffix_tuner_name=True,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # the Tuner prints a status table at the end
        tuner.run()
    kept = sorted((c, i) for i, c in enumerate(sim.completions) if c[0] <= budget)
    sim.completions = [c for c, _ in kept]
    best_so_far = float("inf")
    for c, i in kept:  # the incumbent's parameters: set by each completion that improves it, in time order
        if c[2] < best_so_far:
            sim.incumbent_config, best_so_far = configs[i], c[2]
    sim.suggestions = [s for s in meter.suggestions]
    sim.prune_seconds = meter.other_seconds
    sim.n_trials = len(meter.suggestions)
    sim.n_pruned = stops
    sim.rows = [rows[t] for t in sorted(rows)]
    return report.run_record(
        sim,
        method=method,
        seed=seed,
        best=table.best_final_error(),
        wall_seconds=time.perf_counter() - started,
        charged=charge,
        code=VERSION,
    )


def params(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's configuration without the resource attribute, as plain JSON values."""
    return {
        k: (v.item() if isinstance(v, np.generic) else v) for k, v in config.items() if k != MAX_RESOURCE_ATTR
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Syne Tune 0.13.0 MOBSTER / ASHA on the benchmarks.")
    parser.add_argument("--tables", "--benchmarks", nargs="+", choices=[*list_benchmarks(), *groups()],
                        default=["real"], metavar="NAME",
                        help="benchmarks or groups (real, lcbench, lcbench-tuning, lcbench-evaluation); default: real")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--budget-trainings", type=float, default=BUDGET_FULL_TRAININGS)
    parser.add_argument("--free", action="store_true", help="do not charge decision time to the clock")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default benchmarks/results/v2/budget-B, as benchmarks.run)")
    parser.add_argument("--skip-done", action="store_true")
    args = parser.parse_args(argv)
    if args.out is None:
        from benchmarks.run import default_out  # imports neither torch nor Optuna

        args.out = default_out(args.budget_trainings)
    tables = expand(args.tables)
    try:
        benchmarks = {name: load_benchmark(name) for name in tables}  # a missing LCBench folder fails here
    except MissingDataError as error:
        raise SystemExit(str(error)) from None

    logging.getLogger("syne_tune").setLevel(logging.ERROR)
    os.environ.setdefault("SYNETUNE_FOLDER", tempfile.mkdtemp(prefix="synetune-"))
    done = {(r["table"], r["method"], r["seed"], r["workers"], r.get("charged", True)) for r in report.load_runs(args.out)}
    jobs = [
        (t, m, s)
        for t in tables
        for s in range(args.first_seed, args.first_seed + args.seeds)
        for m in sorted(args.methods, key=lambda m: m != "ref-asha")
        if not (args.skip_done and (t, m, s, args.workers, not args.free) in done)
    ]
    print(f"{len(jobs)} reference runs ({VERSION}) -> {args.out}", flush=True)
    started = time.perf_counter()
    for i, (name, method, seed) in enumerate(jobs, 1):
        run = run_one(benchmarks[name], method, seed, args.workers, args.budget_trainings, not args.free)
        report.save_runs(args.out, [run])
        asks = [a[0] for a in run["asks"]]
        print(
            f"[{i}/{len(jobs)}] {name:<20} {method:<12} seed {seed:<3} trials {run['n_trials']:>4}  "
            f"final regret {report.final_incumbent(run) - run['best']:.4f}  "
            f"ask {sum(asks) / max(len(asks), 1):.3f} s/suggestion  run {run['wall_seconds']:.1f} s  "
            f"elapsed {time.perf_counter() - started:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
