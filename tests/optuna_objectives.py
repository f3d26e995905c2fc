"""Synthetic multi-fidelity objectives for the Optuna tests (a fake learning curve, no training)."""

from __future__ import annotations

import math

import optuna


def curve_value(x: float, lr: float, n: int, kind: str, step: int) -> float:
    """Validation error after ``step`` epochs: final error plus a decaying, config-dependent term."""
    final = (x - 0.3) ** 2 + (math.log10(lr) + 2.0) ** 2 / 8.0 + 0.04 * abs(n - 5)
    final += {"a": 0.0, "b": 0.15, "c": 0.3}[kind]
    return final + (0.6 + 0.4 * x) * math.exp(-step / 6.0)


def objective(trial: optuna.Trial, max_step: int = 27) -> float:
    """Reports every step and obeys the pruner."""
    x = trial.suggest_float("x", 0.0, 1.0)
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    n = trial.suggest_int("n", 1, 8)
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    value = math.inf
    for step in range(1, max_step + 1):
        value = curve_value(x, lr, n, kind, step)
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def two_objectives(trial: optuna.Trial, max_step: int = 9) -> tuple[float, float]:
    """Error and a cost that trade off through ``x`` (a front over ``x``, ``y`` at 0 is best);
    reports both every step with ``optuna_mobster.report`` and obeys the pruner."""
    import optuna_mobster

    x = trial.suggest_float("x", 0.0, 1.0)
    y = trial.suggest_float("y", 0.0, 1.0)
    values = (math.inf, math.inf)
    for step in range(1, max_step + 1):
        values = (x + y + 0.5 * math.exp(-step / 3.0) * (1 - x), (1 - x) ** 2 + y)
        optuna_mobster.report(trial, values, step)
        if optuna_mobster.should_prune(trial):
            raise optuna.TrialPruned()
    return values
