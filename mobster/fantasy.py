"""The acquisition-time posterior: the fitted GP, with pending trials fantasized in closed form.

BoTorch's ``model.fantasize`` conditions ``J`` batched copies of the GP on ``J`` joint samples at
the pending inputs ``P``. With hyperparameters fixed (as in the reference), all copies share one
posterior covariance; only their means differ, linearly in the samples::

    mean_j(x) = mu(x) + S_xP S_PP^-1 (y_j - mu_P)       y_j ~ N(mu_P, S_PP) jointly
    var(x)    = s_xx - S_xP S_PP^-1 S_Px                 (the same for every fantasy)

with ``S`` the posterior covariance given the data and ``S_PP`` including observation noise.
:class:`FantasizedModel` computes exactly that from the fitted GPyTorch kernel, mean and noise,
with the training Cholesky factor of :class:`~mobster.posterior.ConditionedGP` computed once
per suggestion. Same numbers as ``fantasize``, but
one small matrix product per fantasy instead of ``J`` GP posteriors, and without GPyTorch's
per-call overhead, which dominates the small batches the local optimiser evaluates. It is a
BoTorch ``Model``, so BoTorch's ``LogExpectedImprovement`` computes the acquisition on it.
"""

from __future__ import annotations

import gpytorch
import torch
from botorch.models import SingleTaskGP
from botorch.models.model import Model
from botorch.posteriors import GPyTorchPosterior
from botorch.sampling.qmc import NormalQMCEngine
from gpytorch.distributions import MultivariateNormal

from mobster.posterior import ConditionedGP, dense


class FantasizedModel(Model):
    """Posterior of a fitted GP after fantasizing ``num_fantasies`` joint outcomes at ``pending_x``.

    ``posterior(X)`` for ``X`` of shape ``... x 1 x 1 x D`` (a singleton batch dimension that
    broadcasts against the fantasies) has batch shape ``... x num_fantasies``. With no pending
    inputs there is a single "fantasy": the GP itself.
    """

    num_outputs = 1

    def __init__(self, model: SingleTaskGP, pending_x: torch.Tensor, num_fantasies: int, seed: int) -> None:
        super().__init__()
        #: The GP given its data (the fitted ``model`` is used for this suggestion only).
        self.data_posterior = ConditionedGP(model)
        self.kernel, self.mean_module = model.covar_module, model.mean_module
        self.num_fantasies = num_fantasies if len(pending_x) else 1
        gp = self.data_posterior
        with torch.no_grad():
            self.pending_x = pending_x
            self._weights = torch.zeros(0, self.num_fantasies, dtype=gp.chol.dtype, device=gp.chol.device)
            if len(pending_x):
                self._pending_whitened = gp.whiten(pending_x)
                pending_cov = dense(self.kernel.forward(pending_x, pending_x))
                pending_cov = pending_cov - self._pending_whitened.transpose(-1, -2) @ self._pending_whitened
                self._noisy_pending_cov = pending_cov + gp.noise * torch.eye(len(pending_x)).to(pending_cov)
                chol = torch.linalg.cholesky(self._noisy_pending_cov)
                normals = NormalQMCEngine(d=len(pending_x), seed=seed).draw(self.num_fantasies).to(pending_x)
                # y_j - mu_P = L z_j, so S_PP^-1 (y_j - mu_P) = L^-T z_j: p x J weights.
                self._weights = torch.linalg.solve_triangular(chol.transpose(-1, -2), normals.T, upper=True)

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size([self.num_fantasies])

    def _predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Posterior mean and variance at ``x`` (N each), and covariance with the pending inputs (N x p)."""
        whitened = self.data_posterior.whiten(x)
        mean = self.data_posterior.mean(x, whitened)
        variance = dense(self.kernel.forward(x, x, diag=True)) - (whitened**2).sum(0)
        cross = torch.zeros(len(x), 0).to(x)
        if len(self.pending_x):
            cross = dense(self.kernel.forward(x, self.pending_x)) - whitened.transpose(-1, -2) @ self._pending_whitened
        return mean, variance, cross

    def moments(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior means and variances at ``points`` (``N x D``), per fantasy: ``N x J`` each.

        What :meth:`posterior` wraps; the acquisition reads them directly, without building a
        distribution (whose constructor factorises ``N x J`` one-by-one covariances per call).
        """
        mean, variance, cross = self._predict(points)
        means = mean.unsqueeze(-1) + cross @ self._weights  # N x J
        if len(self.pending_x):
            solved = torch.linalg.solve(self._noisy_pending_cov, cross.transpose(-1, -2))  # p x N
            variance = variance - (cross * solved.transpose(-1, -2)).sum(-1)
        # GPyTorch's floor: below it, reading the posterior's variance warns (a warning a user
        # cannot act on: the variance at a measured configuration is that small).
        variance = variance.clamp_min(gpytorch.settings.min_variance.value(variance.dtype))
        return means, variance.unsqueeze(-1).expand_as(means)

    def posterior(self, X: torch.Tensor, output_indices=None, observation_noise=False, posterior_transform=None, **kwargs) -> GPyTorchPosterior:
        if X.dim() < 3 or X.shape[-3] != 1 or X.shape[-2] != 1:
            raise ValueError(f"expected inputs of shape ... x 1 x 1 x D, got {tuple(X.shape)}")
        means, variance = self.moments(X.reshape(-1, X.shape[-1]))
        shape = (*X.shape[:-3], self.num_fantasies, 1)
        mvn = MultivariateNormal(means.reshape(shape), torch.diag_embed(variance.reshape(shape)))
        return GPyTorchPosterior(mvn)
