"""Figures of merit, the printed table, the JSON summary and the plots of a benchmark run.

Runs are stored one JSON file per (benchmark, method) under ``OUT/runs/`` (see :func:`save_runs`);
the Syne Tune reference runner writes the same format, so any number of invocations, of either
environment, merge by pointing the report at the same folder::

    python -m benchmarks.report --out benchmarks/results

What is computed follows ``docs/benchmark-protocol.md``: the incumbent is the best error at the
full resource so far; the target is ASHA's median final incumbent (higher middle value); time to
target is the first simulated time the incumbent reaches it (``inf`` if never); ratios are
against ASHA's median time to target on the same benchmark; regret is the incumbent minus the
table's best final error.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import plotting, protocol
from benchmarks.methods import ABLATIONS, ALL_METHODS, BASELINE, Method
from benchmarks.suite import task_group

#: Regret plotted on a log axis: zero regret is drawn at this floor.
REGRET_FLOOR = 1e-4
#: Width (in trials already started) of the bins that compare decision times at equal data size.
DATA_BIN = 10
#: What each figure shows: the comparison, and ours against its ablations (with ASHA for scale).
MAIN_PLOT_METHODS = frozenset(m for m in ALL_METHODS if m not in ABLATIONS)
ABLATION_PLOT_METHODS = frozenset({"mobster", BASELINE, *ABLATIONS})

Run = dict[str, Any]
"""One simulated run as stored in JSON (see :func:`run_record`)."""


# ----- storage -------------------------------------------------------------------------------


#: Decimals of the errors stored in a run record (and of the table's best error).
ERROR_DECIMALS = 6


def run_record(
    sim: Any,
    *,
    method: str,
    seed: int,
    best: float,
    wall_seconds: float,
    charged: bool,
    code: str = "",
    model_failures: int = 0,
) -> Run:
    """The JSON form of a :class:`benchmarks.simulator.Simulation` (floats rounded to stay small).

    ``code`` identifies the tuner's source (the library's files change while benchmarks run);
    ``model_failures`` counts suggestions that fell back to random because the model failed.
    """
    return {
        "table": sim.table,
        "method": method,
        "seed": seed,
        "workers": sim.workers,
        "budget": sim.budget,
        "scale": round(sim.scale, 6),
        "best": round(best, ERROR_DECIMALS),  # rounded as the errors are, so regret never dips below 0
        "charged": charged,
        # (charged time, free time, *values): one value (the error), or one per objective.
        "completions": [[round(t, 2), round(f, 2), *(round(v, ERROR_DECIMALS) for v in values)] for t, f, *values in sim.completions],
        "asks": [[round(s.seconds, 5), s.trials_before, s.results_before] for s in sim.suggestions],
        "prune_seconds": round(sim.prune_seconds, 4),
        "tell_seconds": round(sim.tell_seconds, 4),
        "n_trials": sim.n_trials,
        "n_pruned": sim.n_pruned,
        "rows": list(sim.rows),
        "incumbent_config": sim.incumbent_config,
        "wall_seconds": round(wall_seconds, 2),
        "code": code,
        "model_failures": model_failures,
    }


def runs_path(out: Path, table: str, method: str) -> Path:
    return Path(out) / "runs" / f"{table}__{method}.json"


def save_runs(out: Path, runs: Iterable[Run]) -> None:
    """Merge ``runs`` into their per-(benchmark, method) files; a run replaces one with the same
    seed, number of workers and clock (decision time charged or not)."""
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[run["table"], run["method"]].append(run)
    for (table, method), new in groups.items():
        path = runs_path(out, table, method)
        kept = {_key(r): r for r in _read(path)}
        kept.update({_key(r): r for r in new})
        path.parent.mkdir(parents=True, exist_ok=True)
        ordered = [kept[k] for k in sorted(kept)]
        path.write_text(json.dumps({"runs": ordered}, separators=(",", ":")) + "\n")


def _key(run: Run) -> tuple[int, int, bool]:
    return run["seed"], run["workers"], run.get("charged", True)


def load_runs(out: Path) -> list[Run]:
    """Every stored run under ``OUT/runs/``."""
    return [run for path in sorted((Path(out) / "runs").glob("*.json")) for run in _read(path)]


def _read(path: Path) -> list[Run]:
    return json.loads(path.read_text())["runs"] if path.exists() else []


# ----- figures of merit ----------------------------------------------------------------------


def final_incumbent(run: Run) -> float:
    return min((c[2] for c in run["completions"]), default=math.inf)


def time_to_target(run: Run, target: float, clock: str = "charged") -> float:
    """First simulated time (``charged`` or ``free`` clock) the incumbent is <= ``target``."""
    column = 0 if clock == "charged" else 1
    return min((c[column] for c in run["completions"] if c[2] <= target), default=math.inf)


def incumbent_at(run: Run, times: np.ndarray) -> np.ndarray:
    """The incumbent (charged clock) at each of ``times``; ``inf`` before the first completion."""
    out = np.full(len(times), math.inf)
    for t, _, value in run["completions"]:
        out[times >= t] = np.minimum(out[times >= t], value)
    return out


def target_of(finals: Sequence[float]) -> float:
    """The protocol's target: the higher middle of the baseline's final incumbents."""
    return protocol.higher_median(finals)


@dataclass
class MethodSummary:
    """One method on one benchmark, over its seeds."""

    method: str
    seeds: int
    ttt_median: float
    ttt_ratio: float
    #: The 90% bootstrap interval of ``ttt_ratio`` (seeds of this method and of ASHA resampled).
    ttt_ratio_low: float
    ttt_ratio_high: float
    #: The ratio of median times to each easier level (ASHA's median incumbent at 25% / 50% of the budget).
    level_ratios: dict[str, float]
    ttt_earlier_share: float
    ttt_free_median: float
    ttt_free_ratio: float
    reached: int
    regret_median: float
    regret_q25: float
    regret_q75: float
    ask_p50: float
    ask_p90: float
    decision_per_suggestion: float
    trials_median: float
    distinct_share: float
    wall_seconds_median: float
    model_failures: int


@dataclass
class BenchmarkSummary:
    """All methods on one benchmark, against one target."""

    table: str
    target: float
    best: float
    budget: float
    workers: int
    methods: list[MethodSummary]
    #: ``real``, ``lcbench-tuning`` or ``lcbench-evaluation``.
    group: str = "real"
    #: The easier quality levels (the target is the ``final`` one).
    levels: dict[str, float] = field(default_factory=dict)
    #: Table configurations whose full-resource error reaches the target, and the table's size
    #: (``None`` when the table is not stored here): how rare a hit is, hence how much luck a
    #: time to target holds.
    reaching_target: int | None = None
    configurations: int | None = None
    #: The next distinct full-resource error above the target in the table, and how many
    #: configurations reach that: when the metric moves in steps (one validation example of a
    #: classifier), this shows how many configurations miss the target by a single step.
    next_error: float | None = None
    reaching_next: int | None = None


def summarise(runs: Sequence[Run], baseline: str = BASELINE) -> list[BenchmarkSummary]:
    """One summary per benchmark that has runs of ``baseline`` (the target needs them).

    Only runs with decision time charged count (``--free`` runs are for diagnostics); their
    "free" figures come from re-timing the same runs.
    """
    summaries = []
    for table, methods in runs_by_benchmark(runs, baseline).items():
        base = methods[baseline]
        first = base[0]
        levels = protocol.quality_levels(
            [final_incumbent(r) for r in base],
            lambda t: [incumbent_at(r, np.array([t]))[0] for r in base],
            first["budget"],
        )
        target = levels["final"]
        easier = {name: level for name, level in levels.items() if name != "final"}
        rows = [_method_summary(name, methods[name], target, base, easier) for name in _ordered(methods)]
        summaries.append(
            BenchmarkSummary(
                table, target, first["best"], first["budget"], first["workers"], rows, task_group(table), easier,
                *configurations_reaching(table, target),
            )
        )
    return summaries


def configurations_reaching(table: str, target: float) -> tuple[int | None, int | None, float | None, int | None]:
    """How many of ``table``'s configurations reach ``target`` at the full resource, out of how
    many; then the next distinct full-resource error above ``target`` and how many reach that
    (``None`` when nothing is above). All ``None`` when the table is not stored in this checkout."""
    from benchmarks.tables import list_tables, load_table

    if table not in list_tables():
        return None, None, None, None
    # Rounded as a run's errors are stored, so this counts what a time to target counts.
    finals = np.round(load_table(table).curves[:, -1], ERROR_DECIMALS)
    reaching = int(np.sum(finals <= target))
    above = finals[finals > target]
    if not len(above):
        return reaching, len(finals), None, None
    next_error = float(above.min())
    return reaching, len(finals), next_error, int(np.sum(finals <= next_error))


def charged_runs(runs: Sequence[Run]) -> list[Run]:
    return [r for r in runs if r.get("charged", True)]


def runs_by_benchmark(runs: Sequence[Run], baseline: str = BASELINE) -> dict[str, dict[str, list[Run]]]:
    """The charged runs by benchmark (in name order) and method, for every benchmark that has runs
    of ``baseline`` (a summary's target comes from them); the others are left out."""
    by_table: dict[str, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for run in charged_runs(runs):
        by_table[run["table"]][run["method"]].append(run)
    return {table: by_table[table] for table in sorted(by_table) if baseline in by_table[table]}


def _method_summary(
    name: str, runs: list[Run], target: float, base_runs: Sequence[Run], levels: dict[str, float]
) -> MethodSummary:
    ttt = [time_to_target(r, target) for r in runs]
    base_ttt = [time_to_target(r, target) for r in base_runs]
    base_free = _median([time_to_target(r, target, "free") for r in base_runs])
    interval = protocol.ratio_interval(ttt, base_ttt)
    level_ratios = {
        level: protocol.median_ratio(
            np.array([time_to_target(r, value) for r in runs]), np.array([time_to_target(r, value) for r in base_runs])
        )
        for level, value in levels.items()
    }
    ttt_free = [time_to_target(r, target, "free") for r in runs]
    regrets = np.array([max(final_incumbent(r) - r["best"], 0.0) for r in runs])
    asks = np.array([a[0] for r in runs for a in r["asks"]] or [math.nan])
    decisions = sum(sum(a[0] for a in r["asks"]) + r["prune_seconds"] + r["tell_seconds"] for r in runs)
    suggestions = sum(len(r["asks"]) for r in runs)
    return MethodSummary(
        method=name,
        seeds=len(runs),
        ttt_median=_median(ttt),
        ttt_ratio=interval.ratio,
        ttt_ratio_low=interval.low,
        ttt_ratio_high=interval.high,
        level_ratios=level_ratios,
        ttt_earlier_share=earlier_share(ttt, base_ttt),
        ttt_free_median=_median(ttt_free),
        ttt_free_ratio=_ratio(_median(ttt_free), base_free),
        reached=sum(math.isfinite(t) for t in ttt),
        regret_median=float(np.median(regrets)),
        regret_q25=_quantile(regrets, 0.25),
        regret_q75=_quantile(regrets, 0.75),
        ask_p50=float(np.median(asks)),
        ask_p90=float(np.quantile(asks, 0.9)),
        decision_per_suggestion=decisions / max(suggestions, 1),
        trials_median=float(np.median([r["n_trials"] for r in runs])),
        distinct_share=_median([len(set(r["rows"])) / len(r["rows"]) for r in runs if r.get("rows")]),
        wall_seconds_median=float(np.median([r["wall_seconds"] for r in runs])),
        model_failures=sum(r.get("model_failures", 0) for r in runs),
    )


def earlier_share(ttt: Sequence[float], base_ttt: Sequence[float]) -> float:
    """The share of (run, baseline run) pairs in which the run reaches the target first.

    Ties (both never, or the same second) count half: 0.5 is "as fast as ASHA", 1.0 "always first".
    This is the Mann-Whitney statistic over seeds; unlike the ratio of medians it stays defined and
    stable when several runs never reach the target, so it shows how much of a 10-seed ratio is
    the luck of the draw.
    """
    if not len(ttt) or not len(base_ttt):
        return math.nan
    ours = np.asarray(ttt, dtype=float)[:, None]
    theirs = np.asarray(base_ttt, dtype=float)[None, :]
    return float(np.mean((ours < theirs) + 0.5 * (ours == theirs)))


def _quantile(values: np.ndarray, q: float) -> float:
    with np.errstate(invalid="ignore"):  # inf - inf inside the interpolation of infinite regrets
        value = float(np.quantile(values, q))
    return math.inf if math.isnan(value) and np.isinf(values).any() else value


def _median(values: Sequence[float]) -> float:
    # np.median keeps inf when more than half are inf (and when the middle pair holds one).
    return float(np.median(np.asarray(values, dtype=float))) if len(values) else math.nan


def _ratio(value: float, base: float) -> float:
    if math.isnan(value) or math.isnan(base) or base == 0 or math.isinf(base):
        return math.nan
    return value / base


def _ordered(names: Iterable[str]) -> list[str]:
    order = list(ALL_METHODS)
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def decision_by_data_size(runs: Sequence[Run]) -> dict[int, float]:
    """Median seconds per suggestion in bins of :data:`DATA_BIN` trials already started."""
    bins: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        for seconds, trials_before, _ in run["asks"]:
            bins[trials_before // DATA_BIN * DATA_BIN].append(seconds)
    return {b: float(np.median(v)) for b, v in sorted(bins.items()) if len(v) >= 3}


# ----- across benchmarks --------------------------------------------------------------------

#: The groups summarised across their benchmarks, in display order.
GROUPS = ("lcbench-tuning", "lcbench-evaluation")


def distributions(
    summaries: Sequence[BenchmarkSummary], corner_tasks: Collection[str] = ()
) -> dict[str, dict[str, protocol.Distribution]]:
    """Per group of LCBench tasks and per method: the distribution of its ratios to ASHA; each
    group again without ``corner_tasks`` (where the surrogate rewards the space's corners), if any."""
    out: dict[str, dict[str, protocol.Distribution]] = {}
    subsets = [(g, g, False) for g in GROUPS]
    if corner_tasks:
        subsets += [(g, f"{g}, without tasks whose corners beat random", True) for g in GROUPS]
    for group, key, drop in subsets:
        members = [s for s in summaries if s.group == group and not (drop and s.table in corner_tasks)]
        names = _ordered({m.method for s in members for m in s.methods} - {BASELINE})
        if members:
            out[key] = {}
            for name in names:
                rows = [m for s in members for m in s.methods if m.method == name]
                out[key][name] = protocol.ratio_distribution(
                    [m.ttt_ratio for m in rows], [(m.ttt_ratio_low, m.ttt_ratio_high) for m in rows]
                )
    return out


def format_distributions(
    dists: dict[str, dict[str, protocol.Distribution]],
    *,
    baseline_label: str = "ASHA",
    methods: Mapping[str, Method] = ALL_METHODS,
) -> str:
    """Per group of tasks, each method's ratios to the baseline's time to target, as a table;
    ``methods`` give the labels (the multi-objective benchmark has its own, against MO-ASHA)."""
    lines = []
    for group, by_method in dists.items():
        lines.append(f"\n{group}: median time to target vs {baseline_label}'s, across tasks\n")
        lines.append(
            "| method | tasks | median ratio | tasks at <= 0.5x | tasks at <= 1.0x "
            "| clearly faster / slower (90% interval) |\n|---|---:|---:|---:|---:|---:|"
        )
        for name, d in by_method.items():
            label = methods[name].label if name in methods else name
            lines.append(
                f"| {label} | {d.benchmarks} | {format_ratio(d.median)} | {_share(d.at_most_half)} "
                f"| {_share(d.at_most_one)} | {d.faster} / {d.slower} |"
            )
    return "\n".join(lines) + ("\n" if lines else "")


#: The overview's columns: every method but ASHA (the baseline) that the comparison runs.
OVERVIEW_METHODS = ("mobster", "tpe-hyperband", "gp-sh", "random", "ref-mobster")


def format_overview(summaries: Sequence[BenchmarkSummary], dists: dict[str, dict[str, protocol.Distribution]]) -> str:
    """The README's table: per real table each method's time to ASHA's median final error as a
    ratio to ASHA's, with its 90% interval and P(first vs ASHA); per group of LCBench tasks the
    median ratio and the shares of tasks at <= 0.5x and <= 1.0x. Methods that did not run are left out."""
    ran = {m.method for s in summaries for m in s.methods}
    methods = [m for m in OVERVIEW_METHODS if m in ran]
    if not methods:
        return ""
    labels = [ALL_METHODS[m].label for m in methods]
    lines = ["| benchmark | " + " | ".join(labels) + " |", "|---|" + "---|" * len(methods)]
    for s in summaries:
        if s.group != "real":
            continue
        rows = {m.method: m for m in s.methods}
        cells = [
            f"{format_ratio(rows[m].ttt_ratio)} [{format_ratio(rows[m].ttt_ratio_low)}, "
            f"{format_ratio(rows[m].ttt_ratio_high)}], P {rows[m].ttt_earlier_share:.2f}"
            if m in rows else "not run"
            for m in methods
        ]
        counts = sorted({m.seeds for m in rows.values()})
        seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        lines.append(f"| `{s.table}` ({seeds} seeds) | " + " | ".join(cells) + " |")
    for group in GROUPS:
        by_method = dists.get(group)
        if not by_method:
            continue
        tasks = max(d.benchmarks for d in by_method.values())
        cells = [
            f"{format_ratio(by_method[m].median)}; {_share(by_method[m].at_most_half)} at <= 0.5x, "
            f"{_share(by_method[m].at_most_one)} at <= 1x"
            + (f" ({by_method[m].benchmarks} tasks)" if by_method[m].benchmarks < tasks else "")
            if m in by_method and by_method[m].benchmarks else "not run"
            for m in methods
        ]
        lines.append(f"| LCBench, {tasks} {group.split('-')[1]} tasks (median) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _share(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.0%}"


def corner_tasks(tables: Iterable[str]) -> set[str]:
    """The LCBench tasks among ``tables`` on which a corner of the space ends below the best of
    20,000 random configurations (empty without the surrogate's data)."""
    from benchmarks import lcbench

    try:
        lcbench.require_data()
    except lcbench.MissingDataError:
        return set()
    return {t for t in tables if lcbench.is_lcbench(t) and lcbench.load(t).corners()[1] > 0}


def surrogate_check(runs: Sequence[Run]) -> list[str]:
    """Where runs ended below the best of the 20,000 random configurations of an LCBench task, how
    many of their incumbent's parameters sit at a bound of the space (within 1% of its range):
    a surrogate extrapolates there, and a tuner may be rewarded for exploiting that."""
    from benchmarks import lcbench

    try:
        lcbench.require_data()
    except lcbench.MissingDataError:
        return []  # the check needs the surrogate; the rest of the report does not
    below: dict[str, list[list[str]]] = defaultdict(list)
    totals: dict[str, int] = defaultdict(int)
    for run in runs:
        if not lcbench.is_lcbench(run["table"]):
            continue
        totals[run["method"]] += 1
        if final_incumbent(run) < run["best"] and run.get("incumbent_config"):
            below[run["method"]].append(lcbench.load(run["table"]).at_bounds(run["incumbent_config"]))
    lines = []
    tables = sorted({r["table"] for r in runs if lcbench.is_lcbench(r["table"])})
    rewarded = sorted(corner_tasks(tables))
    if tables:
        lines.append(
            f"- corners of the space (all 7 parameters at a bound) end below the best random configuration on "
            f"{len(rewarded)} of {len(tables)} tasks" + (f": {', '.join(rewarded)}" if rewarded else "")
        )
    for name in _ordered(totals):
        found = below.get(name, [])
        if not found:
            lines.append(f"- {name}: 0 of {totals[name]} runs end below the best random configuration")
            continue
        counts = np.array([len(b) for b in found])
        common = defaultdict(int)
        for names in found:
            for p in names:
                common[p] += 1
        top = ", ".join(f"{p} {n}" for p, n in sorted(common.items(), key=lambda kv: -kv[1])[:3]) or "none"
        lines.append(
            f"- {name}: {len(found)} of {totals[name]} runs end below the best random configuration; their incumbents "
            f"have {np.median(counts):.0f} parameters at a bound (median; max {counts.max()}), most often: {top}"
        )
    return lines


def format_ratio(x: float) -> str:
    """A ratio as the tables print it: ``0.72x``, ``inf`` (never reached) or ``n/a``."""
    return "n/a" if math.isnan(x) else ("inf" if math.isinf(x) else f"{x:.2f}x")


# ----- table, JSON, plots --------------------------------------------------------------------


def format_table(summaries: Sequence[BenchmarkSummary]) -> str:
    """A markdown table: one row per (benchmark, method), as protocol v2 reports it.

    "vs ASHA" is the ratio of median times to target with its 90% bootstrap interval; "at 25% /
    50%" the same ratio for the easier levels; "free" leaves the tuner's decision time out of the
    clock. "distinct configs" is the median share of a run's trials that trained a configuration
    no earlier trial of the run had (on a table, suggestions snap to the grid).
    """
    head = (
        "| benchmark | method | seeds | time to target (s) | vs ASHA [90% CI] | P(first vs ASHA) | at 25% / 50% "
        "| free: vs ASHA | reached | final regret median [IQR] | ask s p50 / p90 | trials | distinct configs |\n"
        "|---|---|---:|---:|---|---:|---|---:|---:|---|---:|---:|---:|\n"
    )
    lines = []
    for s in summaries:
        for m in s.methods:
            label = ALL_METHODS[m.method].label if m.method in ALL_METHODS else m.method
            levels = " / ".join(format_ratio(m.level_ratios.get(k, math.nan)) for k in s.levels)
            lines.append(
                f"| {s.table} | {label} | {m.seeds} | {_fmt_s(m.ttt_median)} "
                f"| {format_ratio(m.ttt_ratio)} [{format_ratio(m.ttt_ratio_low)}, {format_ratio(m.ttt_ratio_high)}] "
                f"| {m.ttt_earlier_share:.2f} | {levels} | {format_ratio(m.ttt_free_ratio)} | {m.reached}/{m.seeds} "
                f"| {m.regret_median:.4f} [{m.regret_q25:.4f}, {m.regret_q75:.4f}] "
                f"| {m.ask_p50:.3f} / {m.ask_p90:.3f} | {m.trials_median:.0f} "
                f"| {'n/a' if math.isnan(m.distinct_share) else f'{m.distinct_share:.0%}'} |"
            )
    targets = "\n".join(
        f"- {s.table}: target error {s.target:.4f}, easier levels "
        + ", ".join(f"{k} {v:.4f}" for k, v in s.levels.items())
        + f" ({'table best' if s.group == 'real' else 'best of 20,000 random configurations'} {s.best:.4f}"
        + (
            f"; {s.reaching_target} of {s.configurations:,} configurations reach it"
            if s.configurations is not None
            else ""
        )
        + (
            f", {s.reaching_next} reach the next error above it, {s.next_error:.5f}"
            if s.reaching_next is not None and s.next_error is not None
            else ""
        )
        + f"), budget {s.budget:.0f} s on {s.workers} workers"
        + "".join(
            f"; {m.method}: {m.model_failures} suggestions fell back to random (model failure)"
            for m in s.methods
            if m.model_failures
        )
        for s in summaries
    )
    return head + "\n".join(lines) + "\n\n" + targets + "\n"


def _fmt_s(x: float) -> str:
    return "n/a" if math.isnan(x) else ("inf" if math.isinf(x) else f"{x:.0f}")


def summary_json(
    summaries: Sequence[BenchmarkSummary],
    dists: dict[str, dict[str, protocol.Distribution]],
    check_lines: Sequence[str],
) -> dict[str, Any]:
    """The summary as JSON-ready data (``inf`` written as the string ``"inf"``)."""
    return json_ready(
        {
            "benchmarks": [asdict(s) for s in summaries],
            "across_tasks": {g: {m: asdict(d) for m, d in by.items()} for g, by in dists.items()},
            "surrogate_check": list(check_lines),
        }
    )


def json_ready(value: Any) -> Any:
    """``value`` with non-finite floats as the strings ``"inf"``, ``"-inf"``, ``"nan"`` (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_ready(v) for v in value]
    return value


def plot_regret(
    summary: BenchmarkSummary, runs: Sequence[Run], path: Path, methods: Collection[str] | None = None
) -> None:
    """Median regret over simulated time (log scale), IQR shaded: ``methods`` (default every one)."""
    times = np.linspace(0.0, summary.budget, 400)
    fig, (ax,) = plotting.figure((7.5, 4.6))
    for m in summary.methods:
        if methods is not None and m.method not in methods:
            continue
        group = [r for r in runs if r["method"] == m.method]
        regret = np.stack([incumbent_at(r, times) - r["best"] for r in group])
        regret = np.maximum(regret, REGRET_FLOOR)  # zero regret drawn at the floor; inf (no completion yet) stays inf
        meta = ALL_METHODS.get(m.method)
        label = f"{meta.label if meta else m.method} ({len(group)} seeds)"
        color = meta.color if meta else None
        plotting.median_with_iqr(ax, times, regret, label=label, color=color, lw=2 if m.method == "mobster" else 1.4)
    ax.axhline(max(summary.target - summary.best, REGRET_FLOOR), color="grey", ls="--", lw=1, label="target (ASHA median)")
    ax.set_yscale("log")
    ax.set_xlim(0, summary.budget)
    ax.set_xlabel(f"simulated seconds ({summary.workers} workers, decision time charged)")
    ax.set_ylabel(f"regret of the incumbent (floored at {REGRET_FLOOR:g})")
    ax.set_title(f"{summary.table}: median regret over seeds (shaded: IQR)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    plotting.save(fig, path)


def plot_decisions(summary: BenchmarkSummary, runs: Sequence[Run], path: Path) -> None:
    """Median seconds per suggestion against trials already started (data size), log scale."""
    fig, (ax,) = plotting.figure((7.5, 4.2))
    for m in summary.methods:
        if m.method not in MAIN_PLOT_METHODS:
            continue
        curve = decision_by_data_size([r for r in runs if r["method"] == m.method])
        xs = [b + DATA_BIN / 2 for b, v in curve.items() if v > 0]
        ys = [v for v in curve.values() if v > 0]
        if not xs:
            continue
        meta = ALL_METHODS.get(m.method)
        ax.plot(xs, ys, marker="o", ms=3, label=meta.label if meta else m.method, color=meta.color if meta else None)
    ax.set_yscale("log")
    ax.set_xlabel(f"trials already started (bins of {DATA_BIN})")
    ax.set_ylabel("CPU seconds per suggestion (median)")
    ax.set_title(f"{summary.table}: decision time at equal data size (1 thread)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    plotting.save(fig, path)


def plot_mean_ranks(summaries: Sequence[BenchmarkSummary], runs: Sequence[Run], path: Path) -> bool:
    """Mean rank of every main method over time, one panel per group of LCBench tasks; ``False``
    (nothing drawn) when no group has tasks on which every method ran."""
    panels = []
    for group in GROUPS:
        members = [s for s in summaries if s.group == group]
        if not members:
            continue
        methods = _ordered({m.method for s in members for m in s.methods if m.method in MAIN_PLOT_METHODS})
        times = np.linspace(0.0, members[0].budget, 200)
        curves: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
        for run in runs:
            if run["table"] in {s.table for s in members} and run["method"] in methods:
                curves[run["table"]].setdefault(run["method"], []).append(incumbent_at(run, times))  # type: ignore[attr-defined]
        stacked = {t: {m: np.stack(v) for m, v in by.items()} for t, by in curves.items()}
        # Ranks are taken on the tasks where every drawn method ran; a method that ran on fewer
        # than half of the group's tasks is left out rather than shrink that set.
        methods = [m for m in methods if sum(m in by for by in stacked.values()) >= len(stacked) / 2]
        ranks, used = protocol.mean_ranks(stacked, methods)
        if used:
            panels.append((group, times, methods, ranks, len(used)))
    if not panels:
        return False
    fig, axes = plotting.figure((6.2 * len(panels), 4.4), panels=len(panels))
    for ax, (group, times, methods, ranks, n) in zip(axes, panels):
        for name, rank in zip(methods, ranks):
            meta = ALL_METHODS.get(name)
            ax.plot(times, rank, label=meta.label if meta else name, color=meta.color if meta else None,
                    lw=2.2 if name == "mobster" else 1.4)
        ax.set_xlim(0, times[-1])
        ax.set_ylim(len(methods) + 0.3, 0.7)  # rank 1 on top
        ax.set_xlabel("simulated seconds (4 workers, decision time charged)")
        ax.set_ylabel("mean rank of the median incumbent (1 = best)")
        ax.set_title(f"{group}: {n} tasks")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    plotting.save(fig, path)
    return True


def plot_ratio_distribution(summaries: Sequence[BenchmarkSummary], path: Path) -> bool:
    """Each method's time-to-target ratio to ASHA on every benchmark (one dot each, log scale),
    grouped as the README reports them; ``False`` when there is nothing to draw."""
    groups = [g for g in ("real", *GROUPS) if any(s.group == g for s in summaries)]
    methods = _ordered({m.method for s in summaries for m in s.methods if m.method in MAIN_PLOT_METHODS} - {BASELINE})
    if not groups or not methods:
        return False
    fig, (ax,) = plotting.figure((8.5, 4.6))
    width = 0.8 / len(methods)
    ceiling = 20.0  # never reached (inf) is drawn on the ceiling
    for i, name in enumerate(methods):
        meta = ALL_METHODS.get(name)
        label = meta.label if meta else name
        for g, group in enumerate(groups):
            ratios = [m.ttt_ratio for s in summaries if s.group == group for m in s.methods if m.method == name]
            raw = np.array([r for r in ratios if not math.isnan(r)])
            if not raw.size:
                continue
            ratios = np.clip(raw, 0.01, ceiling)
            middle = min(max(float(np.median(raw)), 0.01), ceiling)  # the table's median, inf drawn at the ceiling
            x = g + (i - (len(methods) - 1) / 2) * width
            jitter = np.random.default_rng(i + 10 * g).uniform(-width / 4, width / 4, ratios.size)
            ax.scatter(x + jitter, ratios, s=12, color=meta.color if meta else None, alpha=0.8, label=label)
            label = None  # one legend entry per method
            ax.plot([x - width / 2.5, x + width / 2.5], [middle] * 2, color="black", lw=1.5)
    ax.axhline(1.0, color="grey", lw=1)
    ax.axhline(0.5, color="grey", lw=1, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(f"median time to target / ASHA's (never reached drawn at {ceiling:g})")
    ax.set_title("time to ASHA's median final error, one dot per benchmark (bar: median)")
    ax.grid(True, which="both", axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    plotting.save(fig, path)
    return True


def write_report(out: Path, *, plots: bool = True) -> str:
    """Summarise every run under ``out``; write ``summary.json``, ``summary.md`` and the PNGs.

    Returns the printed text (per-benchmark table, distributions across LCBench tasks, and the
    surrogate check).
    """
    out = Path(out)
    runs = charged_runs(load_runs(out))
    summaries = summarise(runs)
    dists = distributions(summaries, corner_tasks(s.table for s in summaries))
    checks = surrogate_check(runs)
    text = format_table(summaries) + format_distributions(dists)
    if checks:
        text += "\nLCBench runs that end below the best of 20,000 random configurations:\n" + "\n".join(checks) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary_json(summaries, dists, checks), indent=1) + "\n")
    (out / "summary.md").write_text(text)
    (out / "overview.md").write_text(format_overview(summaries, dists))
    if plots:
        for s in summaries:
            table_runs = [r for r in runs if r["table"] == s.table]
            plot_regret(s, table_runs, out / f"regret_{s.table}.png", MAIN_PLOT_METHODS)
            if any(m.method in ABLATIONS for m in s.methods):
                plot_regret(s, table_runs, out / f"ablations_{s.table}.png", ABLATION_PLOT_METHODS)
            if s.group == "real":  # LCBench decision times are in the table; 34 more plots would add little
                plot_decisions(s, table_runs, out / f"decisions_{s.table}.png")
        plot_mean_ranks(summaries, runs, out / "lcbench_mean_rank.png")
        plot_ratio_distribution(summaries, out / "ratios.png")
    return text


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/v2/budget-32"), help="folder with runs/")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    print(write_report(args.out, plots=not args.no_plots))


if __name__ == "__main__":
    main()
