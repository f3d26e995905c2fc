"""The multi-objective benchmark: validation error and training cost, both minimised, in the
simulator of ``benchmarks/simulator.py`` (same event loop, workers, budget and charged decisions).

    python -m benchmarks.multiobjective --quick            # one table + lcbench-7593, about a minute
    python -m benchmarks.multiobjective                    # kernel_sgd_digits, mlp_digits, lcbench-tuning
    python -m benchmarks.multiobjective --tables lcbench-tuning --seeds 3 --skip-done

Objectives after each unit ``r`` of a trial:

* the validation error at ``r`` (as in the single-objective benchmark);
* the training cost of the configuration at the full resource, estimated from the units so far:
  mean seconds per unit so far x the maximum resource x the simulator's time scale (simulated
  seconds). A table knows each configuration's cost per unit; LCBench's surrogate predicts the
  time of every epoch.

Each step is reported with ``optuna_mobster.report`` and checked with
``optuna_mobster.should_prune``; a trial at the full resource is told ``(error, cost)``, any other
is PRUNED. A run stores each completion as ``(charged time, free time, error, cost)``.

Methods (fresh sampler and pruner per run; rungs: minimum resource 1, eta 3, the benchmark's
maximum resource): ``mobster-mo`` (MobsterSampler, ParEGO scalarisations, + MobsterPruner),
``mo-asha`` (RandomSampler + MobsterPruner: MO-ASHA, the baseline), ``nsga2`` (NSGAIISampler with
its defaults, no pruning) and ``tpe-mo`` (TPESampler, no pruning). optunahub's multi-metric pruner
is not among them: the ``optunahub`` package installs (it only adds GitPython and PyGithub, no
pinned dependency moves), but it holds no pruner: ``optunahub.load_module`` downloads each
package's code from GitHub at run time, which this machine and CI cannot reach; vendoring its
source would be a copy of unreviewed third-party code, left for a later decision.

Figure of merit: the hypervolume of the front of a run's completed trials. Both objectives are
normalised to [0, 1] by the minimum and maximum over every completion of every stored run on the
benchmark (all methods, all seeds), so that the two axes weigh alike; the reference point is
(1.1, 1.1) in those units (the worst error and the worst cost, plus a tenth of each range, so
that the extreme points of a front count too), and the hypervolume is given as a share of the
reference box (1.1 x 1.1), so it lies in [0, 1]. The box is fixed for a benchmark's report, but
is recomputed when runs are added. Since the box spans every completion, diverged
configurations included, fronts near the ideal corner score close to 1 and differ in the second
or third decimal (the plots use a logit axis for that). The target is MO-ASHA's median final hypervolume
(``protocol.higher_median``); time to target, its ratio to MO-ASHA's with a 90% bootstrap
interval and P(first vs MO-ASHA) follow ``docs/benchmark-protocol.md`` with "incumbent error"
read as "hypervolume" (higher is better).

Results: ``benchmarks/results/mo/budget-B``: ``runs/`` (one JSON per benchmark and method, merged
as ``benchmarks/report.py`` does), ``summary.md``, ``summary.json`` (with, per group of LCBench
tasks, the distribution of each method's ratios, as the protocol reports them) and
``hypervolume_<benchmark>.png``.
"""

from __future__ import annotations

# First: benchmarks.run pins BLAS and torch to one thread, which only holds if set before numpy
# loads (decision time is measured on one thread, as in the single-objective benchmark).
from benchmarks import run as single  # noqa: I001

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import plotting, protocol, report  # noqa: E402
from benchmarks.methods import Method, asha, mobster_pruner  # noqa: E402
from benchmarks.simulator import BUDGET_FULL_TRAININGS  # noqa: E402
from benchmarks.suite import expand, groups, list_benchmarks, task_group  # noqa: E402
from benchmarks.tables import Evaluation  # noqa: E402
from mobster import pareto  # noqa: E402

if TYPE_CHECKING:
    import optuna
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler

#: The objectives, in the order they are reported, told and stored.
OBJECTIVES = ("error", "cost")
#: Reference point in normalised units (1 = the worst value among all completions).
REFERENCE = 1.1
#: The multi-objective protocol's benchmarks: two cheap real tables and the LCBench tuning tasks.
DEFAULT_BENCHMARKS = ("kernel_sgd_digits", "mlp_digits", "lcbench-tuning")
QUICK_TABLE = "kernel_sgd_digits"
QUICK_SEEDS = 2
QUICK_BUDGET_TRAININGS = 8
#: Dashed lines for methods whose first trials coincide with another's (NSGA-II's and TPE's
#: random start draws the same configurations from the same seed), so neither hides the other.
LINE_STYLES = {"nsga2": "--"}
#: The lowest hypervolume the plots show (before the first completion it is 0).
LOGIT_FLOOR = 0.05
#: Points of the time grid of the plots.
PLOT_POINTS = 400


class ErrorAndTrainingCost:
    """Two objectives per step: the validation error, and the full training's estimated cost.

    The cost is the mean seconds per unit so far times the maximum resource, in simulated seconds
    (times the simulator's scale): what training this configuration to the end would take.
    """

    directions: Sequence[str] = ("minimize", "minimize")

    def __init__(self, max_resource: int) -> None:
        self.max_resource = max_resource

    def values(self, curve: Evaluation, step: int, scale: float) -> tuple[float, ...]:
        cost = float(np.mean(curve.seconds[:step])) * self.max_resource * scale
        return float(curve.errors[step - 1]), cost

    def report_and_check(self, trial: optuna.Trial, values: tuple[float, ...], step: int) -> bool:
        import optuna_mobster

        optuna_mobster.report(trial, values, step)
        return optuna_mobster.should_prune(trial)


# ----- methods -------------------------------------------------------------------------------


def _mobster_mo(seed: int, max_resource: int) -> tuple[BaseSampler, BasePruner]:
    from optuna_mobster import MobsterSampler

    return MobsterSampler(seed=seed), mobster_pruner(max_resource)


def _mobster_mo_nehvi(seed: int, max_resource: int) -> tuple[BaseSampler, BasePruner]:
    from optuna_mobster import MobsterSampler

    # The alternative to ParEGO: one GP per objective and qLogNEHVI (an ablation, not a default).
    return MobsterSampler(seed=seed, multi_objective_acquisition="nehvi"), mobster_pruner(max_resource)


def _nsga2(seed: int, max_resource: int) -> tuple[BaseSampler, BasePruner]:
    from optuna.pruners import NopPruner
    from optuna.samplers import NSGAIISampler

    # Its default population (50) is larger than the ~32 trials a budget of 32 allows without
    # pruning: within this budget NSGA-II is close to random search; kept, as the protocol says.
    return NSGAIISampler(seed=seed), NopPruner()


def _tpe_mo(seed: int, max_resource: int) -> tuple[BaseSampler, BasePruner]:
    from optuna.pruners import NopPruner
    from optuna.samplers import TPESampler

    return TPESampler(seed=seed), NopPruner()


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("mobster-mo", "MOBSTER-MO (ours: ParEGO + MO-ASHA rungs)", "#d62728", _mobster_mo),
        # ASHA's pair in a study of several objectives: non-dominated sorting + crowding distance at the rungs.
        Method("mo-asha", "MO-ASHA (random + MobsterPruner)", "#1f77b4", asha),
        Method("nsga2", "NSGA-II (Optuna, no stopping)", "#9467bd", _nsga2),
        Method("tpe-mo", "TPE (Optuna, no stopping)", "#2ca02c", _tpe_mo),
        Method("mobster-mo-nehvi", "ours with qLogNEHVI (one GP per objective)", "#ff7f0e", _mobster_mo_nehvi),
    )
}
#: What a run without ``--methods`` compares (qLogNEHVI, 8x ParEGO's decision time, on request).
DEFAULT_METHODS = ("mobster-mo", "mo-asha", "nsga2", "tpe-mo")
#: The baseline of every ratio, whose median final hypervolume is the target.
BASELINE = "mo-asha"


def make(name: str, seed: int, max_resource: int) -> tuple[BaseSampler, BasePruner]:
    """A fresh (sampler, pruner) of method ``name`` for one run."""
    method = METHODS.get(name)
    if method is None or method.factory is None:
        raise KeyError(f"unknown multi-objective method {name!r}; known: {', '.join(METHODS)}")
    return method.factory(seed, max_resource)


# ----- one run -------------------------------------------------------------------------------


def run_job(job: single.Job) -> report.Run:
    """Simulate one run with both objectives and return its JSON record (a worker's entry point)."""
    record = single.simulate_job(job, make, lambda table: ErrorAndTrainingCost(table.max_resource))
    record["objectives"] = list(OBJECTIVES)
    return record


def points_of(run: report.Run) -> np.ndarray:
    """``(completions, 2)``: the (error, cost) of each completed trial of ``run``."""
    return np.asarray([c[2:4] for c in run["completions"]], dtype=float).reshape(-1, 2)


def describe_front(run: report.Run) -> str:
    """The middle of a progress line: the run's completions, front size, best error and cheapest cost."""
    points = points_of(run)
    if not len(points):
        return "no completion"
    front = int(np.sum(pareto.nondominated_fronts(points) == 0))
    return (
        f"completed {len(points):>3}  front {front:>2}  best error {points[:, 0].min():.4f}  "
        f"cheapest {points[:, 1].min():.0f} s"
    )


# ----- hypervolume ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectiveBox:
    """The minimum and maximum of each objective over a benchmark's completions: the normalisation."""

    low: tuple[float, float]
    high: tuple[float, float]

    @classmethod
    def of_runs(cls, runs: Sequence[report.Run]) -> ObjectiveBox:
        points = np.concatenate([points_of(r) for r in runs] or [np.empty((0, 2))])
        points = points[np.all(np.isfinite(points), axis=1)]
        if not len(points):
            return cls((0.0, 0.0), (1.0, 1.0))
        return cls(tuple(points.min(axis=0).tolist()), tuple(points.max(axis=0).tolist()))  # type: ignore[arg-type]

    def normalise(self, points: np.ndarray) -> np.ndarray:
        low, high = np.asarray(self.low), np.asarray(self.high)
        span = np.where(high > low, high - low, 1.0)  # one value only: any positive span will do
        return (np.asarray(points, dtype=float).reshape(-1, 2) - low) / span


def hypervolume_steps(completions: Sequence[Sequence[float]], box: ObjectiveBox) -> tuple[np.ndarray, np.ndarray]:
    """``(times, hypervolumes)``: the normalised hypervolume of the front after each completion.

    ``completions`` are ``(charged time, free time, error, cost)``; hypervolumes are shares of
    the reference box ``REFERENCE x REFERENCE``, in [0, 1], and never decrease.
    """
    rows = sorted(completions, key=lambda c: c[0])
    times = np.asarray([c[0] for c in rows], dtype=float)
    points = box.normalise(np.asarray([c[2:4] for c in rows], dtype=float))
    reference = (REFERENCE, REFERENCE)
    volumes = [pareto.hypervolume_2d(points[: i + 1], reference) / REFERENCE**2 for i in range(len(rows))]
    return times, np.asarray(volumes, dtype=float)


def hypervolume_at(completions: Sequence[Sequence[float]], times: np.ndarray, box: ObjectiveBox) -> np.ndarray:
    """The normalised hypervolume at each of ``times`` (charged clock); 0 before the first completion."""
    steps, volumes = hypervolume_steps(completions, box)
    done = np.searchsorted(steps, np.asarray(times, dtype=float), side="right")  # completions by then
    return np.where(done > 0, volumes[np.maximum(done - 1, 0)] if len(volumes) else 0.0, 0.0)


def final_hypervolume(run: report.Run, box: ObjectiveBox) -> float:
    _, volumes = hypervolume_steps(run["completions"], box)
    return float(volumes[-1]) if len(volumes) else 0.0


def time_to_hypervolume(run: report.Run, target: float, box: ObjectiveBox) -> float:
    """First charged simulated time the run's hypervolume reaches ``target``; ``inf`` if never."""
    times, volumes = hypervolume_steps(run["completions"], box)
    reached = np.flatnonzero(volumes >= target)
    return float(times[reached[0]]) if len(reached) else math.inf


# ----- summary -------------------------------------------------------------------------------


@dataclass
class MethodFront:
    """One method on one benchmark, over its seeds."""

    method: str
    seeds: int
    hypervolume_median: float
    hypervolume_q25: float
    hypervolume_q75: float
    ttt_median: float
    #: Median time to target over MO-ASHA's, with its 90% bootstrap interval.
    ttt_ratio: float
    ttt_ratio_low: float
    ttt_ratio_high: float
    #: Share of (run, MO-ASHA run) pairs in which the run reaches the target first, ties half.
    first_share: float
    reached: int
    trials_median: float
    completions_median: float
    decision_per_suggestion: float
    model_failures: int


@dataclass
class BenchmarkFront:
    """All methods on one benchmark: the normalisation box and the target."""

    table: str
    budget: float
    workers: int
    box: ObjectiveBox
    target: float
    methods: list[MethodFront]


def summarise(runs: Sequence[report.Run], baseline: str = BASELINE) -> list[BenchmarkFront]:
    """One summary per benchmark that has runs of ``baseline`` (charged runs only)."""
    summaries = []
    for table, methods in report.runs_by_benchmark(runs, baseline).items():
        box = ObjectiveBox.of_runs([r for group in methods.values() for r in group])
        base = methods[baseline]
        target = protocol.higher_median([final_hypervolume(r, box) for r in base])
        base_ttt = [time_to_hypervolume(r, target, box) for r in base]
        order = [m for m in METHODS if m in methods] + sorted(m for m in methods if m not in METHODS)
        rows = [_method_front(name, methods[name], box, target, base_ttt) for name in order]
        summaries.append(BenchmarkFront(table, base[0]["budget"], base[0]["workers"], box, target, rows))
    return summaries


def _method_front(
    name: str, runs: list[report.Run], box: ObjectiveBox, target: float, base_ttt: Sequence[float]
) -> MethodFront:
    finals = np.array([final_hypervolume(r, box) for r in runs])
    ttt = [time_to_hypervolume(r, target, box) for r in runs]
    interval = protocol.ratio_interval(ttt, base_ttt)
    decisions = sum(sum(a[0] for a in r["asks"]) + r["prune_seconds"] + r["tell_seconds"] for r in runs)
    return MethodFront(
        method=name,
        seeds=len(runs),
        hypervolume_median=float(np.median(finals)),
        hypervolume_q25=float(np.quantile(finals, 0.25)),
        hypervolume_q75=float(np.quantile(finals, 0.75)),
        ttt_median=float(np.median(ttt)),
        ttt_ratio=interval.ratio,
        ttt_ratio_low=interval.low,
        ttt_ratio_high=interval.high,
        first_share=report.earlier_share(ttt, base_ttt),
        reached=sum(math.isfinite(t) for t in ttt),
        trials_median=float(np.median([r["n_trials"] for r in runs])),
        completions_median=float(np.median([len(r["completions"]) for r in runs])),
        decision_per_suggestion=decisions / max(sum(len(r["asks"]) for r in runs), 1),
        model_failures=sum(r.get("model_failures", 0) for r in runs),
    )


def format_table(summaries: Sequence[BenchmarkFront]) -> str:
    """A markdown table, one row per (benchmark, method), and each benchmark's box and target."""
    head = (
        "| benchmark | method | seeds | final HV median [IQR] | time to target (s) | vs MO-ASHA [90% CI] "
        "| P(first vs MO-ASHA) | reached | trials | completed | decision s / suggestion |\n"
        "|---|---|---:|---|---:|---|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for s in summaries:
        for m in s.methods:
            label = METHODS[m.method].label if m.method in METHODS else m.method
            ratio = report.format_ratio
            ttt = "inf" if math.isinf(m.ttt_median) else f"{m.ttt_median:.0f}"
            lines.append(
                f"| {s.table} | {label} | {m.seeds} "
                f"| {m.hypervolume_median:.3f} [{m.hypervolume_q25:.3f}, {m.hypervolume_q75:.3f}] | {ttt} "
                f"| {ratio(m.ttt_ratio)} [{ratio(m.ttt_ratio_low)}, {ratio(m.ttt_ratio_high)}] "
                f"| {m.first_share:.2f} | {m.reached}/{m.seeds} | {m.trials_median:.0f} | {m.completions_median:.0f} "
                f"| {m.decision_per_suggestion:.3f} |"
            )
    notes = "\n".join(
        f"- {s.table}: target hypervolume {s.target:.3f} (MO-ASHA's median final); error in "
        f"[{s.box.low[0]:.4f}, {s.box.high[0]:.4f}], cost in [{s.box.low[1]:.0f}, {s.box.high[1]:.0f}] simulated s "
        f"(normalised to [0, 1], reference point 1.1 x each range past the worst); budget {s.budget:.0f} s "
        f"on {s.workers} workers"
        + "".join(f"; {m.method}: {m.model_failures} model failures" for m in s.methods if m.model_failures)
        for s in summaries
    )
    return head + "\n".join(lines) + "\n\n" + notes + "\n"


def distributions(summaries: Sequence[BenchmarkFront]) -> dict[str, dict[str, protocol.Distribution]]:
    """Per group of LCBench tasks and per method: the distribution of its ratios to MO-ASHA."""
    out: dict[str, dict[str, protocol.Distribution]] = {}
    for group in report.GROUPS:
        members = [s for s in summaries if task_group(s.table) == group]
        if not members:
            continue
        rows: dict[str, list[MethodFront]] = defaultdict(list)
        for s in members:
            for m in s.methods:
                if m.method != BASELINE:
                    rows[m.method].append(m)
        out[group] = {
            name: protocol.ratio_distribution([m.ttt_ratio for m in ms], [(m.ttt_ratio_low, m.ttt_ratio_high) for m in ms])
            for name, ms in rows.items()
        }
    return out


def plot_hypervolume(summary: BenchmarkFront, runs: Sequence[report.Run], path: Path) -> None:
    """Median normalised hypervolume over simulated time for every method (IQR shaded)."""
    times = np.linspace(0.0, summary.budget, PLOT_POINTS)
    fig, (ax,) = plotting.figure((7.5, 4.6))
    for m in summary.methods:
        group = [r for r in runs if r["method"] == m.method]
        curves = np.stack([hypervolume_at(r["completions"], times, summary.box) for r in group])
        meta = METHODS.get(m.method)
        label = f"{meta.label if meta else m.method} ({len(group)} seeds)"
        plotting.median_with_iqr(ax, times, curves, label=label, color=meta.color if meta else None,
                                 lw=2 if m.method == "mobster-mo" else 1.4, ls=LINE_STYLES.get(m.method, "-"))
    ax.axhline(summary.target, color="grey", ls="--", lw=1, label="target (MO-ASHA median final)")
    ax.set_xlim(0, summary.budget)
    # Final hypervolumes crowd near 1 (the box spans every completion, diverged ones included):
    # a logit axis spreads both ends, as regret's log axis does in the single-objective plots.
    ax.set_yscale("logit", nonpositive="clip")
    ax.set_ylim(LOGIT_FLOOR, 1 - (1 - max(summary.target, 0.5)) / 20)
    ax.set_xlabel(f"simulated seconds ({summary.workers} workers, decision time charged)")
    ax.set_ylabel("hypervolume of (error, cost), normalised (logit scale)")
    ax.set_title(f"{summary.table}: median hypervolume over seeds (shaded: IQR)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    plotting.save(fig, path)


def write_report(out: Path, *, plots: bool = True) -> str:
    """Summarise every run under ``out``: ``summary.md``, ``summary.json``, one PNG per benchmark."""
    out = Path(out)
    runs = report.charged_runs(report.load_runs(out))
    summaries = summarise(runs)
    dists = distributions(summaries)
    text = format_table(summaries) + report.format_distributions(dists, baseline_label="MO-ASHA", methods=METHODS)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(text)
    data = {
        "objectives": list(OBJECTIVES),
        "benchmarks": [asdict(s) for s in summaries],
        "across_tasks": {g: {m: asdict(d) for m, d in by.items()} for g, by in dists.items()},
    }
    (out / "summary.json").write_text(json.dumps(report.json_ready(data), indent=1) + "\n")
    if plots:
        for s in summaries:
            plot_hypervolume(s, [r for r in runs if r["table"] == s.table], out / f"hypervolume_{s.table}.png")
    return text


# ----- command line --------------------------------------------------------------------------


def default_out(budget: float) -> Path:
    return Path("benchmarks/results/mo") / f"budget-{budget:g}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.multiobjective",
        description="Simulated asynchronous multi-objective HPO (validation error, training cost).",
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_TABLE} and {single.QUICK_LCBENCH}, "
                        f"{QUICK_SEEDS} seeds, every method, {QUICK_BUDGET_TRAININGS}-training budget (about a minute)")
    parser.add_argument("--tables", "--benchmarks", nargs="+", choices=[*list_benchmarks(), *groups()], metavar="NAME",
                        help=f"benchmarks or groups; default: {' '.join(DEFAULT_BENCHMARKS)}")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), help=f"default: {' '.join(DEFAULT_METHODS)}")
    parser.add_argument("--seeds", type=int, default=None, help=f"number of seeds (default: the protocol's, "
                        f"{single.REAL_SEEDS} on a real table and {single.LCBENCH_SEEDS} on an LCBench task; "
                        f"{QUICK_SEEDS} with --quick)")
    single.add_grid_arguments(parser, "benchmarks/results/mo/budget-B, out/mo-quick with --quick")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> str:
    """Run the grid the arguments describe, then print and write the report; returns the text."""
    args = parse_args(argv)
    seeds = None if args.seeds is None else list(range(args.first_seed, args.first_seed + args.seeds))
    if args.quick:
        tables = expand(args.tables or [QUICK_TABLE, *single.quick_benchmarks()[1:]])
        seeds = seeds or list(range(args.first_seed, args.first_seed + QUICK_SEEDS))
        budget = args.budget_trainings or QUICK_BUDGET_TRAININGS
        out = args.out or Path("out/mo-quick")
    else:
        tables = expand(args.tables or DEFAULT_BENCHMARKS)
        budget = args.budget_trainings or BUDGET_FULL_TRAININGS
        out = args.out or default_out(budget)
    methods = args.methods or list(DEFAULT_METHODS)
    return single.run_grid(
        args, tables, methods, seeds, budget, out,
        baseline=BASELINE, runner=run_job, describe=describe_front, write_report=write_report,
        figures=("hypervolume_*.png",),
    )  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
