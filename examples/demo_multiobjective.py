"""Several objectives: the joint architecture + hyperparameter search for (validation error,
parameter count), with MOBSTER and with MO-ASHA, in Optuna.

    python examples/demo_multiobjective.py                  # MOBSTER, then MO-ASHA, same budget
    python examples/demo_multiobjective.py --methods mobster

The MLP family of ``examples/nas_model.py`` is trained on scikit-learn's digits, epoch by epoch.
Every epoch the trial reports both objectives with ``optuna_mobster.report`` (Optuna's own
``trial.report`` takes one value) and asks ``optuna_mobster.should_prune``: ``MobsterPruner``
stops a trial at a rung unless it is in the top third there by non-dominated sorting
(MO-ASHA's rule). MOBSTER proposes configurations with its GP over (configuration, epochs) on
random scalarisations of the two objectives (ParEGO); MO-ASHA proposes them at random.

At the end it prints each front and writes ``front_over_time.png`` (the hypervolume of the
completed trials' front over time, and the final fronts) and ``summary.json`` under ``--out``.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script, `examples` is not importable otherwise
    sys.path.insert(0, str(REPO_ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

import optuna_mobster  # noqa: E402
from examples.nas_model import Trainer, suggest_config  # noqa: E402
from mobster.pareto import hypervolume_2d, nondominated_fronts  # noqa: E402
from optuna_mobster import MobsterPruner, MobsterSampler  # noqa: E402

METHODS = {"mobster": "MOBSTER (ParEGO on the GP)", "mo-asha": "MO-ASHA (random proposals)"}
#: Completion times are user attrs: Optuna keeps no time per value.
FINISHED_AT = "finished_at"


@dataclass(frozen=True)
class Objective:
    """Trains one configuration; reports (validation error, parameters in thousands) every epoch."""

    max_epochs: int
    seed: int

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        trainer = Trainer(suggest_config(trial), self.max_epochs, seed=self.seed + trial.number)
        size = sum(p.numel() for p in trainer.model.parameters()) / 1000.0  # known before training
        while not trainer.finished:
            error = trainer.train_one_epoch()
            optuna_mobster.report(trial, (error, size), step=trainer.epoch)
            if optuna_mobster.should_prune(trial):
                raise optuna.TrialPruned(f"stopped at epoch {trainer.epoch}")
        trial.set_user_attr(FINISHED_AT, time.time())
        return error, size


@dataclass
class Run:
    """What one method found: completed points (time s, error, thousands of parameters), counts."""

    method: str
    completed: list[tuple[float, float, float]]
    trials: int
    pruned: int
    failed: int

    def front(self) -> list[tuple[float, float]]:
        """The non-dominated (error, size) points, by error."""
        if not self.completed:
            return []
        points = np.array([(e, s) for _, e, s in self.completed])
        return sorted(map(tuple, points[nondominated_fronts(points) == 0].tolist()))  # type: ignore[arg-type]


def run_study(method: str, args: argparse.Namespace) -> Run:
    sampler = MobsterSampler(seed=args.seed) if method == "mobster" else optuna.samplers.RandomSampler(seed=args.seed)
    study = optuna.create_study(
        directions=["minimize", "minimize"], sampler=sampler, pruner=MobsterPruner(max_resource=args.epochs)
    )
    print(f"\n{METHODS[method]}: up to {args.trials} trials of up to {args.epochs} epochs, {args.workers} workers, "
          f"time limit {args.timeout:.0f} s", flush=True)
    start = time.time()
    study.optimize(Objective(args.epochs, args.seed), n_trials=args.trials, timeout=args.timeout,
                   n_jobs=args.workers, show_progress_bar=True)
    trials = study.get_trials(deepcopy=False)
    completed = sorted(
        (t.user_attrs[FINISHED_AT] - start, *t.values) for t in trials if t.state == TrialState.COMPLETE
    )
    count = lambda state: sum(t.state == state for t in trials)  # noqa: E731
    return Run(method, completed, len(trials), count(TrialState.PRUNED), count(TrialState.FAIL))


def hypervolume_over_time(run: Run, box: tuple[tuple[float, float], tuple[float, float]]) -> list[tuple[float, float]]:
    """(time, hypervolume of the front so far as a share of ``box``) at each completion.

    ``box``: (error low, error high), (size low, size high). Sizes count by their logarithm: a
    network half the size is as much better at 2,000 parameters as at 200,000.
    """
    (e_low, e_high), (s_low, s_high) = box
    log_low, log_span = np.log(s_low), max(np.log(s_high) - np.log(s_low), 1e-12)
    points: list[tuple[float, float]] = []
    curve = []
    for t, error, size in run.completed:
        points.append(((error - e_low) / max(e_high - e_low, 1e-12), (np.log(size) - log_low) / log_span))
        curve.append((t, hypervolume_2d(np.array(points), (1.0, 1.0))))
    return curve


def plot(runs: Sequence[Run], box: tuple[tuple[float, float], tuple[float, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for run, colour in zip(runs, ("#d62728", "#1f77b4")):
        curve = hypervolume_over_time(run, box)
        if curve:
            left.step([t for t, _ in curve], [hv for _, hv in curve], where="post", color=colour, label=METHODS[run.method])
        front = run.front()
        right.scatter([e for _, e, _ in run.completed], [s for _, _, s in run.completed], s=12, alpha=0.35, color=colour)
        right.step([e for e, _ in front], [s for _, s in front], where="post", color=colour, label=f"{METHODS[run.method]} front")
    left.set(xlabel="seconds", ylabel="hypervolume (error x log size, share of the box)", title="Front over time")
    right.set(xlabel="validation error", ylabel="parameters (thousands)", yscale="log", title="Completed trials and fronts")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--trials", type=int, default=150, help="most trials per method (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=27, help="maximum epochs per trial (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="trials at once, in threads (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=120.0, help="no new trials after this many seconds, per method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "out" / "demo_multiobjective")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the workers share few cores; intra-op threads would only contend
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)

    runs = [run_study(method, args) for method in args.methods]
    every = [(e, s) for run in runs for _, e, s in run.completed] or [(0.0, 1.0)]
    # One box for every method: from the best to 1.1x the worst error and size completed.
    errors, sizes = [e for e, _ in every], [s for _, s in every]
    box = ((min(errors), max(errors) * 1.1), (min(sizes), max(sizes) * 1.1))
    summary: dict = {"box": box, "methods": {}}
    for run in runs:
        curve = hypervolume_over_time(run, box)
        summary["methods"][run.method] = {
            **asdict(run),
            "front": run.front(),
            "hypervolume": curve[-1][1] if curve else 0.0,
        }
        print(f"\n{METHODS[run.method]}: {run.trials} trials, {run.pruned} pruned, {run.failed} failed; "
              f"hypervolume {summary['methods'][run.method]['hypervolume']:.3f}; front (error, thousand parameters):")
        for error, size in run.front():
            print(f"  {error:.4f}  {size:8.1f}")
    figure = args.out / "front_over_time.png"
    plot(runs, box, figure)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\nwritten: {figure}, {args.out / 'summary.json'}", flush=True)
    return summary


if __name__ == "__main__":
    main()
