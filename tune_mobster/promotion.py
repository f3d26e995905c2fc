"""What the promotion variant needs on Ray Tune beyond the core rung table.

Ray resumes a paused trial from its latest checkpoint, and without one it silently restarts the
trial from iteration 1: :class:`MissingCheckpointError` turns that into a clear error. (Paused
trials that never make the top ``1/eta`` of their rung once no new trial can start, ray #6780,
are the core's: ``RungTable.choose_promotion(..., finishing=True)``.)
"""

from __future__ import annotations

from collections.abc import Sequence

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
