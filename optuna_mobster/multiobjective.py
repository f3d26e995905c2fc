"""Reporting and pruning in multi-objective studies, which Optuna's own ``Trial.report`` refuses.

Optuna stores one intermediate value per step and raises ``NotImplementedError`` from
``trial.report`` and ``trial.should_prune`` in a study with several directions. These helpers
store the vector of a step in the trial's system attrs instead (in the storage, so every thread
and process sharing it sees them) and ask the study's pruner, which reads them back::

    for epoch in range(1, max_epochs + 1):
        error, latency = train_one_epoch()
        optuna_mobster.report(trial, (error, latency), step=epoch)
        if optuna_mobster.should_prune(trial):
            raise optuna.TrialPruned()
    return error, latency

In a single-objective study they are ``trial.report`` and ``trial.should_prune``. A pruned trial
keeps its reported vectors (:func:`intermediate_values`); Optuna gives it no final values, so
``study.best_trials`` is the front of the completed trials, as usual.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

#: System attr of a trial holding the vector reported at a step: ``mobster:values:<step>``.
KEY_PREFIX = "mobster:values:"


def study_modes(study: optuna.Study) -> list[str]:
    """``"min"`` or ``"max"`` per objective of the study, in the core's terms."""
    return ["max" if d == StudyDirection.MAXIMIZE else "min" for d in study.directions]


def report(trial: optuna.Trial, values: float | Sequence[float], step: int) -> None:
    """Report the objectives' values at ``step`` (the resource, e.g. the epoch from 1).

    ``values``: one per direction of the study, in its order. A non-finite value is stored (the
    pruner prunes such a trial at its next rung check, and the sampler leaves it out of the
    model). As Optuna does for ``trial.report``, a second report at the same step is ignored with
    a warning.
    """
    study = trial.study
    if len(study.directions) == 1:
        trial.report(values if not isinstance(values, Sequence) else _single(values), step)  # type: ignore[arg-type]
        return
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"report needs a sequence of {len(study.directions)} values in a multi-objective study, got {values!r}")
    if len(values) != len(study.directions):
        raise ValueError(
            f"report got {len(values)} values {list(values)} for a study with {len(study.directions)} directions"
        )
    try:
        step = int(step)
        vector = [float(v) for v in values]
    except (TypeError, ValueError) as error:
        raise TypeError(f"report needs numbers and an integer step, got values={values!r}, step={step!r}") from error
    if step < 0:
        raise ValueError(f"the step must be >= 0, got {step}")
    key = f"{KEY_PREFIX}{step}"
    frozen = study._storage.get_trial(trial._trial_id)
    if key in frozen.system_attrs:
        warnings.warn(
            f"The reported value is ignored because this `step` {step} is already reported.", stacklevel=2
        )
        return
    # JSON has no NaN or infinity everywhere (PostgreSQL's json refuses them): store them as text.
    stored = [v if math.isfinite(v) else repr(v) for v in vector]
    # Optuna has no public way to store more per step; its own pruners write trial system attrs
    # through the storage the same way.
    study._storage.set_trial_system_attr(trial._trial_id, key, stored)


def intermediate_values(trial: FrozenTrial) -> dict[int, tuple[float, ...]]:
    """Step -> the vector reported there with :func:`report` (any state, pruned trials included)."""
    vectors: dict[int, tuple[float, ...]] = {}
    for key, stored in trial.system_attrs.items():
        if key.startswith(KEY_PREFIX) and isinstance(stored, list):
            try:
                vectors[int(key[len(KEY_PREFIX):])] = tuple(float(v) for v in stored)
            except (TypeError, ValueError):
                continue  # not written by report: ignore it
    return dict(sorted(vectors.items()))


def last_step(trial: FrozenTrial) -> int | None:
    """The last step the trial reported at, by ``trial.report`` or :func:`report`."""
    steps = list(intermediate_values(trial)) if trial.last_step is None else [trial.last_step]
    return max(steps) if steps else None


def should_prune(trial: optuna.Trial) -> bool:
    """Whether the study's pruner prunes the trial now (after :func:`report`)."""
    study = trial.study
    if len(study.directions) == 1:
        return trial.should_prune()
    return study.pruner.prune(study, study._storage.get_trial(trial._trial_id))


def _single(values: Sequence[float]) -> float:
    if len(values) != 1:
        raise ValueError(f"report got {len(values)} values {list(values)} for a study with one direction")
    return values[0]
