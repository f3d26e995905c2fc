"""What the promotion variant needs beyond the core rung table on Ray Tune.

* Ray resumes a paused trial from its latest checkpoint, and without one it silently restarts
  the trial from iteration 1: :class:`MissingCheckpointError` turns that into a clear error.
* Once no new trial can start, paused trials that never make the top ``1/eta`` of their rung
  would wait forever (ray #6780): :func:`final_promotion` relaxes the quota for that case.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence, Set

from mobster.rung_table import RungTable

CHECKPOINT_HOWTO = """\
MobsterScheduler(type="promotion") pauses trials at rung levels and resumes the best ones later,
so every result reported at a rung level ({levels}) must come with a checkpoint, and the
trainable must restore from it when it starts. In a function trainable:

    def train(config):
        state = {{"epoch": 0}}                       # plus model and optimizer state
        checkpoint = tune.get_checkpoint()
        if checkpoint:
            with checkpoint.as_directory() as folder:
                state = load(folder)                 # your code
        for epoch in range(state["epoch"], max_epochs):
            ...                                      # one epoch of training
            state["epoch"] = epoch + 1
            with tempfile.TemporaryDirectory() as folder:
                save(state, folder)                  # your code
                tune.report({{"loss": loss}}, checkpoint=tune.Checkpoint.from_directory(folder))

A class trainable (tune.Trainable) needs save_checkpoint and load_checkpoint. Or use
MobsterScheduler(type="stopping"), which never pauses and needs no checkpoints."""


class MissingCheckpointError(RuntimeError):
    """A promoted trial cannot continue where it was paused: it has no usable checkpoint."""

    def __init__(self, trial_id: str, reason: str, levels: Sequence[int]) -> None:
        super().__init__(f"Trial {trial_id} {reason}.\n{CHECKPOINT_HOWTO.format(levels=list(levels))}")
        self.trial_id = trial_id


def last_rung(table: RungTable, trial: Hashable) -> int | None:
    """The highest rung below the maximum at which ``trial`` has a recorded value."""
    recorded = [level for level in table.levels[:-1] if trial in table.values[level]]
    return recorded[-1] if recorded else None


def final_promotion(table: RungTable, paused: Set[Hashable]) -> Hashable | None:
    """The paused trial to resume when no new trial will start, or ``None`` to stop them all.

    Like :meth:`RungTable.choose_promotion`, walking rungs from the top, but each rung promotes
    its best ``ceil(n / eta)`` instead of ``floor(n / eta)`` trials, as synchronous successive
    halving finishes a bracket: a rung with fewer than ``eta`` values still sends its best trial
    on, so at least one trial reaches the maximum resource. Terminates: every trial is promoted
    from each rung at most once.
    """
    for level in reversed(table.levels[:-1]):
        candidates = {t for t in paused if last_rung(table, t) == level}
        if not candidates:
            continue
        values = table.values[level]
        quota = math.ceil(len(values) / table.reduction_factor)
        ranked = sorted((v, str(t), t) for t, v in values.items() if math.isfinite(v))
        for _, _, trial in ranked[:quota]:
            if trial in candidates and trial not in table.promoted[level]:
                return trial
    return None
