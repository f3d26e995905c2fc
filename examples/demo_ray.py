"""Joint architecture + hyperparameter search with MOBSTER in Ray Tune, on real training.

    python examples/demo_ray.py                 # MOBSTER: MobsterSearcher + MobsterScheduler
    python examples/demo_ray.py --baseline asha # ASHA: Ray's random search + the same scheduler
    python examples/demo_ray.py --compare       # both, one after the other, and a joint figure

An MLP family on scikit-learn's digits (see ``examples/nas_model.py`` for the space) is trained
epoch by epoch in a function trainable that reports the validation error with a checkpoint after
every epoch. ``MobsterScheduler(type="promotion")`` pauses trials at the rungs (1, 3, 9, 27 epochs
by default) and resumes the promising ones from their checkpoints. Ray runs locally, one trial per
CPU (or per GPU when there is one); results go under ``--out``, with a summary and figures.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script, `examples` is not importable otherwise
    sys.path.insert(0, str(REPO_ROOT))

import argparse  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any  # noqa: E402

import ray  # noqa: E402
import torch  # noqa: E402
from ray import tune  # noqa: E402

from examples.nas_model import SPACE_DOC, Trainer, TrialConfig, ray_param_space  # noqa: E402
from examples.demo_cli import build_parser, run_methods  # noqa: E402
from examples.reporting import CurvePoint, RunSummary, TrialRecord, report_run  # noqa: E402
from mobster.rungs import rung_levels  # noqa: E402
from tune_mobster import MobsterScheduler, MobsterSearcher  # noqa: E402

REDUCTION_FACTOR = 3
METRIC = "val_error"
CHECKPOINT_FILE = "trainer.pt"
METHOD_LABELS = {"mobster": "MOBSTER (Ray Tune)", "asha": "ASHA (Ray Tune: random search)"}


def train_trial(params: dict[str, Any], *, max_epochs: int, seed: int) -> None:
    """Ray Tune function trainable: one epoch per result, each with a checkpoint to resume from.

    The promotion scheduler pauses a trial at a rung by stopping its actor; when it promotes the
    trial, this function starts again and must continue from the checkpoint, not from epoch 0.
    """
    torch.set_num_threads(1)  # one CPU per trial; more intra-op threads would only contend
    device = "cuda" if torch.cuda.is_available() else "cpu"
    trial_seed = seed + zlib.crc32(tune.get_context().get_trial_id().encode())
    trainer = Trainer(TrialConfig.from_params(params), max_epochs, seed=trial_seed, device=device)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trainer.load_state_dict(torch.load(Path(directory) / CHECKPOINT_FILE, map_location="cpu"))
    while not trainer.finished:
        error = trainer.train_one_epoch()
        with tempfile.TemporaryDirectory() as directory:  # Tune copies it into the trial's storage
            torch.save(trainer.state_dict(), Path(directory) / CHECKPOINT_FILE)
            tune.report(
                {METRIC: error, "epoch": trainer.epoch, "wall_time": time.time()},
                checkpoint=tune.Checkpoint.from_directory(directory),
            )


class StatusLine(tune.Callback):
    """Ray's trial counts and the best result so far, one short line every ``every_s`` seconds
    and at the end: the demo's progress output (Ray's own, ``--verbose 1``, prints a table of
    every parameter of every trial and a box per trial start and end, thousands of lines).

    Its hooks only compare numbers; the counting happens when a line is printed.
    """

    def __init__(self, max_epochs: int, every_s: float = 30.0) -> None:
        self._max_epochs = max_epochs
        self._every_s = every_s
        self._start = self._last = time.time()
        self._best: tuple[float, str] | None = None

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        # The best result as Ray and the summary give it: an error at the full resource.
        if result.get("epoch", 0) >= self._max_epochs and METRIC in result:
            if self._best is None or result[METRIC] < self._best[0]:
                self._best = (result[METRIC], trial.trial_id)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.time() - self._last >= self._every_s:
            self._print(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._print(trials)

    def _print(self, trials: list) -> None:
        self._last = time.time()
        counts = Counter(trial.status for trial in trials)
        status = " | ".join(f"{counts[s]} {s}" for s in ("RUNNING", "TERMINATED", "PAUSED", "PENDING", "ERROR") if counts[s])
        best = f"; best {METRIC} {self._best[0]:.4f} (trial {self._best[1]})" if self._best else ""
        print(f"[{self._last - self._start:5.0f} s] Trial status: {status}{best}", flush=True)


class _WithoutUnstartedTrialWarning(logging.Filter):
    """Drops Ray's "Failed to fetch metrics" warning when every trial it names has no result
    files at all: a trial the time budget ended before its first result, which Ray writes them
    with (the summary counts it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        first, *failures = record.getMessage().splitlines()
        return not (first.startswith("Failed to fetch metrics") and failures and all(
            "FileNotFoundError" in line for line in failures))


def _quiet_worker_logs() -> None:
    """Runs in each Ray worker: Tune's and Train's info lines ("Checkpoint successfully created",
    "Restored ... from checkpoint"), one per epoch and resume, would reach the driver's log."""
    for name in ("ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)


def trial_records(results: tune.ResultGrid, start_time: float) -> list[TrialRecord]:
    """Learning curves from each trial's stored results, times relative to the start of the run.

    Every trial Ray created is kept, as Ray counts them: one that raised is failed, one that the
    time budget ended before it reported (Ray then says TERMINATED) has an empty curve.
    """
    records = []
    for result in results:
        frame = result.metrics_dataframe
        curve: tuple[CurvePoint, ...] = ()
        if frame is not None and METRIC in frame:
            rows = frame.dropna(subset=[METRIC]).drop_duplicates("epoch").sort_values("epoch")
            curve = tuple(
                CurvePoint(int(row.epoch), float(row.val_error), float(row.wall_time) - start_time)
                for row in rows.itertuples()
            )
        config = TrialConfig.from_params(result.config) if result.config else None
        trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name
        records.append(TrialRecord(str(trial_id), config, curve, failed=result.error is not None))
    return records


def run_experiment(method: str, args: argparse.Namespace) -> tuple[RunSummary, list[TrialRecord]]:
    """One Tune experiment of ``method`` ("mobster" or "asha") under the budget in ``args``."""
    label = METHOD_LABELS[method]
    resources = {"cpu": 1, "gpu": 1} if torch.cuda.is_available() else {"cpu": 1}
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, max_epochs=args.epochs, seed=args.seed), resources
    )
    tuner = tune.Tuner(
        trainable,
        param_space=ray_param_space(),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="min",
            search_alg=MobsterSearcher(seed=args.seed) if method == "mobster" else None,
            scheduler=MobsterScheduler(
                max_t=args.epochs, grace_period=1, reduction_factor=REDUCTION_FACTOR, type="promotion"
            ),
            num_samples=args.trials,
            max_concurrent_trials=args.workers,
            time_budget_s=args.timeout,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            storage_path=str((args.out / "ray_results").resolve()),
            name=f"{method}-{time.strftime('%Y%m%d-%H%M%S')}",
            # Only the latest checkpoint is ever resumed from; older ones would just fill the disk.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=args.verbose,
            callbacks=[StatusLine(args.epochs)] if args.verbose == 0 else None,
        ),
    )
    print(f"\n{label}: up to {args.trials} trials of up to {args.epochs} epochs, {args.workers} at a time "
          f"on {resources}, time limit {args.timeout:.0f} s", flush=True)
    start = time.time()
    analysis_logger = logging.getLogger("ray.tune.analysis.experiment_analysis")
    quiet = _WithoutUnstartedTrialWarning()
    analysis_logger.addFilter(quiet)
    try:
        results = tuner.fit()
    finally:
        analysis_logger.removeFilter(quiet)
    wall_clock_s = time.time() - start
    records = trial_records(results, start)
    levels = rung_levels(1, args.epochs, REDUCTION_FACTOR)
    summary = report_run(label, records, levels, wall_clock_s, args.out / method)
    print(f"Ray results: {results.experiment_path}", flush=True)
    return summary, records


def start_local_ray(workers: int) -> None:
    """A local Ray instance whose workers can import ``examples`` from any working directory."""
    # Workers inherit the driver's environment but not its sys.path.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    # `num_to_keep=1` makes Tune snapshot its (small, local) experiment state after every checkpoint,
    # and warn about it each time; the snapshots are cheap here, the warnings only noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    ray.init(
        num_cpus=max(workers, os.cpu_count() or 1),
        include_dashboard=False,
        logging_level=logging.WARNING,  # the driver's "Started a local Ray instance" and the like
        runtime_env={"worker_process_setup_hook": _quiet_worker_logs},
    )


def main(argv: Sequence[str] | None = None) -> list[RunSummary]:
    parser = build_parser(
        __doc__,
        trials=60,
        timeout=200.0,
        timeout_help="Tune ends the experiment after this many seconds",
        workers_help="trials run at once",
        out=REPO_ROOT / "out" / "demo_ray",
    )
    parser.add_argument(
        "--verbose", type=int, default=0, choices=[0, 1, 2],
        help="0: a status line every 30 s (default); 1, 2: Ray's own progress output (long)",
    )
    args = parser.parse_args(argv)
    print("Search space:\n" + SPACE_DOC)
    start_local_ray(args.workers)
    try:
        return run_methods(args, lambda method: run_experiment(method, args), "Ray Tune")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
