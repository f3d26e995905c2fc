"""Expected improvement at one resource level, averaged over fantasies of the pending trials."""

from __future__ import annotations

from collections.abc import Callable

import torch
from botorch.acquisition import AcquisitionFunction, LogExpectedImprovement
from botorch.models.model import Model
from botorch.utils.safe_math import logmeanexp
from botorch.utils.transforms import t_batch_mode_transform


class FantasyAveragedLogEI(AcquisitionFunction):
    """``log(mean_j EI_j(x, r_acq))`` over the fantasy models ``j`` (one when nothing is pending).

    Args:
        model: The fitted GP, or its fantasy model (batch shape ``(num_fantasies,)``).
        best_f: Incumbent per fantasy (shape ``(num_fantasies,)``), or a 0-d tensor.
        to_model_input: Maps search coordinates ``... x dim`` to GP inputs ``... x (F+1)``,
            appending ``r_acq``.

    Log space keeps gradients alive where EI underflows (BoTorch's LogEI), and the average over
    fantasies is the reference's rule: each fantasy has its own incumbent.
    """

    def __init__(
        self, model: Model, best_f: torch.Tensor, to_model_input: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        super().__init__(model=model)
        self.fantasized = best_f.dim() > 0
        # One incumbent per fantasy, shaped to broadcast against BoTorch's ``b x fantasies x 1`` means.
        incumbent = best_f.unsqueeze(-1) if self.fantasized else best_f
        self.log_ei = LogExpectedImprovement(model=model, best_f=incumbent, maximize=False)
        self.to_model_input = to_model_input

    @t_batch_mode_transform(expected_q=1)
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        inputs = self.to_model_input(X)  # b x 1 x (F+1)
        if not self.fantasized:
            return self.log_ei(inputs)
        # b x 1 x 1 x d broadcasts against the fantasy batch: b x num_fantasies values.
        return logmeanexp(self.log_ei(inputs.unsqueeze(-3)), dim=-1)
