"""Expected improvement at one resource level, averaged over fantasies of the pending trials."""

from __future__ import annotations

from collections.abc import Callable

import torch
from botorch.acquisition import AcquisitionFunction, LogExpectedImprovement
from botorch.models.model import Model
from botorch.utils.safe_math import logmeanexp
from botorch.utils.transforms import t_batch_mode_transform


class FantasyAveragedLogEI(AcquisitionFunction):
    """``log(mean_j EI_j(x, r_acq))`` over the fantasies ``j`` of the pending trials.

    Args:
        model: A :class:`~mobster.fantasy.FantasizedModel` (batch shape ``(num_fantasies,)``).
        best_f: The incumbent of each fantasy, shape ``(num_fantasies,)``.
        to_model_input: Maps search coordinates ``... x dim`` to GP inputs ``... x (F+1)``,
            appending ``r_acq``.

    Log space keeps gradients alive where EI underflows (BoTorch's LogEI), and the average over
    fantasies is the reference's rule: each fantasy has its own incumbent.
    """

    def __init__(
        self, model: Model, best_f: torch.Tensor, to_model_input: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        super().__init__(model=model)
        # One incumbent per fantasy, shaped to broadcast against BoTorch's ``b x fantasies x 1`` means.
        self.log_ei = LogExpectedImprovement(model=model, best_f=best_f.unsqueeze(-1), maximize=False)
        self.to_model_input = to_model_input

    @t_batch_mode_transform(expected_q=1)
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        inputs = self.to_model_input(X)  # b x 1 x (F+1)
        # b x 1 x 1 x D broadcasts against the fantasies: b x num_fantasies values, averaged.
        return logmeanexp(self.log_ei(inputs.unsqueeze(-3)), dim=-1)
