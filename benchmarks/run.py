"""Run the simulated benchmark: every (benchmark, method, seed) of a grid, then the report.

    python -m benchmarks.run --quick                       # one table + one LCBench task, < 1 minute
    python -m benchmarks.run                               # protocol v2, budget 32: many hours
    python -m benchmarks.run --budget-trainings 128        # the large budget
    python -m benchmarks.run --tables lcbench-tuning --methods mobster asha
    python -m benchmarks.run --tables mlp_digits --seeds 5 --first-seed 5   # seeds 5..9, merged

Benchmarks are the stored tables and the LCBench tasks (``lcbench-7593``; groups ``real``,
``lcbench``, ``lcbench-tuning``, ``lcbench-evaluation``: see ``benchmarks/suite.py``). Without
``--seeds``, each gets the protocol's number: 30 seeds on a real table, 10 on an LCBench task.
Results go to ``benchmarks/results/v2/budget-B`` for a budget of B median full trainings.

Each finished run is merged at once into ``OUT/runs/`` (one JSON per benchmark and method), so a
grid can be split over several invocations, interrupted, and resumed with ``--skip-done``; the
Syne Tune reference (``benchmarks/reference/``) writes there too. The report (printed table,
``summary.json``, ``summary.md``, one regret PNG and one decision-time PNG per benchmark) covers
everything stored under ``OUT``.
"""

from __future__ import annotations

import os

# Decision time is measured with one BLAS / torch thread: set before numpy and torch load.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import hashlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from multiprocessing import get_context  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from benchmarks import report  # noqa: E402
from benchmarks.methods import ABLATIONS, BASELINE, METHODS, OPTUNA_METHODS, make  # noqa: E402
from benchmarks.simulator import (  # noqa: E402
    BUDGET_FULL_TRAININGS,
    DEFAULT_WORKERS,
    StepObjectives,
    budget_seconds,
    simulate,
)
from benchmarks.tables import Benchmark  # noqa: E402

if TYPE_CHECKING:
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler
from benchmarks.lcbench import MissingDataError, require_data  # noqa: E402
from benchmarks.suite import expand, groups, list_benchmarks, load_benchmark, task_group  # noqa: E402

#: Seeds per (benchmark, method) in a full run: the protocol's minimum, by kind of benchmark.
REAL_SEEDS = 30
LCBENCH_SEEDS = 10
#: The protocol's two budgets, in median full trainings on one worker.
BUDGETS = (32, 128)
QUICK_TABLE = "mlp_digits"
QUICK_LCBENCH = "lcbench-7593"
QUICK_METHODS = ("asha", "mobster", "tpe-hyperband")
QUICK_SEEDS = 2
#: The quick mode's budget in median full trainings (the full protocol's is 32).
QUICK_BUDGET_TRAININGS = 8


@dataclass(frozen=True)
class Job:
    """One simulated run to do."""

    table: str
    method: str
    seed: int
    workers: int
    budget_trainings: float
    charge: bool


@functools.cache
def code_version() -> str:
    """Short hash of the library's tuner sources, stored with each run (they change under us).

    Cached: first called just before the tuners are imported, so it names the code this process runs.
    """
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted([*root.glob("mobster/*.py"), *root.glob("optuna_mobster/*.py")]):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def pin_threads() -> None:
    """One torch thread, quiet Optuna: decision times stay comparable and the log readable."""
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Model failures are counted in each run's record (``model_failures``) instead of printed.
    warnings.filterwarnings("ignore", message=".*MOBSTER model failed.*")


def run_job(job: Job) -> report.Run:
    """Simulate one run and return its JSON record (also the entry point of worker processes)."""
    return simulate_job(job, make)


def simulate_job(
    job: Job,
    make_tuner: Callable[[str, int, int], tuple[BaseSampler, BasePruner]],
    objectives: Callable[[Benchmark], StepObjectives] | None = None,
) -> report.Run:
    """One run of ``job`` with the tuner ``make_tuner(method, seed, max_resource)`` gives, and its
    JSON record; ``objectives(benchmark)``: what each step reports (default: the validation error)."""
    pin_threads()
    table = load_benchmark(job.table)
    code = code_version()
    sampler, pruner = make_tuner(job.method, job.seed, table.max_resource)
    started = time.perf_counter()
    sim = simulate(
        table,
        sampler,
        pruner,
        workers=job.workers,
        budget=budget_seconds(job.workers, job.budget_trainings),
        charge_decisions=job.charge,
        study_name=f"{job.table}-{job.method}-{job.seed}",
        objectives=None if objectives is None else objectives(table),
    )
    return report.run_record(
        sim,
        method=job.method,
        seed=job.seed,
        best=table.best_final_error(),
        wall_seconds=time.perf_counter() - started,
        charged=job.charge,
        code=code,
        model_failures=getattr(sampler, "model_failures", 0),
    )


def quick_benchmarks() -> list[str]:
    """The quick mode's benchmarks: one table, and one LCBench task where its data is here."""
    try:
        require_data()
    except MissingDataError as error:
        print(f"quick mode without {QUICK_LCBENCH}: {error}", flush=True)
        return [QUICK_TABLE]
    return [QUICK_TABLE, QUICK_LCBENCH]


def protocol_seeds(benchmark: str) -> int:
    """The protocol's number of seeds for ``benchmark``."""
    return REAL_SEEDS if task_group(benchmark) == "real" else LCBENCH_SEEDS


def default_out(budget: float) -> Path:
    """Where a budget's results go: one folder per budget (a run is stored by seed, not budget)."""
    return Path("benchmarks/results/v2") / f"budget-{budget:g}"


def plan(
    tables: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int] | None,
    workers: int,
    budget: float,
    charge: bool,
    first_seed: int = 0,
    baseline: str = BASELINE,
) -> list[Job]:
    """Every job of the grid; ``seeds=None`` gives each benchmark the protocol's number from ``first_seed``."""
    # Seed-major order: partial results cover every method of a table early, the baseline first (the target).
    order = sorted(methods, key=lambda m: m != baseline)
    return [
        Job(t, m, s, workers, budget, charge)
        for t in tables
        for s in (seeds if seeds is not None else range(first_seed, first_seed + protocol_seeds(t)))
        for m in order
    ]


def done_keys(out: Path) -> set[tuple[str, str, int, int, bool]]:
    return {(r["table"], r["method"], r["seed"], r["workers"], r.get("charged", True)) for r in report.load_runs(out)}


def describe_regret(run: report.Run) -> str:
    """The middle of a progress line: the run's final regret."""
    return f"final regret {report.final_incumbent(run) - run['best']:.4f}"


def execute(
    jobs: Sequence[Job],
    out: Path,
    n_jobs: int = 1,
    runner: Callable[[Job], report.Run] = run_job,
    describe: Callable[[report.Run], str] = describe_regret,
) -> None:
    """Run ``jobs`` (``n_jobs`` processes at a time) with ``runner`` (a top-level function: worker
    processes import it), storing each result as soon as it is done, and print one line per run
    (``describe`` says what it reached)."""
    started = time.perf_counter()

    def progress(i: int, job: Job, run: report.Run) -> None:
        asks = [a[0] for a in run["asks"]]
        print(
            f"[{i}/{len(jobs)}] {job.table:<20} {job.method:<14} seed {job.seed:<3} "
            f"trials {run['n_trials']:>4}  {describe(run)}  "
            + (f"MODEL FAILURES {run['model_failures']}  " if run.get("model_failures") else "")
            + f"ask {sum(asks) / max(len(asks), 1):.3f} s/suggestion  "
            f"run {run['wall_seconds']:.1f} s  elapsed {time.perf_counter() - started:.0f} s",
            flush=True,
        )

    if n_jobs <= 1:
        for i, job in enumerate(jobs, 1):
            run = runner(job)
            report.save_runs(out, [run])
            progress(i, job, run)
        return
    with ProcessPoolExecutor(n_jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(runner, job): job for job in jobs}
        for i, future in enumerate(as_completed(futures), 1):
            run = future.result()
            report.save_runs(out, [run])
            progress(i, futures[future], run)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description="Simulated asynchronous HPO on tabulated learning curves."
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_TABLE} and {QUICK_LCBENCH}, {QUICK_SEEDS} seeds, "
                        f"{', '.join(QUICK_METHODS)}, {QUICK_BUDGET_TRAININGS}-training budget (< 1 minute)")
    parser.add_argument("--tables", "--benchmarks", nargs="+", choices=[*list_benchmarks(), *groups()],
                        metavar="NAME", help="benchmarks or groups (real, lcbench, lcbench-tuning, lcbench-evaluation); "
                        "default: real and lcbench")
    parser.add_argument("--methods", nargs="+", choices=list(OPTUNA_METHODS),
                        help=f"default: {', '.join(METHODS)}; ablations: {', '.join(ABLATIONS)}")
    parser.add_argument("--ablations", action="store_true", help="run the ablations (instead of --methods)")
    parser.add_argument("--seeds", type=int, default=None, help=f"number of seeds (default {REAL_SEEDS} on a real "
                        f"table, {LCBENCH_SEEDS} on an LCBench task, {QUICK_SEEDS} with --quick)")
    parser.add_argument("--free", action="store_true", help="do not charge decision time to the clock")
    add_grid_arguments(parser, "benchmarks/results/v2/budget-B, out/benchmarks-quick with --quick")
    return parser.parse_args(argv)


def add_grid_arguments(parser: argparse.ArgumentParser, default_out: str) -> None:
    """The options every simulated grid takes (this one and the multi-objective one): seeds from,
    workers, budget, results folder, processes, resuming and reporting."""
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are FIRST .. FIRST+SEEDS-1")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="asynchronous workers K (default 4)")
    parser.add_argument("--budget-trainings", type=float, default=None,
                        help=f"budget in median full trainings on one worker (default {BUDGET_FULL_TRAININGS}; "
                        f"the protocol's are {' and '.join(map(str, BUDGETS))})")
    parser.add_argument("--out", type=Path, default=None, help=f"results folder (default {default_out})")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (default 1)")
    parser.add_argument("--skip-done", action="store_true", help="skip runs already stored under OUT")
    parser.add_argument("--no-report", action="store_true", help="only run and store; report later")


def main(argv: Sequence[str] | None = None) -> str:
    """Run the grid the arguments describe, then print and write the report; returns the text."""
    args = parse_args(argv)
    seeds = None if args.seeds is None else list(range(args.first_seed, args.first_seed + args.seeds))
    if args.quick:
        tables = expand(args.tables or quick_benchmarks())
        methods = args.methods or list(QUICK_METHODS)
        seeds = seeds or list(range(args.first_seed, args.first_seed + QUICK_SEEDS))
        budget = args.budget_trainings or QUICK_BUDGET_TRAININGS
        out = args.out or Path("out/benchmarks-quick")
    else:
        tables = expand(args.tables or ["real", "lcbench"])
        methods = list(ABLATIONS) if args.ablations else (args.methods or list(METHODS))
        budget = args.budget_trainings or BUDGET_FULL_TRAININGS
        out = args.out or default_out(budget)
    return run_grid(args, tables, methods, seeds, budget, out, charge=not args.free)


def run_grid(
    args: argparse.Namespace,
    tables: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int] | None,
    budget: float,
    out: Path,
    *,
    charge: bool = True,
    baseline: str = BASELINE,
    runner: Callable[[Job], report.Run] = run_job,
    describe: Callable[[report.Run], str] = describe_regret,
    write_report: Callable[[Path], str] = report.write_report,
    figures: Sequence[str] = ("regret_*.png", "decisions_*.png"),
) -> str:
    """Run a grid (this one or the multi-objective one) with the options of
    :func:`add_grid_arguments` in ``args``; returns the report's text ("" with ``--no-report``).

    Every benchmark is loaded first, so that missing data stops the grid before any run; with
    ``--skip-done`` the runs stored under ``out`` are left out. ``runner`` and ``describe`` go to
    :func:`execute`; ``write_report(out)`` writes the report, whose ``figures`` (file patterns
    under ``out``) are named at the end."""
    try:
        for name in tables:
            load_benchmark(name)  # a missing LCBench folder fails here, before any run
    except MissingDataError as error:
        raise SystemExit(str(error)) from None
    jobs = plan(tables, methods, seeds, args.workers, budget, charge, args.first_seed, baseline=baseline)
    if args.skip_done:
        done = done_keys(out)
        jobs = [j for j in jobs if (j.table, j.method, j.seed, j.workers, j.charge) not in done]
    print(
        f"{len(jobs)} runs: benchmarks {', '.join(tables)}; methods {', '.join(methods)}; "
        + (f"seeds {seeds[0]}..{seeds[-1]}; " if seeds else f"the protocol's seeds from {args.first_seed}; ")
        + f"{args.workers} workers; budget {budget_seconds(args.workers, budget):.0f} simulated s; -> {out}",
        flush=True,
    )
    execute(jobs, out, args.jobs, runner=runner, describe=describe)
    if args.no_report:
        return ""
    text = write_report(out)
    print(text, flush=True)
    written = [str(out / "summary.md"), str(out / "summary.json"), *(f"{out}/{pattern}" for pattern in figures)]
    print("written: " + ", ".join(written))
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
