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
what the kernel buys. Run::

    python -m benchmarks.model_check
    python -m benchmarks.model_check --tables torch_mlp_diabetes --sizes 30 90 --repeats 8
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
from mobster.model import KERNELS, KernelName
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


def check(table: Table, size: int, seed: int, kernel: KernelName, data: DataKind) -> ModelCheck:
    """Fit the searcher's GP to ``size`` random configurations of ``table`` and rank the rest."""
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
    predicted = means[len(seen) :]
    truth = table.curves[unseen, -1]
    picks = truth[np.argsort(predicted)[:TOP]]
    percentile = float(np.median([(table.curves[:, -1] < value).mean() for value in picks]))
    return ModelCheck(float(spearmanr(predicted, truth).statistic), percentile)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", choices=list_tables(), default=list_tables())
    parser.add_argument("--sizes", nargs="+", type=int, default=[30, 90], help="configurations the model sees")
    parser.add_argument("--kernels", nargs="+", choices=KERNELS, default=list(KERNELS))
    parser.add_argument("--data", nargs="+", choices=["halving", "full"], default=["halving", "full"])
    parser.add_argument("--repeats", type=int, default=4, help="random draws per setting")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
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
