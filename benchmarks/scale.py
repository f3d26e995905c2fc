"""How the library's decisions scale: the core's CPU cost, Ray Tune's event loop, Optuna processes.

    python -m benchmarks.scale                         # all three parts, default sizes
    python -m benchmarks.scale --part core             # fits and suggestions, 500 to 10,000 observations
    python -m benchmarks.scale --part core --device cuda
    python -m benchmarks.scale --part ray --concurrency 32 128 --trials 300
    python -m benchmarks.scale --part optuna --processes 1 4 8 --trials 2000 --storage sqlite postgresql
    python -m benchmarks.scale --part optuna --processes 1 8 --trials 400 --busy 7   # with a control row
    python -m benchmarks.scale --part optuna --optuna-repeats 1                      # one run of each kind

**core**: one fresh process per size, one torch thread, process CPU seconds (``--device cuda``:
wall seconds, the GPU's work is not CPU time). The history is ASHA-shaped: trials of a synthetic
4-parameter problem (two floats, an integer, a categorical) stopped at rungs 1, 3, 9 of 27 in
ASHA's proportions, ``pending`` more of them running. Per size: a hyperparameter fit from
defaults (cold), one warm-started from the previous fit (every 10% of new data), a suggestion
without a refit (the model's acquisition and its optimisation), the rescue's prediction (the
last model's posterior mean at the full resource for every trial, one trial's new result added),
and the process's peak resident memory.

**ray**: real Ray Tune on a local 2-CPU cluster. ``--trials`` trials of a synthetic 3-parameter
problem whose epochs sleep ``--epoch-seconds`` (a fraction of a CPU each, so ``--concurrency``
of them fit), up to 27 epochs. Methods: ours (``MobsterSearcher`` + ``MobsterScheduler``, its
defaults: suggestions computed in a driver thread), ours in the reproducible mode
(``background=False``: every suggestion computed inside ``suggest``), ``ASHAScheduler`` with
random search, and ``TuneBOHB`` + ``HyperBandForBOHB``. Per run: wall time, trials started,
epochs trained, the best value reached at the full resource, the time spent inside each of the
tuner's callbacks (Ray calls them from its event loop: while one runs, nothing else happens),
the longest call, p99 and total and its share of the wall time, Ray's "may be a performance
bottleneck" warnings (those naming a tuner's callback / all of them: the others time Ray's own
work, such as writing results), and (ours in the background) how many suggestions were random
because the model's next one was not ready.

**optuna**: ``--processes`` processes run one study together on one storage (SQLite, or a
throw-away PostgreSQL server when its binaries are installed), ``MobsterSampler`` +
``MobsterPruner``, ``--trials`` trials in all of a cheap synthetic objective. Per process: the
latency of ``study.ask()`` plus the trial's suggestions (p50 / p99) and the CPU seconds spent in
the sampler; per run: sampler CPU per trial, and its ratio to one process's. ``--busy N`` adds a
control row per storage: one sampler process beside ``N`` processes that only keep the CPUs busy
with the GP's kind of work (Cholesky factorisations and triangular solves of a 500-point kernel
matrix). Processes that outnumber the cores slow each other's CPU seconds (caches, switches);
the control measures that part alone, so the ratio of N + 1 sampler processes to it is what
sharing a study costs beyond sharing the CPUs. Every run starts on an empty storage of its own (a
new SQLite file or PostgreSQL database) and runs ``--optuna-repeats`` times (default 3) with
other seeds: a run's cost per trial follows its trajectory (how many trials its seeds take to
deep rungs), and single runs differ by 10% or more. The summary gives the ratio of the means and
the range of the repeats' own ratios.

Figures print as tables; ``--out`` (default ``benchmarks/results/scale``) receives one JSON per
part and a PNG per part beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OUT = Path("benchmarks/results/scale")
LEVELS = (1, 3, 9, 27)
MAX_T = 27
PARTS = ("core", "ray", "optuna")
RAY_METHODS = ("mobster", "mobster-blocking", "asha", "bohb")
#: Callbacks Ray's event loop makes into a searcher and a scheduler.
SEARCHER_CALLBACKS = ("suggest", "on_trial_result", "on_trial_complete")
SCHEDULER_CALLBACKS = ("on_trial_add", "on_trial_result", "on_trial_complete", "choose_trial_to_run")


# ----- a synthetic problem ------------------------------------------------------------------


def curve_value(params: dict[str, Any], epoch: int, noise: float) -> float:
    """A learning curve whose final value depends on all four parameters (lower is better)."""
    x, lr = params["x"], params["lr"]
    final = (x - 0.3) ** 2 + (math.log10(lr) + 2) ** 2 / 8 + 0.02 * params.get("n", 4) + {"a": 0.0, "b": 0.05, "c": 0.1}[params.get("kind", "a")]
    return final + 0.5 * math.exp(-epoch * (0.05 + x) / 3) + noise


def _random_params(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "x": float(rng.random()),
        "lr": float(10 ** rng.uniform(-4, 0)),
        "n": int(rng.integers(1, 9)),
        "kind": str(rng.choice(["a", "b", "c"])),
    }


def core_history(observations: int, pending: int, seed: int = 0) -> list:
    """Trials stopped at rungs 1, 3, 9 of 27 in ASHA's proportions, then ``pending`` running ones."""
    from mobster.history import TrialRecord

    rng = np.random.default_rng(seed)
    records, count = [], 0
    while count < observations:
        params = _random_params(rng)
        reached = min(int(rng.geometric(2 / 3)), len(LEVELS), observations - count)
        results = {r: curve_value(params, r, 0.01 * rng.random()) for r in LEVELS[:reached]}
        records.append(TrialRecord(params, results, name=str(len(records))))
        count += reached
    for _ in range(pending):
        params = _random_params(rng)
        records.append(TrialRecord(params, {1: curve_value(params, 1, 0.0)}, pending_at=3, name=str(len(records))))
    return records


# ----- core -----------------------------------------------------------------------------------


def _core_space():
    from mobster.space import Categorical, Float, Integer, SearchSpace

    return SearchSpace(
        {"x": Float(0.0, 1.0), "lr": Float(1e-4, 1.0, log=True), "n": Integer(1, 8), "kind": Categorical(("a", "b", "c"))}
    )


def measure_core(observations: int, pending: int, device: str, repeats: int) -> dict[str, Any]:
    """One size, in this process (the caller starts a fresh process per size)."""
    import torch

    from mobster.data import collect_observations
    from mobster.history import TrialRecord
    from mobster.searcher import ModelBasedSearcher

    torch.set_num_threads(1)
    on_gpu = device != "cpu"

    def clock() -> float:
        if on_gpu:
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()

    def searcher() -> ModelBasedSearcher:
        return ModelBasedSearcher(
            _core_space(), max_resource=MAX_T, levels=LEVELS, reduction_factor=3, seed=0, random_fraction=0.0, device=device
        )

    # Warm-up on a small history: imports and first-call costs are not the fit's.
    searcher().suggest(core_history(60, 4, seed=1))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    records = core_history(observations, pending)
    trials = [r for r in records if r.pending_at is None]
    # The rescue decides on a result the model has not seen: the latest trial with two rung
    # results is fitted without its second, which the decision then adds.
    fresh = max(i for i, t in enumerate(trials) if len(t.results) >= 2)
    hidden = trials[fresh]
    seen = TrialRecord(hidden.config, dict(list(hidden.results.items())[:1]), name=hidden.name)
    records = [seen if r is hidden else r for r in records]
    core = searcher()
    found, _ = collect_observations(records, list(LEVELS), 1.0)
    units = [core.space.to_unit(r.config) for r in records]
    start = clock()
    core._fit_observations(records, found, units)  # from default hyperparameters
    cold = clock() - start
    core._fitted_size = 1  # the next call refits, warm-started
    start = clock()
    core._fit_observations(records, found, units)
    warm = clock() - start
    suggest_times, rescue_times = [], []
    for _ in range(repeats):
        start = clock()
        core.suggest(records)  # the data did not grow: no refit
        suggest_times.append(clock() - start)
        start = clock()
        means = core.final_means(trials, fresh=[fresh])
        rescue_times.append(clock() - start)
        assert means is not None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "observations": observations,
        "pending": pending,
        "device": device,
        "clock": "wall" if on_gpu else "cpu",
        "fit_cold_s": cold,
        "fit_warm_s": warm,
        "suggest_s": float(np.median(suggest_times)),
        "rescue_s": float(np.median(rescue_times)),
        "peak_rss_mb": peak / 1024.0,
        "growth_mb": (peak - before) / 1024.0,
    }


def run_core(sizes: Sequence[int], pendings: Sequence[int], device: str, repeats: int) -> list[dict[str, Any]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    rows = []
    print(f"{'obs':>6} {'pending':>7} {'fit cold s':>10} {'fit warm s':>10} {'suggest s':>9} {'rescue s':>8} {'peak MB':>8}  ({device})", flush=True)
    for size in sizes:
        for pending in pendings:
            command = [sys.executable, "-m", "benchmarks.scale", "--core-worker", str(size), str(pending), "--device", device, "--repeats", str(repeats)]
            output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
            row = json.loads(output.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{size:>6} {pending:>7} {row['fit_cold_s']:>10.3f} {row['fit_warm_s']:>10.3f} "
                f"{row['suggest_s']:>9.3f} {row['rescue_s']:>8.4f} {row['peak_rss_mb']:>8.0f}",
                flush=True,
            )
    return rows


# ----- Ray Tune -------------------------------------------------------------------------------


class CallTimer:
    """Wall time of every call to chosen methods of an object, wrapped on the instance."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = {}

    def wrap(self, owner: Any, label: str, names: Sequence[str]) -> None:
        for name in names:
            method = getattr(owner, name)
            durations = self.calls.setdefault(f"{label}.{name}", [])

            def timed(*args: Any, _method: Callable = method, _durations: list = durations, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return _method(*args, **kwargs)
                finally:
                    _durations.append(time.perf_counter() - start)

            setattr(owner, name, timed)

    def summary(self, wall: float) -> dict[str, Any]:
        every = [d for durations in self.calls.values() for d in durations]
        p99 = float(np.percentile(every, 99)) if every else 0.0
        per_callback = {
            name: {
                "calls": len(d),
                "total_s": float(np.sum(d)),
                "max_s": float(np.max(d)),
                "p99_s": float(np.percentile(d, 99)),
                "calls_over_p99": int(np.sum(np.array(d) > p99)),  # which callbacks make the tail
            }
            for name, d in self.calls.items()
            if d
        }
        return {
            "calls": len(every),
            "total_s": float(np.sum(every)) if every else 0.0,
            "share": float(np.sum(every)) / wall if every else 0.0,
            "max_s": float(np.max(every)) if every else 0.0,
            "p99_s": p99,
            "per_callback": per_callback,
        }


class _WarningCounter(logging.Handler):
    """Ray's "may be a performance bottleneck" warnings: all of them, and those that name a
    tuner's callback (``scheduler.*``, ``search_alg.*``, ``choose_trial_to_run``); the others
    time Ray's own work, such as its result loggers (``callbacks.on_trial_result``)."""

    TUNER = ("`scheduler.", "`search_alg.", "`choose_trial_to_run`")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.tuner = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "performance bottleneck" in message:
            self.count += 1
            self.tuner += any(name in message for name in self.TUNER)


def sleepy_trainable(config: dict[str, Any]) -> None:
    """Epochs that sleep; the value follows :func:`curve_value` (3 parameters, n and kind fixed)."""
    from ray import tune as ray_tune

    rng = np.random.default_rng(abs(hash((config["x"], config["lr"], config["n"]))) % 2**32)
    for epoch in range(1, MAX_T + 1):
        time.sleep(config["epoch_seconds"])
        ray_tune.report({"loss": curve_value(config, epoch, 0.005 * rng.random())})


def _ray_tuners(method: str, seed: int) -> tuple[Any, Any]:
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    from tune_mobster import MobsterScheduler, MobsterSearcher

    if method in ("mobster", "mobster-blocking"):
        return MobsterSearcher(seed=seed, background=method == "mobster"), MobsterScheduler(max_t=MAX_T, seed=seed)
    if method == "asha":
        return BasicVariantGenerator(random_state=seed), ASHAScheduler(max_t=MAX_T, grace_period=1, reduction_factor=3)
    if method == "bohb":
        from ray.tune.schedulers import HyperBandForBOHB
        from ray.tune.search.bohb import TuneBOHB

        return TuneBOHB(seed=seed), HyperBandForBOHB(time_attr="training_iteration", max_t=MAX_T, reduction_factor=3)
    raise ValueError(f"unknown method {method!r}; choose from {RAY_METHODS}")


def run_ray_one(method: str, concurrency: int, trials: int, epoch_seconds: float, seed: int) -> dict[str, Any]:
    """One experiment on the running local Ray cluster."""
    from ray import tune

    np.random.seed(seed)  # ASHA and HyperBand draw brackets from numpy's global generator
    searcher, scheduler = _ray_tuners(method, seed)
    timer = CallTimer()
    timer.wrap(searcher, "searcher", [n for n in SEARCHER_CALLBACKS if hasattr(searcher, n)])
    timer.wrap(scheduler, "scheduler", SCHEDULER_CALLBACKS)
    counter = _WarningCounter()
    logging.getLogger("ray.tune").addHandler(counter)
    space = {
        "x": tune.uniform(0.0, 1.0),
        "lr": tune.loguniform(1e-4, 1.0),
        "n": tune.randint(1, 9),
        "epoch_seconds": epoch_seconds,
    }
    trainable = tune.with_resources(sleepy_trainable, {"cpu": 2.0 / concurrency})
    storage = tempfile.mkdtemp(prefix="mobster-scale-")
    started = time.perf_counter()
    try:
        results = tune.Tuner(
            trainable,
            param_space=space,
            tune_config=tune.TuneConfig(
                metric="loss",
                mode="min",
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=trials,
                max_concurrent_trials=concurrency,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(storage_path=storage, verbose=0, stop={"training_iteration": MAX_T}),
        ).fit()
    finally:
        wall = time.perf_counter() - started
        logging.getLogger("ray.tune").removeHandler(counter)
        shutil.rmtree(storage, ignore_errors=True)
    frame = results.get_dataframe()
    iterations = frame["training_iteration"].fillna(0)
    finished = frame[iterations >= MAX_T]
    return {
        "method": method,
        "concurrency": concurrency,
        "trials": int(len(frame)),
        "epochs": int(iterations.sum()),
        "wall_s": wall,
        "best": float(finished["loss"].min()) if len(finished) else math.inf,
        "bottleneck_warnings": counter.count,
        "tuner_bottleneck_warnings": counter.tuner,
        "random_fallbacks": getattr(searcher, "random_fallbacks", 0),
        "callbacks": timer.summary(wall),
    }


def run_ray(
    methods: Sequence[str], concurrencies: Sequence[int], trials: int, epoch_seconds: float, seed: int, out: Path
) -> list[dict[str, Any]]:
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # WARNING, not less: Ray's "may be a performance bottleneck" lines are warnings, counted here.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    rows = []
    print(
        f"{'method':>17} {'conc':>5} {'wall s':>7} {'trials':>6} {'epochs':>6} {'best':>8} "
        f"{'tuner max s':>11} {'p99 ms':>7} {'total s':>7} {'share':>6} {'warn':>7} {'fallbacks':>9}",
        flush=True,
    )
    try:
        for concurrency in concurrencies:
            for method in methods:
                row = run_ray_one(method, concurrency, trials, epoch_seconds, seed)
                rows.append(row)
                (out / "ray.json").write_text(json.dumps(rows, indent=1))  # a long part: keep what is done
                c = row["callbacks"]
                print(
                    f"{method:>17} {concurrency:>5} {row['wall_s']:>7.1f} {row['trials']:>6} {row['epochs']:>6} "
                    f"{row['best']:>8.4f} {c['max_s']:>11.3f} {1000 * c['p99_s']:>7.1f} {c['total_s']:>7.1f} "
                    f"{100 * c['share']:>5.1f}% {row['tuner_bottleneck_warnings']:>3}/{row['bottleneck_warnings']:<3} {row['random_fallbacks']:>9}",
                    flush=True,
                )
    finally:
        ray.shutdown()
    return rows


# ----- Optuna ---------------------------------------------------------------------------------


def optuna_objective(trial: Any) -> float:
    params = {
        "x": trial.suggest_float("x", 0.0, 1.0),
        "lr": trial.suggest_float("lr", 1e-4, 1.0, log=True),
        "n": trial.suggest_int("n", 1, 8),
        "kind": trial.suggest_categorical("kind", ["a", "b", "c"]),
    }
    value = math.inf
    for epoch in range(1, MAX_T + 1):
        value = curve_value(params, epoch, 0.0)
        trial.report(value, epoch)
        if trial.should_prune():
            import optuna

            raise optuna.TrialPruned()
    return value


def measure_optuna_process(storage: str, study_name: str, trials: int, seed: int) -> dict[str, Any]:
    """One process's share of the study: ``trials`` trials, timing the sampler."""
    import optuna
    import torch

    from optuna_mobster import MobsterPruner, MobsterSampler

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = MobsterSampler(seed=seed)
    cpu = {"sampler": 0.0}
    original = sampler.sample_relative

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            cpu["sampler"] += time.process_time() - start

    sampler.sample_relative = timed  # type: ignore[method-assign]
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=MobsterPruner(max_resource=MAX_T))
    latencies = []
    for _ in range(trials):
        start = time.perf_counter()
        trial = study.ask()
        latencies.append(time.perf_counter() - start)
        try:
            value = optuna_objective(_TimedTrial(trial, latencies))
            study.tell(trial, value)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return {
        "trials": trials,
        "ask_p50_s": float(np.percentile(latencies, 50)),
        "ask_p99_s": float(np.percentile(latencies, 99)),
        "sampler_cpu_s": cpu["sampler"],
    }


class _TimedTrial:
    """A trial whose first suggestions (where the sampler works) add to the last ask's latency."""

    def __init__(self, trial: Any, latencies: list[float]) -> None:
        self._trial, self._latencies, self._suggesting = trial, latencies, True

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._trial, name)
        if not name.startswith("suggest_") or not self._suggesting:
            if name == "report":
                self._suggesting = False
            return attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                self._latencies[-1] += time.perf_counter() - start

        return timed


def _postgres_url(folder: Path) -> tuple[str, Callable[[], None]] | None:
    """A throw-away PostgreSQL server in ``folder``: its URL and a function that stops it."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not binaries:
        return None
    bin_dir = binaries[-1]
    data, port = folder / "pg", 55432 + os.getpid() % 1000
    user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if user:
        shutil.chown(folder, "postgres")
    subprocess.run([*user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"], check=True, capture_output=True)
    # The server's output goes to a log file: with a pipe, the server would hold pg_ctl's pipe
    # open and waiting for pg_ctl's output would never end.
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c max_connections=200 -c fsync=off"
    subprocess.run(
        [*user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-o", options, "-w", "start"],
        check=True,
        capture_output=True,
        timeout=120,
    )

    def stop() -> None:
        subprocess.run([*user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)

    return f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres", stop


def busy_worker(seconds: float) -> None:
    """Keep one CPU busy with the GP's kind of work for ``seconds`` (or until killed)."""
    rng = np.random.default_rng(0)
    points = rng.random((500, 4))
    gram = np.exp(-((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)) + 1e-3 * np.eye(500)
    columns = rng.random((500, 700))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        factor = np.linalg.cholesky(gram)
        np.linalg.solve(factor, columns)


def _run_optuna_workers(url: str, name: str, count: int, share: int, seed: int, busy: int, env: dict) -> list[dict[str, Any]]:
    """``count`` sampler processes on one new study (``busy`` CPU-bound processes beside them)."""
    import optuna

    optuna.create_study(study_name=name, storage=url, direction="minimize")
    burners = [
        subprocess.Popen([sys.executable, "-m", "benchmarks.scale", "--busy-worker"], env=env) for _ in range(busy)
    ]
    try:
        commands = [
            [sys.executable, "-m", "benchmarks.scale", "--optuna-worker", url, name, str(share), "--seed", str(seed + k)]
            for k in range(count)
        ]
        workers = [subprocess.Popen(c, stdout=subprocess.PIPE, text=True, env=env) for c in commands]
        return [json.loads(w.communicate()[0].strip().splitlines()[-1]) for w in workers]
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def run_optuna(
    processes: Sequence[int], storages: Sequence[str], trials: int, seed: int, busy: int = 0, repeats: int = 1
) -> list[dict[str, Any]]:
    """Every run (process count, and the control with ``busy`` beside one) ``repeats`` times per
    storage, each on an empty storage of its own and with its own seeds; one row per run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    rows = []
    print(f"{'storage':>10} {'procs':>8} {'repeat':>6} {'trials':>6} {'ask p50 s':>9} {'ask p99 s':>9} {'sampler CPU/trial s':>19} {'vs 1 proc':>9}", flush=True)
    for kind in storages:
        folder = Path(tempfile.mkdtemp(prefix="mobster-scale-optuna-"))
        stop: Callable[[], None] = lambda: None  # noqa: E731
        try:
            server = None
            if kind == "postgresql":
                server = _postgres_url(folder)
                if server is None:
                    print("postgresql: no server binaries installed (apt-get install postgresql); skipped", flush=True)
                    continue
                stop = server[1]
            for repeat in range(repeats):
                single = None
                runs = [(count, 0) for count in processes] + ([(1, busy)] if busy else [])
                for count, beside in runs:
                    share = math.ceil(trials / count)
                    # An empty storage per run: every run starts from the same state, whatever ran before.
                    name = f"scale_{count}_{beside}_{repeat}"
                    url = _empty_storage(server[0], name) if server else f"sqlite:///{folder / name}.db"
                    outputs = _run_optuna_workers(url, name, count, share, seed + 1000 * repeat, beside, env)
                    cpu_per_trial = sum(o["sampler_cpu_s"] for o in outputs) / (share * count)
                    single = cpu_per_trial if count == 1 and not beside else single
                    row = {
                        "storage": kind,
                        "processes": count,
                        "busy_beside": beside,
                        "repeat": repeat,
                        "trials": share * count,
                        "ask_p50_s": float(np.median([o["ask_p50_s"] for o in outputs])),
                        "ask_p99_s": float(np.max([o["ask_p99_s"] for o in outputs])),
                        "sampler_cpu_per_trial_s": cpu_per_trial,
                        "ratio_to_one_process": cpu_per_trial / single if single else math.nan,
                        "per_process": outputs,
                    }
                    rows.append(row)
                    print(
                        f"{kind:>10} {_run_label(row):>8} {repeat:>6} {row['trials']:>6} {row['ask_p50_s']:>9.3f} "
                        f"{row['ask_p99_s']:>9.3f} {cpu_per_trial:>19.3f} {row['ratio_to_one_process']:>8.2f}x",
                        flush=True,
                    )
        finally:
            stop()
            shutil.rmtree(folder, ignore_errors=True)
    if repeats > 1:
        print_optuna_summary(rows)
    return rows


def _run_label(row: dict[str, Any]) -> str:
    return f"1+{row['busy_beside']} busy" if row["busy_beside"] else str(row["processes"])


def optuna_summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per storage and run kind: the mean sampler CPU per trial over the repeats, its ratio to
    the mean of one process, and the range of the repeats' own ratios."""
    summary = []
    for kind in dict.fromkeys(r["storage"] for r in rows):
        mine = [r for r in rows if r["storage"] == kind]
        single = [r["sampler_cpu_per_trial_s"] for r in mine if r["processes"] == 1 and not r["busy_beside"]]
        for label in dict.fromkeys(_run_label(r) for r in mine):
            chosen = [r for r in mine if _run_label(r) == label]
            mean = float(np.mean([r["sampler_cpu_per_trial_s"] for r in chosen]))
            ratios = [r["ratio_to_one_process"] for r in chosen]
            summary.append(
                {
                    "storage": kind,
                    "run": label,
                    "repeats": len(chosen),
                    "sampler_cpu_per_trial_s": mean,
                    "ratio_of_means": mean / float(np.mean(single)) if single else math.nan,
                    "ratio_min": float(np.min(ratios)),
                    "ratio_max": float(np.max(ratios)),
                }
            )
    return summary


def print_optuna_summary(rows: Sequence[dict[str, Any]]) -> None:
    print(f"{'storage':>10} {'procs':>8} {'repeats':>7} {'mean CPU/trial s':>16} {'vs 1 proc':>9} {'repeats range':>15}", flush=True)
    for s in optuna_summary(rows):
        print(
            f"{s['storage']:>10} {s['run']:>8} {s['repeats']:>7} {s['sampler_cpu_per_trial_s']:>16.3f} "
            f"{s['ratio_of_means']:>8.2f}x {s['ratio_min']:>6.2f}x-{s['ratio_max']:.2f}x",
            flush=True,
        )


def _empty_storage(server_url: str, name: str) -> str:
    """A new, empty database ``name`` on the PostgreSQL server; its URL."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    finally:
        engine.dispose()
    return f"{server_url.rsplit('/', 1)[0]}/{name}"


# ----- figures and the command line ------------------------------------------------------------


def plot(part: str, rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if part == "core":
        for pending in sorted({r["pending"] for r in rows}):
            chosen = [r for r in rows if r["pending"] == pending]
            sizes = [r["observations"] for r in chosen]
            ax.plot(sizes, [r["suggest_s"] for r in chosen], "o-", label=f"suggestion, {pending} pending")
        first = [r for r in rows if r["pending"] == min(r["pending"] for r in rows)]
        ax.plot([r["observations"] for r in first], [r["fit_cold_s"] for r in first], "s--", label="fit from defaults")
        ax.plot([r["observations"] for r in first], [r["fit_warm_s"] for r in first], "s:", label="fit, warm-started")
        ax.set_xscale("log")
        ax.set_xlabel("observations in the history")
        ax.set_ylabel(f"{rows[0]['clock']} seconds ({rows[0]['device']})")
        ax.set_title("Core decision cost")
    elif part == "ray":
        labels = [f"{r['method']}\n{r['concurrency']} conc." for r in rows]
        ax.bar(range(len(rows)), [100 * r["callbacks"]["share"] for r in rows], color="tab:blue")
        ax.set_xticks(range(len(rows)), labels, fontsize=7)
        ax.set_ylabel("% of wall time inside the tuner's callbacks")
        ax.set_title("Ray Tune: time the event loop spends in the tuner")
    else:
        for kind in sorted({r["storage"] for r in rows}):
            # The mean over the repeats, and each repeat as a faint point.
            counts = sorted({r["processes"] for r in rows if r["storage"] == kind and not r.get("busy_beside")})
            runs = [[r for r in rows if r["storage"] == kind and r["processes"] == c and not r.get("busy_beside")] for c in counts]
            line = ax.plot(counts, [np.mean([r["sampler_cpu_per_trial_s"] for r in run]) for run in runs], "o-", label=kind)
            for count, run in zip(counts, runs):
                ax.plot([count] * len(run), [r["sampler_cpu_per_trial_s"] for r in run], ".", alpha=0.4, color=line[0].get_color())
            controls = [r for r in rows if r["storage"] == kind and r.get("busy_beside")]
            if controls:
                ax.plot(
                    [1 + controls[0]["busy_beside"]], [np.mean([r["sampler_cpu_per_trial_s"] for r in controls])], "x", ms=9,
                    color=line[0].get_color(), label=f"{kind}: one process beside {controls[0]['busy_beside']} busy ones",
                )
        ax.set_xlabel("processes sharing the study")
        ax.set_ylabel("sampler CPU seconds per trial")
        ax.set_title("Optuna: cost of many processes on one study")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 10000])
    parser.add_argument("--pending", type=int, nargs="+", default=[4, 64, 256])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", choices=RAY_METHODS, default=list(RAY_METHODS))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--trials", type=int, default=None, help="Ray: 300; Optuna: 2000")
    parser.add_argument("--epoch-seconds", type=float, default=1.0)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--storage", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    parser.add_argument("--busy", type=int, default=0, help="Optuna: a control row, one process beside this many busy ones")
    parser.add_argument("--optuna-repeats", type=int, default=3, help="Optuna: runs of each kind, each with its own seeds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--core-worker", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--optuna-worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--busy-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.busy_worker:
        busy_worker(seconds=24 * 3600.0)  # the run kills it when its sampler process is done
        return 0
    if args.core_worker:
        print(json.dumps(measure_core(*args.core_worker, device=args.device, repeats=args.repeats)))
        return 0
    if args.optuna_worker:
        url, name, share = args.optuna_worker
        print(json.dumps(measure_optuna_process(url, name, int(share), args.seed)))
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    for part in args.part:
        print(f"== {part}", flush=True)
        if part == "core":
            rows = run_core(args.sizes, args.pending, args.device, args.repeats)
            name = f"core-{args.device}"
        elif part == "ray":
            rows = run_ray(args.methods, args.concurrency, args.trials or 300, args.epoch_seconds, args.seed, args.out)
            name = "ray"
        else:
            rows = run_optuna(args.processes, args.storage, args.trials or 2000, args.seed, args.busy, args.optuna_repeats)
            name = "optuna"
        if not rows:
            continue
        (args.out / f"{name}.json").write_text(json.dumps(rows, indent=1))
        plot(part, rows, args.out / f"{name}.png")
        print(f"written {args.out / name}.json and .png", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
