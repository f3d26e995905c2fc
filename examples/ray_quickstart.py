"""MOBSTER in Ray Tune: the quickstart, with a checkpointing function trainable.

    python examples/ray_quickstart.py                  # 30 trials, up to 27 epochs each
    python examples/ray_quickstart.py --num-samples 8 --max-t 9

Two objects replace ``ASHAScheduler`` (or ``TuneBOHB`` + ``HyperBandForBOHB``): the searcher
proposes configurations from a Gaussian process over (configuration, epochs), the scheduler
stops or pauses trials at rungs 1, 3, 9, 27. With ``type="promotion"`` paused trials are resumed
later from their checkpoints, so the trainable reports a checkpoint with every epoch and restores
from it when it starts. ``type="stopping"`` (the default) needs no checkpoints.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile

from ray import tune

from tune_mobster import MobsterScheduler, MobsterSearcher


def train(config: dict) -> None:
    """A function trainable that can be paused and resumed: one checkpoint per reported epoch."""
    state = {"epoch": 0}
    checkpoint = tune.get_checkpoint()  # set when the scheduler resumes a paused trial
    if checkpoint:
        with checkpoint.as_directory() as folder, open(os.path.join(folder, "state.json")) as file:
            state = json.load(file)  # a real trainable restores model and optimizer state here
    for epoch in range(state["epoch"] + 1, config["epochs"] + 1):
        loss = synthetic_loss(config, epoch)  # a real trainable trains one epoch here
        state["epoch"] = epoch
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "state.json"), "w") as file:
                json.dump(state, file)
            tune.report({"loss": loss}, checkpoint=tune.Checkpoint.from_directory(folder))


def synthetic_loss(config: dict, epoch: int) -> float:
    """A learning curve whose limit depends on the configuration (best near lr=3e-3, width=128)."""
    limit = 0.1 * (math.log10(config["lr"]) + 2.5) ** 2 + ((config["width"] - 128) / 256) ** 2
    limit += 0.05 if config["activation"] == "tanh" else 0.0
    return limit + 1.0 / math.sqrt(epoch)


def main(num_samples: int = 30, max_t: int = 27, storage_path: str | None = None) -> tune.ResultGrid:
    tuner = tune.Tuner(
        train,
        param_space={
            "lr": tune.loguniform(1e-4, 1e-1),
            "width": tune.qrandint(16, 256, 16),
            "activation": tune.choice(["relu", "tanh"]),
            "epochs": max_t,
        },
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            num_samples=num_samples,
            search_alg=MobsterSearcher(seed=0),
            scheduler=MobsterScheduler(max_t=max_t, type="promotion"),
        ),
        run_config=tune.RunConfig(storage_path=storage_path, verbose=1),
    )
    results = tuner.fit()
    best = results.get_best_result()
    print(f"best loss {best.metrics['loss']:.4f} after {best.metrics['training_iteration']} epochs: {best.config}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-samples", type=int, default=30)
    parser.add_argument("--max-t", type=int, default=27)
    parser.add_argument("--storage-path", default=None)
    arguments = parser.parse_args()
    main(arguments.num_samples, arguments.max_t, arguments.storage_path)
