"""How the model's proposals and the random share's fare at each rung, in simulated runs.

Ours draws a ``random_fraction`` share of its suggestions at random (a third by default). A
bandit over the two sources would move that share toward whichever fares better in the study at
hand, so that a study where the model knows little behaves more like ASHA. That only works if
the two sources fare differently on different kinds of problem. This diagnostic measures it: it
runs ours (the Optuna plugin's defaults) through the simulator at the protocol's budget, tags
every suggestion with the branch of :meth:`mobster.searcher.ModelBasedSearcher.suggest` that made
it (``initial``, ``model`` or ``random``), and prints, per benchmark and rung, how many trials of
each source were recorded there and their mean rank percentile among all trials recorded there
(0 best, 1 worst; 0.5 is the middle of the rung)::

    python -m benchmarks.proposal_sources --tables mlp_digits torch_mlp_diabetes lcbench-167161 --seeds 4

The tag comes from wrapping two private methods of the searcher for the duration of a run
(:func:`tagged_sources`); a rename there fails loudly here (and in the test).
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import rankdata

from benchmarks import methods
from benchmarks.run import load_benchmark, pin_threads
from benchmarks.simulator import budget_seconds, simulate
from mobster.searcher import ModelBasedSearcher

SOURCES = ("initial", "model", "random")


@contextlib.contextmanager
def tagged_sources() -> Iterator[dict[tuple, str]]:
    """While open, every configuration a :class:`ModelBasedSearcher` suggests is recorded in the
    yielded map (its sorted items -> ``"initial"``, ``"model"`` or ``"random"``)."""
    tags: dict[tuple, str] = {}
    originals = {name: getattr(ModelBasedSearcher, name) for name in ("suggest_ranked", "_random_config", "_model_based_units")}

    def random_config(self: ModelBasedSearcher, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._diagnostic_source = "random"
        return originals["_random_config"](self, *args, **kwargs)

    def model_based_units(self: ModelBasedSearcher, *args: Any, **kwargs: Any) -> np.ndarray:
        units = originals["_model_based_units"](self, *args, **kwargs)
        self._diagnostic_source = "model"  # after it: a failed model falls back to random
        return units

    def suggest_ranked(self: ModelBasedSearcher, trials: Sequence[Any], count: int) -> list[dict[str, Any]]:
        self._diagnostic_source = "random"
        configs = originals["suggest_ranked"](self, trials, count)
        initial = len(trials) < self.options.num_initial_random
        for config in configs:  # runner-ups (taken when processes collide) come from the same source
            tags[tuple(sorted(config.items()))] = "initial" if initial else self._diagnostic_source
        return configs

    ModelBasedSearcher.suggest_ranked = suggest_ranked  # type: ignore[method-assign]
    ModelBasedSearcher._random_config = random_config  # type: ignore[method-assign]
    ModelBasedSearcher._model_based_units = model_based_units  # type: ignore[method-assign]
    try:
        yield tags
    finally:
        for name, original in originals.items():
            setattr(ModelBasedSearcher, name, original)


@dataclass
class SourceSummary:
    """One benchmark over its seeds: trials started per source, and per rung level and source
    the trials recorded there and the sum of their rank percentiles."""

    table: str
    levels: list[int] = field(default_factory=list)
    started: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    recorded: dict[tuple[int, str], int] = field(default_factory=dict)
    percentile_sum: dict[tuple[int, str], float] = field(default_factory=dict)

    def mean_percentile(self, level: int, source: str) -> float:
        n = self.recorded.get((level, source), 0)
        return self.percentile_sum.get((level, source), 0.0) / n if n else math.nan


def measure(table_name: str, seeds: Sequence[int], budget_trainings: float = 32, workers: int = 4) -> SourceSummary:
    """Run ours on ``table_name`` for each seed and collect where each source's trials stand."""
    table = load_benchmark(table_name)
    summary = SourceSummary(table_name)
    for seed in seeds:
        sampler, pruner = methods.make("mobster", seed, table.max_resource)
        with tagged_sources() as tags:
            sim = simulate(
                table, sampler, pruner, workers=workers, budget=budget_seconds(workers, budget_trainings),
                study_name=f"{table_name}-sources-{seed}",
            )
        study = sim.study
        summary.levels = pruner.levels(study)
        trials = [t for t in study.trials if t.intermediate_values]
        # Untagged: drawn by Optuna's independent sampler before any trial completed (the
        # relative search space is empty until then), so random like the initial ones.
        source = {t.number: tags.get(tuple(sorted(t.params.items())), "initial") for t in trials}
        for name in source.values():
            summary.started[name] += 1
        for level in summary.levels:
            at = {t.number: t.intermediate_values[level] for t in trials if level in t.intermediate_values}
            if len(at) < 2:
                continue
            numbers = list(at)
            percentiles = (rankdata([at[n] for n in numbers]) - 1) / (len(numbers) - 1)
            for number, percentile in zip(numbers, percentiles):
                key = (level, source[number])
                summary.recorded[key] = summary.recorded.get(key, 0) + 1
                summary.percentile_sum[key] = summary.percentile_sum.get(key, 0.0) + float(percentile)
    return summary


def format_summary(summary: SourceSummary, seeds: int) -> str:
    started = ", ".join(f"{name} {summary.started[name]}" for name in SOURCES)
    lines = [f"{summary.table} ({seeds} seeds): trials started: {started}"]
    for level in summary.levels:
        cells = [
            f"{name}: {summary.recorded.get((level, name), 0):4d} recorded, mean percentile "
            f"{summary.mean_percentile(level, name):.2f}"
            for name in ("model", "random")
        ]
        lines.append(f"  rung {level:3d}   " + "   ".join(cells))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="+", default=["mlp_digits", "torch_mlp_diabetes", "kernel_sgd_digits"])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--budget-trainings", type=float, default=32)
    args = parser.parse_args(argv)
    pin_threads()
    for table in args.tables:
        print(format_summary(measure(table, range(args.seeds), args.budget_trainings), args.seeds), flush=True)


if __name__ == "__main__":
    main()
