"""Expected improvement at one resource level, averaged over fantasies of the pending trials, and
aware of the successive-halving schedule a new trial goes through: weighted by the chance that
the trial survives to that level, and optionally divided by the resource it is expected to use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from botorch.acquisition import AcquisitionFunction

# BoTorch's numerically stable log(phi(u) + u Phi(u)), the core of its LogExpectedImprovement.
# Private, but the class would need a posterior call of its own per evaluation, a third of an
# evaluation's cost; tests/test_acquisition.py checks the two agree, so a BoTorch change shows.
from botorch.acquisition.analytic import _log_ei_helper
from botorch.utils.safe_math import logmeanexp
from botorch.utils.transforms import t_batch_mode_transform

from mobster.fantasy import FantasizedModel

#: ``to_features(x)``: search coordinates ``... x dim`` to the GP's configuration features
#: (its inputs without the resource column).
Encoder = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RungSchedule:
    """The rungs a new trial meets under successive halving, in the GP's units.

    Attributes:
        resources: Scaled resource of each rung below the full resource, ascending.
        bars: The (transformed) value a trial must not exceed at each rung to go on; ``inf`` for
            a rung without data yet.
        epochs: Resource spent up to the first rung, then from each rung to the next one, the last
            entry up to the full resource (one more entry than ``resources``).
        before_acquisition: How many of the rungs lie below the acquisition level: passing them
            is what it takes for a trial's value there to be seen at all.
    """

    resources: tuple[float, ...]
    bars: tuple[float, ...]
    epochs: tuple[float, ...]
    before_acquisition: int


class FantasyAveragedLogEI(AcquisitionFunction):
    """``log mean_j [AEI_j(x, r_acq) * P_j(x survives to r_acq) / E_j[resource used by x]]``.

    Args:
        model: A :class:`~mobster.fantasy.FantasizedModel` (batch shape ``(num_fantasies,)``).
        best_f: The incumbent of each fantasy, shape ``(num_fantasies,)``.
        to_features: Maps search coordinates to the GP's inputs without the resource column.
        r_acq: The scaled resource at which improvement is measured.
        schedule: The rungs a new trial passes; ``None``: no survival and no cost terms.
        noise: Observation noise variance of the GP (rung decisions see noisy values).
        cost_aware: Divide by the expected resource a trial uses under ``schedule``.

    Log space keeps gradients alive where EI underflows (BoTorch's LogEI, from the same posterior
    call as the other terms), and the average over fantasies is the reference's rule: each
    fantasy has its own incumbent.

    Why the survival term: under successive halving, a new trial only shows its value at
    ``r_acq`` if it is in the top ``1/eta`` at every rung below. EI alone favours configurations
    whose early results are mediocre but whose predicted final value is good; the scheduler stops
    them at the first rung, over and over (the reference MOBSTER has this mismatch).

    Why the cost term: a trial's price is the resource it uses before it is stopped, from one
    unit (stopped at the first rung) to the full resource (it passes every rung). A configuration
    next to a good one passes every rung, so it costs a full training for a small improvement; an
    uncertain one is probably stopped early, so its chance of a large improvement is cheap.
    Improvement per expected resource is the classic cost-aware rule (EI per second, Snoek et al.
    2012), and the cost-aware acquisition the MOBSTER paper leaves as future work.

    Why the augmentation (Huang et al. 2006, "augmented expected improvement"): EI rates a
    configuration next to a measured good one highly whenever the fitted noise leaves room for a
    better value there, although training it again measures about the same value; the factor
    ``1 - noise_sd / sqrt(posterior variance + noise)`` is near 0 where the model knows the value
    up to the noise, and near 1 where it is uncertain.

    Passing several rungs is taken as the smallest of the per-rung chances up to there: the rung
    values of one trial are strongly correlated, and the bottleneck rung decides.
    """

    def __init__(
        self,
        model: FantasizedModel,
        best_f: torch.Tensor,
        to_features: Encoder,
        r_acq: float,
        schedule: RungSchedule | None = None,
        noise: float = 0.0,
        cost_aware: bool = True,
    ) -> None:
        super().__init__(model=model)
        self.best_f = best_f  # one incumbent per fantasy, broadcast against ``b x fantasies`` means
        self.to_features = to_features
        self.r_acq = r_acq
        self.schedule = schedule if schedule is not None and schedule.resources else None
        self.noise = noise
        self.cost_aware = cost_aware

    @t_batch_mode_transform(expected_q=1)
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        # One posterior call for the moments at r_acq and at every rung: the local optimiser
        # evaluates a few points at a time, where each call's overhead dominates.
        mean, variance = self._moments(X)  # b x (1 + K) x J
        sigma = variance[..., 0, :].clamp_min(1e-12).sqrt()
        log_value = _log_ei_helper((self.best_f - mean[..., 0, :]) / sigma) + sigma.log()
        if self.noise > 0:
            log_value = log_value + self._log_augmentation(variance[..., 0, :])
        if self.schedule is not None:
            log_passed = self._log_pass_up_to(mean[..., 1:, :], variance[..., 1:, :])  # b x K x J
            if self.schedule.before_acquisition:
                log_value = log_value + log_passed[..., self.schedule.before_acquisition - 1, :]
            if self.cost_aware:
                log_value = log_value - torch.log(self._expected_resource(log_passed))
        return logmeanexp(log_value, dim=-1)

    def _moments(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance at ``r_acq`` and then at each rung: ``b x (1 + K) x J`` each."""
        resources = (self.r_acq, *(self.schedule.resources if self.schedule is not None else ()))
        features = self.to_features(X)
        # The model's moments as they are: no distribution built (its constructor costs more here).
        mean, variance = self.model.moments_at_resources(features.reshape(-1, features.shape[-1]), resources)
        shape = (*X.shape[:-2], len(resources), -1)
        return mean.reshape(shape), variance.reshape(shape)

    def _log_augmentation(self, variance: torch.Tensor) -> torch.Tensor:
        """``log(1 - noise_sd / sqrt(variance + noise))`` from the posterior variance at ``r_acq``."""
        ratio = (self.noise / (variance + self.noise)).sqrt().clamp_max(1.0 - 1e-9)
        return torch.log1p(-ratio)

    def _log_pass_up_to(self, mean: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
        """``log P(pass rungs 0..k)`` per candidate, rung ``k`` and fantasy: ``b x K x J``.

        ``mean`` and ``variance`` are the posterior moments at the rungs, ``b x K x J``.
        """
        assert self.schedule is not None
        bars = torch.tensor(self.schedule.bars).to(mean).view(-1, 1)
        # A rung without data (bar inf) is passed for sure; kept out of the arithmetic, as
        # inf - mean would turn the gradient into NaN.
        has_bar = torch.isfinite(bars)
        z = (torch.where(has_bar, bars, 0.0) - mean) / (variance + self.noise).clamp_min(1e-12).sqrt()
        log_pass = torch.where(has_bar, torch.special.log_ndtr(z), 0.0)
        return torch.cummin(log_pass, dim=-2).values

    def _expected_resource(self, log_passed: torch.Tensor) -> torch.Tensor:
        """Resource a new trial uses before it is stopped or finishes, per fantasy: ``b x J``."""
        epochs = torch.tensor(self.schedule.epochs).to(log_passed)  # type: ignore[union-attr]
        return epochs[0] + (log_passed.exp() * epochs[1:].view(-1, 1)).sum(dim=-2)
