"""Joint architecture + hyperparameter search with MOBSTER in Optuna, on real training.

    python examples/demo_optuna.py                 # MOBSTER: MobsterSampler + MobsterPruner
    python examples/demo_optuna.py --baseline asha # ASHA: random sampling + the same pruner
    python examples/demo_optuna.py --compare       # both, one after the other, and a joint figure

An MLP family on scikit-learn's digits (see ``examples/nas_model.py`` for the space) is trained
epoch by epoch; every epoch's validation error is reported to Optuna, and the pruner stops trials at
the rungs (1, 3, 9, 27 epochs by default). Several trials run at once in threads (``--workers``).
The study lives in a SQLite file: watch it with ``optuna-dashboard sqlite:///out/demo_optuna/optuna.db``.
At the end the demo prints a summary and writes figures under ``--out``.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script, `examples` is not importable otherwise
    sys.path.insert(0, str(REPO_ROOT))

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import datetime  # noqa: E402

import optuna  # noqa: E402
import torch  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from examples.nas_model import SPACE_DOC, Trainer, TrialConfig, suggest_config  # noqa: E402
from examples.demo_cli import build_parser, run_methods  # noqa: E402
from examples.reporting import CurvePoint, RunSummary, TrialRecord, report_run  # noqa: E402
from mobster.rungs import rung_levels  # noqa: E402
from optuna_mobster import MobsterPruner, MobsterSampler  # noqa: E402

REDUCTION_FACTOR = 3
# Optuna keeps no time per intermediate value; each trial stores its report times as a user attribute.
REPORT_TIMES_ATTR = "report_times"
METHOD_LABELS = {"mobster": "MOBSTER (Optuna)", "asha": "ASHA (Optuna: random sampling)"}


@dataclass(frozen=True)
class Objective:
    """Trains one suggested configuration, reporting the validation error after every epoch."""

    max_epochs: int
    seed: int

    def __call__(self, trial: optuna.Trial) -> float:
        trainer = Trainer(suggest_config(trial), self.max_epochs, seed=self.seed + trial.number)
        report_times: list[float] = []
        try:
            while not trainer.finished:
                error = trainer.train_one_epoch()
                report_times.append(time.time())
                trial.report(error, step=trainer.epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"stopped at epoch {trainer.epoch}")
        finally:
            trial.set_user_attr(REPORT_TIMES_ATTR, report_times)
        return error


def trial_record(trial: FrozenTrial, start_time: float) -> TrialRecord:
    """The learning curve of a finished trial, times relative to the start of the run."""
    errors = sorted(trial.intermediate_values.items())
    times = trial.user_attrs.get(REPORT_TIMES_ATTR, [])
    curve = tuple(CurvePoint(epoch, error, t - start_time) for (epoch, error), t in zip(errors, times))
    try:
        config: TrialConfig | None = TrialConfig.from_params(trial.params)
    except KeyError:  # the trial failed before all parameters were suggested
        config = None
    return TrialRecord(str(trial.number), config, curve, failed=trial.state == TrialState.FAIL)


def run_study(method: str, args: argparse.Namespace) -> tuple[RunSummary, list[TrialRecord]]:
    """One study of ``method`` ("mobster" or "asha") under the budget in ``args``."""
    sampler: optuna.samplers.BaseSampler = (
        MobsterSampler(seed=args.seed) if method == "mobster" else optuna.samplers.RandomSampler(seed=args.seed)
    )
    pruner = MobsterPruner(min_resource=1, max_resource=args.epochs, reduction_factor=REDUCTION_FACTOR)
    args.out.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{args.out.resolve() / 'optuna.db'}"
    # A new study per run; earlier runs stay in the same file, side by side in the dashboard.
    study_name = f"{method}-{datetime.now():%Y%m%d-%H%M%S}"
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        load_if_exists=True,
        direction="minimize",
        sampler=sampler,
        pruner=pruner,
    )
    label = METHOD_LABELS[method]
    print(f"\n{label}: up to {args.trials} trials of up to {args.epochs} epochs, {args.workers} workers, "
          f"time limit {args.timeout:.0f} s; study '{study_name}' in {storage}", flush=True)
    start = time.time()
    study.optimize(
        Objective(args.epochs, args.seed),
        n_trials=args.trials,
        timeout=args.timeout,
        n_jobs=args.workers,
        show_progress_bar=True,
    )
    wall_clock_s = time.time() - start
    records = [trial_record(t, start) for t in study.get_trials(deepcopy=False)]
    levels = rung_levels(1, args.epochs, REDUCTION_FACTOR)
    summary = report_run(label, records, levels, wall_clock_s, args.out / method)
    print(f"dashboard: optuna-dashboard {storage}  (the 'dashboard' extra installs it)", flush=True)
    return summary, records


def main(argv: Sequence[str] | None = None) -> list[RunSummary]:
    args = build_parser(
        __doc__,
        trials=100,
        timeout=180.0,
        timeout_help="no new trials after this many seconds",
        workers_help="trials run at once, in threads",
        out=REPO_ROOT / "out" / "demo_optuna",
    ).parse_args(argv)
    torch.set_num_threads(1)  # the workers share few cores; intra-op threads would only contend
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar says enough
    print("Search space:\n" + SPACE_DOC)
    return run_methods(args, lambda method: run_study(method, args), "Optuna")


if __name__ == "__main__":
    main()
