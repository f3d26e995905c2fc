"""Ours against another method over every seed both ran, pooled across blocks of seeds.

A result folder (``benchmarks/results``, ``benchmarks/results/more-seeds``, ...) holds one block of
seeds with a target of its own: its ASHA runs' median final incumbent. On tables where a handful of
configurations reach the target, ten seeds rank two methods poorly, so the README's verdicts
against the reference MOBSTER pool the blocks: each run's time to target is taken against its own
block's target, over the seeds both methods ran in that block::

    python -m benchmarks.pooled --against ref-mobster \\
        --folders benchmarks/results benchmarks/results/more-seeds

Each ratio comes with its 90% bootstrap interval over the pooled runs (each run's time taken
against its own block's target), resampled as the report's intervals are. Below the table, per
group of benchmarks (the real tables, LCBench's tuning and evaluation tasks), how many are at or
below :data:`LEVEL` times the other method's time.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import report
from benchmarks.methods import BASELINE
from benchmarks.protocol import ratio_interval
from benchmarks.suite import task_group

#: The ratio to the other method that counts as clearly ahead of it in the group summary.
LEVEL = 0.8


@dataclass(frozen=True)
class Pooled:
    """Two methods on one table over the seeds both ran, every block against its own target."""

    table: str
    seeds: int
    ours_median: float
    theirs_median: float
    ours_reached: int
    theirs_reached: int
    #: Share of (our run, their run) pairs of a block in which ours reaches the target first
    #: (ties count half), averaged over the blocks weighted by their seeds.
    ours_first: float
    #: The 90% bootstrap interval of :attr:`ratio` over the pooled runs (``inf`` where ours'
    #: median is never in a resample, ``0`` where only theirs is); ``nan`` when not computed.
    interval: tuple[float, float] = (math.nan, math.nan)

    @property
    def ratio(self) -> float:
        """Our median time to target over theirs: ``nan`` when theirs is infinite, ``inf`` when only ours is."""
        if math.isinf(self.theirs_median) or self.theirs_median == 0:
            return math.nan
        return self.ours_median / self.theirs_median


def block_times(runs: Sequence[report.Run], table: str, method: str) -> dict[int, float]:
    """Seed -> time to target of ``method`` on ``table`` in one block (its ASHA runs' target).

    Empty when the block has no ASHA run of the table (no target) or no run of ``method``.
    """
    on_table = [r for r in report.charged_runs(runs) if r["table"] == table]
    finals = [report.final_incumbent(r) for r in on_table if r["method"] == BASELINE]
    if not finals:
        return {}
    target = report.target_of(finals)
    return {r["seed"]: report.time_to_target(r, target) for r in on_table if r["method"] == method}


def pooled(blocks: Sequence[Sequence[report.Run]], table: str, ours: str, theirs: str) -> Pooled | None:
    """``ours`` against ``theirs`` on ``table`` over the seeds both ran, in every block (the runs
    stored in one result folder); ``None`` when no block has a seed of both."""
    mine: list[float] = []
    other: list[float] = []
    first = 0.0  # pairs are formed within a block, whose runs share one target
    for runs in blocks:
        a, b = block_times(runs, table, ours), block_times(runs, table, theirs)
        seeds = sorted(a.keys() & b.keys())
        if not seeds:
            continue
        mine += [a[s] for s in seeds]
        other += [b[s] for s in seeds]
        first += report.earlier_share([a[s] for s in seeds], [b[s] for s in seeds]) * len(seeds)
    if not mine:
        return None
    spread = ratio_interval(mine, other)
    return Pooled(
        table=table,
        seeds=len(mine),
        ours_median=float(np.median(mine)),  # inf when most runs never reach the target
        theirs_median=float(np.median(other)),
        ours_reached=sum(math.isfinite(t) for t in mine),
        theirs_reached=sum(math.isfinite(t) for t in other),
        ours_first=first / len(mine),
        interval=(spread.low, spread.high),
    )


def format_rows(rows: Sequence[Pooled], ours: str, theirs: str) -> str:
    """A Markdown table of pooled comparisons."""
    lines = [
        f"| table | seeds | {ours}: time to target (s) | {theirs} | ratio [90%] | reached: {ours} / {theirs} | P({ours} first) |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        ratio = report.format_ratio(row.ratio)
        if not any(math.isnan(end) for end in row.interval):
            ratio += f" [{report.format_ratio(row.interval[0])}, {report.format_ratio(row.interval[1])}]"
        lines.append(
            f"| {row.table} | {row.seeds} | {row.ours_median:,.0f} | {row.theirs_median:,.0f} | {ratio} | "
            f"{row.ours_reached} / {row.theirs_reached} | {row.ours_first:.2f} |"
        )
    return "\n".join(lines)


def format_groups(rows: Sequence[Pooled], ours: str, theirs: str) -> str:
    """Per group of benchmarks: how many are at or below :data:`LEVEL` x, and the mean P(first)."""
    lines = []
    for group in ("real", "lcbench-tuning", "lcbench-evaluation"):
        members = [r for r in rows if task_group(r.table) == group]
        if members:
            # A ratio is undefined (nan) when theirs never reaches the target: then ours is at the
            # level when it does reach it (it is infinitely faster), not when neither does.
            at_level = sum(r.ratio <= LEVEL or (math.isnan(r.ratio) and math.isfinite(r.ours_median)) for r in members)
            lines.append(
                f"- {group}: {ours} at <= {LEVEL}x {theirs}'s time on {at_level} of {len(members)}; "
                f"mean P({ours} first) {np.mean([r.ours_first for r in members]):.2f}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folders", nargs="+", type=Path, required=True, help="result folders, one block of seeds each")
    parser.add_argument("--ours", default="mobster")
    parser.add_argument("--against", default="ref-mobster")
    args = parser.parse_args(argv)
    blocks = [report.load_runs(folder) for folder in args.folders]
    tables = sorted({r["table"] for runs in blocks for r in runs})
    rows = [row for table in tables if (row := pooled(blocks, table, args.ours, args.against))]
    print(format_rows(rows, args.ours, args.against))
    print()
    print(format_groups(rows, args.ours, args.against))


if __name__ == "__main__":
    main()
