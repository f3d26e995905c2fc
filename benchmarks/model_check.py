"""How well the searcher's GP ranks unseen configurations at the full resource, offline.

A search run mixes the model with the scheduler, the acquisition and the clock; this check takes
the model alone, in seconds. For each table, ``n`` random configurations are put through
synchronous successive halving over their curves (rungs 1, 3, 9, ..., the best third goes on), as
the stopping rule leaves the data of a run; :meth:`mobster.searcher.ModelBasedSearcher.final_means`
fitted to those rung values then predicts the full-resource error of every configuration of the
table it has not seen. Printed per table, kernel and data kind (means over ``--repeats`` draws):

* ``spearman``: rank correlation of the predictions with the true final errors of the unseen;
* ``top-10 pct``: where the model's 10 best unseen configurations really rank (median share of
  the table better than them: 0.01 is the top 1%);
* the same model fitted to the same configurations' **full** curves ends (``--data full``): what
  the model could do if every configuration had been trained to the end.

The gap between the two data kinds is what stopping costs the model; the gap between kernels is
what the kernel buys. ``--probes K ...`` asks instead what one study could measure of that skill
if ``K`` random trials were trained to the end as probes: the Spearman correlation of the model's
predictions (halving data, the default kernel) over ``K`` unseen configurations, in many draws,
beside that of their first-rung values (what the stopping rule ranks by). Run::

    python -m benchmarks.model_check
    python -m benchmarks.model_check --tables torch_mlp_diabetes --sizes 30 90 --repeats 8
    python -m benchmarks.model_check --probes 5 10 20 --sizes 60 --repeats 8
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.stats import spearmanr

from benchmarks.simulator import distributions
from benchmarks.tables import Table, halving_results, list_tables, load_table
from mobster.history import TrialRecord
from mobster.model import DEFAULT_KERNEL, KERNELS, KernelName
from mobster.rungs import rung_levels
from mobster.searcher import ModelBasedSearcher
from optuna_mobster._space import to_search_space

REDUCTION_FACTOR = 3
TOP = 10

DataKind = Literal["halving", "full"]


@dataclass(frozen=True)
class ModelCheck:
    """The model's ranking of the unseen configurations of one draw."""

    spearman: float
    top_percentile: float


@dataclass(frozen=True)
class ProbeCheck:
    """Rank correlations with the final errors over many draws of a few unseen configurations."""

    model: np.ndarray
    first_rung: np.ndarray


def _predict_unseen(
    table: Table, size: int, seed: int, kernel: KernelName, data: DataKind
) -> tuple[np.ndarray, np.ndarray]:
    """The unseen rows of ``table`` and the GP's predicted final errors for them, the GP fitted to
    ``size`` random configurations (``data``: their halving rung values or their final values)."""
    rng = np.random.default_rng(seed)
    seen = rng.choice(len(table.configs), size, replace=False)
    if data == "halving":
        results = halving_results(table, seen, REDUCTION_FACTOR)
    else:
        results = {int(row): {table.max_resource: float(table.curves[row, -1])} for row in seen}
    unseen = np.setdiff1d(np.arange(len(table.configs)), seen)
    searcher = ModelBasedSearcher(
        to_search_space(distributions(table)),
        max_resource=table.max_resource,
        levels=rung_levels(1, table.max_resource, REDUCTION_FACTOR),
        kernel=kernel,
        seed=seed,
    )
    records = [TrialRecord(table.configs[row], results[int(row)]) for row in seen]
    records += [TrialRecord(table.configs[row], {}) for row in unseen]
    means = searcher.final_means(records) if searcher.fit(records) else None
    if means is None:
        raise RuntimeError(f"the GP could not be fitted on {table.name} ({size} configurations, seed {seed})")
    return unseen, np.asarray(means[len(seen) :], dtype=float)


def check(table: Table, size: int, seed: int, kernel: KernelName, data: DataKind) -> ModelCheck:
    """Fit the searcher's GP to ``size`` random configurations of ``table`` and rank the rest."""
    unseen, predicted = _predict_unseen(table, size, seed, kernel, data)
    truth = table.curves[unseen, -1]
    picks = truth[np.argsort(predicted)[:TOP]]
    percentile = float(np.median([(table.curves[:, -1] < value).mean() for value in picks]))
    return ModelCheck(float(spearmanr(predicted, truth).statistic), percentile)


def probe_check(table: Table, size: int, seed: int, probes: int, draws: int = 50) -> ProbeCheck:
    """What ``probes`` random trials trained to the end would measure of the model's ranking skill
    in one study: Spearman correlations over ``draws`` random sets of ``probes`` unseen
    configurations, of the model's predictions (halving data of ``size`` configurations) and of
    the configurations' first-rung values, each with their final errors."""
    if probes < 3:
        raise ValueError(f"probes must be >= 3 for a rank correlation, got {probes}")
    unseen, predicted = _predict_unseen(table, size, seed, DEFAULT_KERNEL, "halving")
    rng = np.random.default_rng(seed + 1)
    model, first_rung = [], []
    for _ in range(draws):
        pick = rng.choice(len(unseen), probes, replace=False)
        final, first = table.curves[unseen[pick], -1], table.curves[unseen[pick], 0]
        model.append(spearmanr(predicted[pick], final).statistic)
        first_rung.append(spearmanr(first, final).statistic)
    # A draw whose final errors all tie has no correlation: count it as no skill.
    return ProbeCheck(np.nan_to_num(np.asarray(model)), np.nan_to_num(np.asarray(first_rung)))


def _print_probes(tables: list[str], sizes: list[int], probe_counts: list[int], repeats: int) -> None:
    print(
        "| table | configurations seen | probes | model: median [10%, 90%] | P(model > 0.5) "
        "| first rung: median | P(model > first rung) |"
    )
    print("|---|---:|---:|---|---:|---:|---:|")
    for name in tables:
        table = load_table(name)
        for size in sizes:
            for probes in probe_counts:
                checks = [probe_check(table, size, seed, probes) for seed in range(repeats)]
                model = np.concatenate([c.model for c in checks])
                first = np.concatenate([c.first_rung for c in checks])
                low, mid, high = np.quantile(model, [0.1, 0.5, 0.9])
                print(
                    f"| {name} | {size} | {probes} | {mid:.2f} [{low:.2f}, {high:.2f}] | {np.mean(model > 0.5):.2f} "
                    f"| {np.median(first):.2f} | {np.mean(model > first):.2f} |",
                    flush=True,
                )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", choices=list_tables(), default=list_tables())
    parser.add_argument("--sizes", nargs="+", type=int, default=[30, 90], help="configurations the model sees")
    parser.add_argument("--kernels", nargs="+", choices=KERNELS, default=list(KERNELS))
    parser.add_argument("--data", nargs="+", choices=["halving", "full"], default=["halving", "full"])
    parser.add_argument("--repeats", type=int, default=4, help="random draws per setting")
    parser.add_argument(
        "--probes", nargs="+", type=int, help="instead: what this many probe trials, trained to the end, would measure"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.probes:
        _print_probes(args.tables, args.sizes, args.probes, args.repeats)
        return
    print("| table | configurations seen | data | kernel | spearman | top-10 pct |")
    print("|---|---:|---|---|---:|---:|")
    for name in args.tables:
        table = load_table(name)
        for size in args.sizes:
            for data in args.data:
                for kernel in args.kernels:
                    checks = [check(table, size, seed, kernel, data) for seed in range(args.repeats)]
                    spearman = np.mean([c.spearman for c in checks])
                    percentile = np.mean([c.top_percentile for c in checks])
                    print(f"| {name} | {size} | {data} | {kernel} | {spearman:.2f} | {percentile:.3f} |", flush=True)


if __name__ == "__main__":
    main()
