"""The command line both demos share: the budget, the output folder, and MOBSTER vs ASHA."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from examples.reporting import RunSummary, TrialRecord, plot_incumbents

#: A demo's runner for one method, "mobster" or "asha": its summary and its trials.
RunMethod = Callable[[str], tuple[RunSummary, list[TrialRecord]]]


def build_parser(
    description: str, *, trials: int, timeout: float, timeout_help: str, workers_help: str, out: Path
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=trials, help="most trials to start (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=27, help="maximum epochs per trial (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help=f"{workers_help} (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=timeout, help=f"{timeout_help} (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the search and of the trainings")
    parser.add_argument("--out", type=Path, default=out, help="where results, figures and summary go (default: %(default)s)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--baseline", choices=["asha"], help="run the baseline (random search + the same rungs) instead")
    group.add_argument("--compare", action="store_true", help="run MOBSTER, then ASHA with the same budget")
    return parser


def run_methods(args: argparse.Namespace, run_method: RunMethod, framework: str) -> list[RunSummary]:
    """Run what the options ask for; with ``--compare`` also draw both incumbents in one figure."""
    methods = ["mobster", "asha"] if args.compare else [args.baseline or "mobster"]
    runs = [run_method(method) for method in methods]
    if args.compare:
        figure = args.out / "incumbent_comparison.png"
        plot_incumbents({summary.method: records for summary, records in runs}, runs[0][0].rung_levels, figure,
                        f"MOBSTER vs ASHA ({framework}): incumbent over time")
        print(f"\ncomparison figure: {figure}", flush=True)
    return [summary for summary, _ in runs]
