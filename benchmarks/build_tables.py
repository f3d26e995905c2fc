"""Rebuild the learning-curve tables by really training models.

    python -m benchmarks.build_tables [--only NAME] [--n-configs N] [--out DIR] [--summary]

Each table trains every configuration of a full factorial grid (``--n-configs`` trains a random
subset instead, for smoke tests), one configuration after another, on data shipped inside
scikit-learn (no downloads), with a fixed train/validation split and fixed seeds, and records the
validation error after every resource unit. A full grid matters: a tuner's suggestion snaps to
the nearest grid value of each parameter, and that combination always exists, so a move of one
parameter to a neighbouring grid value is a different configuration. (An earlier version stored
600 random combinations of much larger grids; a snapped suggestion was then almost never in the
table, and its nearest stored row was the same one for most one-parameter moves, which punished
every tuner that searches locally.) Training runs on one thread
(BLAS, OpenMP and torch pinned to 1) and its cost is measured as CPU seconds of this process:
on one dedicated core these equal wall-clock seconds, but unlike wall-clock they do not inflate
when other jobs share the machine. The cost of a unit includes the validation pass after it, as
in a real trial that reports every epoch. All tables take about 45 minutes on one core.
"""

from __future__ import annotations

import argparse
import functools
import math
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch
from scipy.stats import spearmanr
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from benchmarks.tables import DATA_DIR, Parameter, Table, halving_results, list_tables, load_table, save_table

SEED = 0
#: Errors above this (diverged runs, NaN losses) are stored as this, so curves stay finite.
REGRESSION_ERROR_CAP = 2.0

#: Trains one configuration for ``max_resource`` units; returns the validation error after each.
Trainer = Callable[[dict[str, Any], int], np.ndarray]


@dataclass(frozen=True)
class Spec:
    """How to build one table."""

    name: str
    description: str
    dataset: str
    metric: str
    resource_unit: str
    max_resource: int
    parameters: list[Parameter]
    train: Trainer
    #: Settings every configuration shares (the trainer's other inputs), recorded in the metadata.
    fixed: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Data: fixed stratified splits of datasets that ship inside scikit-learn.


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x / 16.0, y, test_size=0.4, random_state=SEED, stratify=y)
    return x_tr, x_va, y_tr, y_va


@functools.cache
def _breast_cancer() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.4, random_state=SEED, stratify=y)
    return x_tr, x_va, y_tr, y_va


@functools.cache
def _diabetes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y = load_diabetes(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.3, random_state=SEED)
    # Standardise inputs and target with training statistics only.
    mu, sd = x_tr.mean(0), x_tr.std(0)
    y_mu, y_sd = y_tr.mean(), y_tr.std()
    arrays = ((x_tr - mu) / sd, (x_va - mu) / sd, (y_tr - y_mu) / y_sd, (y_va - y_mu) / y_sd)
    x_tr, x_va, y_tr, y_va = (torch.tensor(a, dtype=torch.float32) for a in arrays)
    return x_tr, x_va, y_tr, y_va


# ---------------------------------------------------------------------------------------------
# Trainers.


def _train_mlp_digits(cfg: dict[str, Any], max_resource: int) -> np.ndarray:
    """scikit-learn MLP, one ``partial_fit`` pass (epoch) per unit; error = 1 - accuracy."""
    x_tr, x_va, y_tr, y_va = _digits()
    model = MLPClassifier(
        hidden_layer_sizes=(cfg["width"],) * cfg["n_layers"],
        activation=cfg["activation"],
        solver=cfg["solver"],
        learning_rate_init=cfg["learning_rate_init"],
        alpha=cfg["alpha"],
        batch_size=cfg["batch_size"],
        random_state=SEED,
    )
    classes = np.unique(y_tr)
    errors = np.empty(max_resource)
    for r in range(max_resource):
        model.partial_fit(x_tr, y_tr, classes=classes)
        errors[r] = np.mean(model.predict(x_va) != y_va)
    return errors


def _train_hgb_breast_cancer(cfg: dict[str, Any], max_resource: int) -> np.ndarray:
    """Histogram gradient boosting, one boosting iteration per unit; error = validation log loss."""
    x_tr, x_va, y_tr, y_va = _breast_cancer()
    model = HistGradientBoostingClassifier(
        max_iter=max_resource,
        learning_rate=cfg["learning_rate"],
        max_leaf_nodes=cfg["max_leaf_nodes"],
        min_samples_leaf=cfg["min_samples_leaf"],
        l2_regularization=cfg["l2_regularization"],
        max_features=cfg["max_features"],
        max_bins=cfg["max_bins"],
        interaction_cst=None if cfg["interaction_cst"] == "none" else cfg["interaction_cst"],
        early_stopping=False,
        random_state=SEED,
    )
    model.fit(x_tr, y_tr)
    # Staged predictions are the model after each iteration: the same curve as refitting with
    # warm_start one iteration at a time, without paying a fit call per unit.
    errors = np.empty(max_resource)
    for r, proba in enumerate(model.staged_predict_proba(x_va)):
        p_true = np.clip(proba[np.arange(len(y_va)), y_va], 1e-15, 1.0)
        errors[r] = -np.mean(np.log(p_true))
    return errors


def _train_torch_mlp_diabetes(cfg: dict[str, Any], max_resource: int) -> np.ndarray:
    """PyTorch MLP regressor, one epoch per unit; error = validation MSE / variance (1 - R^2)."""
    x_tr, x_va, y_tr, y_va = _diabetes()
    torch.manual_seed(SEED)
    layers: list[torch.nn.Module] = []
    width_in = x_tr.shape[1]
    for _ in range(cfg["n_layers"]):
        layers += [torch.nn.Linear(width_in, cfg["width"]), torch.nn.ReLU(), torch.nn.Dropout(cfg["dropout"])]
        width_in = cfg["width"]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(width_in, 1))
    lr, wd = cfg["learning_rate"], cfg["weight_decay"]
    optimiser = {
        "adam": lambda: torch.optim.Adam(net.parameters(), lr=lr, weight_decay=wd),
        "sgd": lambda: torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=wd),
        "rmsprop": lambda: torch.optim.RMSprop(net.parameters(), lr=lr, weight_decay=wd),
    }[cfg["optimizer"]]()
    shuffle = torch.Generator().manual_seed(SEED)
    va_var = float(y_va.var(unbiased=False))
    errors = np.empty(max_resource)
    for r in range(max_resource):
        net.train()
        for idx in torch.randperm(len(x_tr), generator=shuffle).split(cfg["batch_size"]):
            optimiser.zero_grad()
            loss = torch.nn.functional.mse_loss(net(x_tr[idx]).squeeze(1), y_tr[idx])
            loss.backward()
            optimiser.step()
        net.eval()
        with torch.no_grad():
            mse = float(torch.nn.functional.mse_loss(net(x_va).squeeze(1), y_va))
        errors[r] = mse / va_var
    # NaN fails every comparison, so nan_to_num maps diverged runs to the cap too.
    return np.minimum(np.nan_to_num(errors, nan=REGRESSION_ERROR_CAP), REGRESSION_ERROR_CAP)


def _train_kernel_sgd_digits(cfg: dict[str, Any], max_resource: int) -> np.ndarray:
    """Nystroem RBF features + linear SGD, one ``partial_fit`` pass per unit; error = 1 - accuracy.

    The feature map is fitted once per configuration; its cost is spread over the units.
    """
    x_tr, x_va, y_tr, y_va = _digits()
    features = Nystroem(gamma=cfg["gamma"], n_components=cfg["n_components"], random_state=SEED).fit(x_tr)
    f_tr, f_va = features.transform(x_tr), features.transform(x_va)
    model = SGDClassifier(
        loss=cfg["loss"],
        alpha=cfg["alpha"],
        learning_rate=cfg["learning_rate"],
        eta0=cfg["eta0"],
        average=cfg["average"],
        random_state=SEED,
    )
    classes = np.unique(y_tr)
    errors = np.empty(max_resource)
    for r in range(max_resource):
        model.partial_fit(f_tr, y_tr, classes=classes)
        errors[r] = np.mean(model.predict(f_va) != y_va)
    return errors


# ---------------------------------------------------------------------------------------------
# Table specifications. Full factorial grids of 756 to 1,701 configurations: log-spaced floats
# get 7 values where the response is smooth (learning rates, kernel width), the others 2 to 4.
# Cost varies between configurations (width, batch size, leaves, features) and early errors rank
# configurations imperfectly.

SPECS: list[Spec] = [
    Spec(
        name="mlp_digits",
        description="scikit-learn MLPClassifier (one hidden layer) trained epoch by epoch (partial_fit) on digits",
        dataset="sklearn load_digits, pixels / 16, stratified 60/40 train/validation split, seed 0",
        metric="validation error rate (1 - accuracy)",
        resource_unit="epoch",
        max_resource=27,
        parameters=[
            Parameter("width", "int", (16, 32, 64, 128), log=True),
            Parameter("activation", "categorical", ("relu", "tanh")),
            Parameter("solver", "categorical", ("adam", "sgd")),
            Parameter("learning_rate_init", "float", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1), log=True),
            Parameter("alpha", "float", (1e-5, 1e-3, 1e-1), log=True),
            Parameter("batch_size", "int", (32, 128, 512), log=True),
        ],
        train=_train_mlp_digits,
        fixed={"n_layers": 1},
    ),
    Spec(
        name="hgb_breast_cancer",
        description="scikit-learn HistGradientBoostingClassifier by boosting iterations on breast_cancer",
        dataset="sklearn load_breast_cancer, stratified 60/40 train/validation split, seed 0",
        metric="validation log loss",
        resource_unit="boosting iteration",
        max_resource=81,
        parameters=[
            Parameter("learning_rate", "float", (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0), log=True),
            Parameter("max_leaf_nodes", "int", (4, 16, 64), log=True),
            Parameter("min_samples_leaf", "int", (1, 10, 100), log=True),
            Parameter("l2_regularization", "float", (1e-3, 1e-1, 10.0), log=True),
            Parameter("max_features", "float", (0.25, 0.5, 1.0)),
            Parameter("interaction_cst", "categorical", ("none", "pairwise", "no_interactions")),
        ],
        train=_train_hgb_breast_cancer,
        fixed={"max_bins": 255},
    ),
    Spec(
        name="torch_mlp_diabetes",
        description="PyTorch MLP regressor (two hidden layers) trained epoch by epoch on diabetes",
        dataset="sklearn load_diabetes, standardised, 70/30 train/validation split, seed 0",
        metric=f"validation MSE / validation variance (1 - R^2), capped at {REGRESSION_ERROR_CAP}",
        resource_unit="epoch",
        max_resource=81,
        parameters=[
            Parameter("width", "int", (16, 64), log=True),
            Parameter("optimizer", "categorical", ("adam", "sgd", "rmsprop")),
            Parameter("learning_rate", "float", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1), log=True),
            Parameter("weight_decay", "float", (1e-5, 1e-3, 1e-1), log=True),
            Parameter("batch_size", "int", (32, 128), log=True),
            Parameter("dropout", "float", (0.0, 0.25, 0.5)),
        ],
        train=_train_torch_mlp_diabetes,
        fixed={"n_layers": 2},
    ),
    Spec(
        name="kernel_sgd_digits",
        description="Nystroem RBF features + scikit-learn SGDClassifier trained epoch by epoch on digits",
        dataset="sklearn load_digits, pixels / 16, stratified 60/40 train/validation split, seed 0",
        metric="validation error rate (1 - accuracy)",
        resource_unit="epoch",
        max_resource=27,
        parameters=[
            Parameter("n_components", "int", (32, 64, 128, 256), log=True),
            Parameter("gamma", "float", (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0), log=True),
            Parameter("loss", "categorical", ("hinge", "log_loss", "modified_huber")),
            Parameter("alpha", "float", (1e-6, 1e-4, 1e-2), log=True),
            Parameter("learning_rate", "categorical", ("optimal", "adaptive")),
            Parameter("eta0", "float", (1e-2, 1e-1), log=True),
        ],
        train=_train_kernel_sgd_digits,
        fixed={"average": False},
    ),
]


# ---------------------------------------------------------------------------------------------
# Building and reporting.


def grid_configs(parameters: list[Parameter], n: int | None = None, seed: int = SEED) -> list[dict[str, Any]]:
    """Every configuration of the full factorial grid in grid order, or ``n`` distinct ones drawn
    uniformly from it (still in grid order)."""
    sizes = [len(p.values) for p in parameters]
    total = math.prod(sizes)
    if n is None or n >= total:
        flat = np.arange(total)
    else:
        flat = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    rows = np.stack(np.unravel_index(flat, sizes), axis=1).tolist()
    return [{p.name: p.values[k] for p, k in zip(parameters, row)} for row in rows]


def build(spec: Spec, n_configs: int | None = None) -> Table:
    """Train every configuration of ``spec``'s grid (or ``n_configs`` of them) and return the table."""
    configs = grid_configs(spec.parameters, n_configs)
    n_configs = len(configs)
    # Warm-up: loads the data and pays first-call overheads outside the timed runs.
    spec.train({**spec.fixed, **configs[0]}, 1)
    curves = np.empty((n_configs, spec.max_resource))
    seconds = np.empty(n_configs)
    start = time.perf_counter()
    for i, config in enumerate(configs):
        t0 = time.process_time()
        curves[i] = spec.train({**spec.fixed, **config}, spec.max_resource)
        seconds[i] = (time.process_time() - t0) / spec.max_resource
        if (i + 1) % 100 == 0:
            print(f"  {spec.name}: {i + 1}/{n_configs} configs, {time.perf_counter() - start:.0f} s", flush=True)
    if not np.isfinite(curves).all():
        raise RuntimeError(f"{spec.name}: non-finite validation errors")
    metadata = {
        "description": spec.description,
        "dataset": spec.dataset,
        "metric": spec.metric,
        "resource_unit": spec.resource_unit,
        "fixed_settings": spec.fixed,
        "full_grid": n_configs == math.prod(len(p.values) for p in spec.parameters),
        "seed": SEED,
        "seconds_per_unit": "mean CPU seconds per unit (training + validation), single thread",
        "build_seconds": round(time.perf_counter() - start, 1),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "torch": torch.__version__,
        },
    }
    return Table(spec.name, spec.parameters, configs, curves, seconds, spec.max_resource, metadata)


def halving_keeps(table: Table, top_share: float = 0.02, reduction_factor: int = 3) -> float:
    """Share of the best ``top_share`` configurations (by final error) that synchronous successive
    halving over the whole table sends to the full resource (:func:`halving_results`).

    How much the stopping rule itself, any sampler's, loses on this table: 1 when early errors
    rank the best configurations among the best, near 0 when they start slowly.
    """
    final = table.curves[:, -1]
    results = halving_results(table, np.arange(len(final)), reduction_factor)
    best = np.flatnonzero(final <= np.quantile(final, top_share))
    return float(np.mean([table.max_resource in results[row] for row in best]))


def first_rung_agreement(
    table: Table, draws: int = 200, configs_per_draw: int = 54, reduction_factor: int = 3, seed: int = 0
) -> float:
    """What ``brackets="auto"`` measures, over random draws: the mean rank correlation between
    the first two rungs' values of the configurations successive halving sends on from the
    first rung (its top ``1 / reduction_factor``), each draw ``configs_per_draw`` configurations.
    Near 1 when the first rung ranks the survivors as the second does; low when it does not."""
    from mobster.rungs import rank_correlation, rung_levels

    first, second = rung_levels(1, table.max_resource, reduction_factor)[:2]
    rng = np.random.default_rng(seed)
    correlations = []
    for _ in range(draws):
        rows = rng.choice(len(table.configs), configs_per_draw, replace=False)
        survivors = {row: levels for row, levels in halving_results(table, rows, reduction_factor).items() if second in levels}
        correlation, _ = rank_correlation(
            {row: levels[first] for row, levels in survivors.items()},
            {row: levels[second] for row, levels in survivors.items()},
        )
        if math.isfinite(correlation):
            correlations.append(correlation)
    return float(np.mean(correlations)) if correlations else math.nan


def summary(table: Table) -> str:
    """Configs, best/median final error, rank correlations of early vs final errors, what
    successive halving keeps of the best, cost spread."""
    final = table.curves[:, -1]
    early = max(1, round(table.max_resource / 9))
    rho_1 = spearmanr(table.curves[:, 0], final).statistic
    rho_early = spearmanr(table.curves[:, early - 1], final).statistic
    sec = table.seconds_per_unit
    return (
        f"{table.name}: {len(table.configs)} configs, {len(table.parameters)} params, R={table.max_resource}; "
        f"final error best {final.min():.4f} median {np.median(final):.4f}; "
        f"spearman(r=1, r={table.max_resource}) {rho_1:.3f}, spearman(r={early}, r={table.max_resource}) "
        f"{rho_early:.3f}; successive halving keeps {halving_keeps(table):.0%} of the best 2%; "
        f"its first rung's survivors rank alike at rungs 1 and 3 at {first_rung_agreement(table):.2f}; "
        f"s/unit min {sec.min():.4f} median {np.median(sec):.4f} max {sec.max():.4f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=[s.name for s in SPECS], help="build only this table")
    parser.add_argument("--n-configs", type=int, help="train this many random grid configurations (smoke tests)")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output directory")
    parser.add_argument("--summary", action="store_true", help="only print the figures of the stored tables")
    args = parser.parse_args(argv)
    names = args.only or [s.name for s in SPECS]
    if args.summary:
        for name in names:
            if name in list_tables(args.out):
                print(summary(load_table(name, args.out)))
        return
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")  # convergence and overflow warnings of deliberately bad configs
    with threadpool_limits(limits=1), np.errstate(all="ignore"):
        for spec in SPECS:
            if spec.name in names:
                table = build(spec, args.n_configs)
                save_table(table, args.out)
                print(summary(table), f"({table.metadata['build_seconds']} s)", flush=True)
    total = sum(p.stat().st_size for p in Path(args.out).iterdir() if p.suffix in (".npz", ".json"))
    print(f"total size of {args.out}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
