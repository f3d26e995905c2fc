"""Suggestion latency and peak memory of MobsterSampler beside Optuna's GPSampler and TPESampler.

Each (sampler, size) runs in a fresh subprocess with one torch/BLAS thread, on a study holding
``size`` observations and 4 RUNNING trials:

* MOBSTER sees rung-level results: trials stopped at rungs 1, 3, 9 of 27 in ASHA's proportions
  (2/3, 2/9, 1/9 ...), each trial contributing one observation per rung it reached;
* GPSampler and TPESampler model final values only, so their study holds ``size`` COMPLETE trials.

Latency is the wall time of ``study.ask()`` plus the suggestions of one trial (where the sampler
does all its work), repeated ``--repeats`` times; peak memory is the process's maximum resident set
size after the measurement, minus the one before the sampler ran. Run::

    python -m benchmarks.latency                       # 100, 300, 1000 observations
    python -m benchmarks.latency --sizes 1000 3000 10000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

SAMPLERS = ("mobster", "gp", "tpe")
PENDING = 4
LEVELS = (1, 3, 9, 27)


def _objective_value(rng: np.random.Generator, params: dict, step: int) -> float:
    return (params["x"] - 0.3) ** 2 + (np.log10(params["lr"]) + 2) ** 2 / 8 + 0.5 * np.exp(-step / 6) + 0.01 * rng.random()


def _build_study(sampler_name: str, size: int, seed: int):
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from optuna_mobster import MobsterPruner, MobsterSampler

    distributions = {
        "x": FloatDistribution(0.0, 1.0),
        "lr": FloatDistribution(1e-4, 1.0, log=True),
        "n": IntDistribution(1, 8),
        "kind": CategoricalDistribution(["a", "b", "c"]),
    }
    sampler = {
        "mobster": lambda: MobsterSampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
    }[sampler_name]()
    study = optuna.create_study(sampler=sampler, pruner=MobsterPruner(max_resource=27))
    rng = np.random.default_rng(seed)
    observations = 0
    while observations < size:
        params = {
            "x": float(rng.random()),
            "lr": float(10 ** rng.uniform(-4, 0)),
            "n": int(rng.integers(1, 9)),
            "kind": str(rng.choice(["a", "b", "c"])),
        }
        if sampler_name == "mobster":
            reached = min(int(rng.geometric(2 / 3)), len(LEVELS), size - observations)
            steps = LEVELS[:reached]
            values = {s: _objective_value(rng, params, s) for s in steps}
            state = TrialState.COMPLETE if steps[-1] == LEVELS[-1] else TrialState.PRUNED
            observations += len(steps)
        else:
            values, state, steps = {}, TrialState.COMPLETE, (LEVELS[-1],)
            observations += 1
        final = _objective_value(rng, params, steps[-1])
        study.add_trial(
            create_trial(
                state=state,
                value=final if state == TrialState.COMPLETE else None,
                params=params,
                distributions=distributions,
                intermediate_values=values,
            )
        )
    for _ in range(PENDING):  # RUNNING trials with parameters and a first report
        trial = study.ask(distributions)
        trial.report(_objective_value(rng, trial.params, 1), 1)
    return study, distributions


def measure(sampler_name: str, size: int, repeats: int, seed: int) -> dict:
    """Latency (seconds) of ``repeats`` suggestions and the peak memory growth (MB)."""
    import torch
    from optuna.trial import TrialState

    torch.set_num_threads(1)
    study, _ = _build_study(sampler_name, size, seed)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    latencies = []
    for _ in range(repeats):
        start = time.perf_counter()
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        trial.suggest_float("lr", 1e-4, 1.0, log=True)
        trial.suggest_int("n", 1, 8)
        trial.suggest_categorical("kind", ["a", "b", "c"])
        latencies.append(time.perf_counter() - start)
        # FAIL keeps the modelled data unchanged for the next repetition.
        study.tell(trial, state=TrialState.FAIL)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "sampler": sampler_name,
        "observations": size,
        "p50_s": float(np.percentile(latencies, 50)),
        "p95_s": float(np.percentile(latencies, 95)),
        "peak_mb": (peak - before) / 1024.0,
        "rss_mb": peak / 1024.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/latency.json")
    parser.add_argument("--worker", nargs=2, metavar=("SAMPLER", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        print(json.dumps(measure(args.worker[0], int(args.worker[1]), args.repeats, args.seed)))
        return 0

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    rows = []
    print(f"{'sampler':>8} {'observations':>12} {'p50 s':>8} {'p95 s':>8} {'peak MB':>8}", flush=True)
    for size in args.sizes:
        for sampler in args.samplers:
            command = [sys.executable, "-m", "benchmarks.latency", "--worker", sampler, str(size), "--repeats", str(args.repeats), "--seed", str(args.seed)]
            output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
            row = json.loads(output.strip().splitlines()[-1])
            rows.append(row)
            print(f"{sampler:>8} {size:>12} {row['p50_s']:>8.3f} {row['p95_s']:>8.3f} {row['peak_mb']:>8.1f}", flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(rows, handle, indent=1)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
