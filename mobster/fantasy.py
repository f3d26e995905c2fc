"""The acquisition-time posterior: the fitted GP, with pending trials fantasized in closed form.

BoTorch's ``model.fantasize`` conditions ``J`` batched copies of the GP on ``J`` joint samples at
the pending inputs ``P``. With hyperparameters fixed (as in the reference), all copies share one
posterior covariance; only their means differ, linearly in the samples::

    mean_j(x) = mu(x) + S_xP S_PP^-1 (y_j - mu_P)       y_j ~ N(mu_P, S_PP) jointly
    var(x)    = s_xx - S_xP S_PP^-1 S_Px                 (the same for every fantasy)

with ``S`` the posterior covariance given the data and ``S_PP`` including observation noise.
:class:`FantasizedModel` computes exactly that from the fitted kernel, mean and noise (as
:class:`~mobster.fixed_kernel.FixedKernel`), with the training Cholesky factor of
:class:`~mobster.posterior.ConditionedGP` computed once per suggestion. Same numbers as ``fantasize``, but
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

from mobster.posterior import ConditionedGP
from mobster.yielding import pause_point

#: :meth:`FantasizedModel.moments_at_resources` solves by blocks of one resource when that costs
#: less than this share of the direct solves (the copies and the loop over blocks cost too).
BLOCKS_WORTH_IT = 0.7


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
        self.kernel = self.data_posterior.kernel
        self.num_fantasies = num_fantasies if len(pending_x) else 1
        gp = self.data_posterior
        self._resource_cache: dict[tuple[float, ...], tuple[torch.Tensor, ...]] = {}
        self._whitened_added: dict[tuple[float, ...], torch.Tensor] = {}  # see _whitened_by_blocks
        with torch.no_grad():
            self.pending_x = pending_x
            self._weights = torch.zeros(0, self.num_fantasies, dtype=gp.chol.dtype, device=gp.chol.device)
            if len(pending_x):
                self._pending_whitened = gp.whiten(pending_x)
                pending_cov = self.kernel(pending_x, pending_x)
                pending_cov = pending_cov - self._pending_whitened.transpose(-1, -2) @ self._pending_whitened
                noisy_pending_cov = pending_cov + gp.noise * torch.eye(len(pending_x)).to(pending_cov)
                self._pending_chol = torch.linalg.cholesky(noisy_pending_cov)
                normals = NormalQMCEngine(d=len(pending_x), seed=seed).draw(self.num_fantasies).to(pending_x)
                # y_j - mu_P = L z_j, so S_PP^-1 (y_j - mu_P) = L^-T z_j: p x J weights.
                self._weights = torch.linalg.solve_triangular(self._pending_chol.transpose(-1, -2), normals.T, upper=True)

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size([self.num_fantasies])

    def _prior_at_resources(self, resources: tuple[float, ...]) -> tuple[torch.Tensor, ...]:
        """What depends on the resources only (a separable kernel): per resource, the prior mean
        and variance, and the kernel's factor and added term against the training and the
        pending inputs (``g x n`` and ``g x p``). Computed once per acquisition."""
        if resources not in self._resource_cache:
            with torch.no_grad():
                r = torch.tensor(resources).to(self.pending_x)
                train_r, pending_r = self.data_posterior.train_x[:, -1], self.pending_x[:, -1]
                self._resource_cache[resources] = (
                    self.kernel.mean_at(r),
                    self.kernel.prior_variance_at(r),
                    *self.kernel.resource_terms(r.unsqueeze(-1), train_r.unsqueeze(-2)),
                    *self.kernel.resource_terms(r.unsqueeze(-1), pending_r.unsqueeze(-2)),
                )
        return self._resource_cache[resources]

    def _combine(
        self, whitened: torch.Tensor, prior_mean: torch.Tensor, prior_variance: torch.Tensor, prior_cross: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-fantasy means and variances (``N x J``) from ``L^-1 k(D, x)`` (``n x N``), the
        prior mean and variance at the ``N`` points and their prior covariance with the pending inputs
        (``N x p``; ``None`` without pending inputs)."""
        mean = prior_mean + whitened.transpose(-1, -2) @ self.data_posterior.alpha
        variance = prior_variance - _squared_column_norms(whitened)
        means = mean.unsqueeze(-1)
        if len(self.pending_x):
            cross = prior_cross - whitened.transpose(-1, -2) @ self._pending_whitened  # N x p
            means = means + cross @ self._weights
            # cross S_PP^-1 cross^T, diagonal only: |L_P^-1 cross^T|^2 per point.
            whitened_cross = torch.linalg.solve_triangular(self._pending_chol, cross.transpose(-1, -2), upper=False)
            variance = variance - whitened_cross.square().sum(0)
        # GPyTorch's floor: below it, reading the posterior's variance warns (a warning a user
        # cannot act on: the variance at a measured configuration is that small).
        variance = variance.clamp_min(gpytorch.settings.min_variance.value(variance.dtype))
        return means, variance.unsqueeze(-1).expand_as(means)

    def moments(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior means and variances at ``points`` (``N x D``), per fantasy: ``N x J`` each.

        What :meth:`posterior` wraps; the acquisition reads them directly, without building a
        distribution (whose constructor factorises ``N x J`` one-by-one covariances per call).
        """
        whitened = self.data_posterior.whiten(points)
        cross = self.kernel(points, self.pending_x) if len(self.pending_x) else None
        return self._combine(whitened, self.kernel.mean(points), self.kernel(points, points, diag=True), cross)

    def moments_at_resources(self, features: torch.Tensor, resources: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`moments` of every configuration (``b x f``: model inputs without the resource)
        at each of ``resources`` (scaled), in that order: ``b x g x J`` each.

        With a separable kernel (the exp-decay ones), the configuration part of the kernel is
        computed once per configuration and the resource part once per acquisition.
        """
        b, g = features.shape[0], len(resources)
        if not self.kernel.separable:
            column = torch.tensor(resources).to(features).repeat(b).unsqueeze(-1)
            means, variance = self.moments(torch.cat([features.repeat_interleave(g, dim=0), column], dim=-1))
            return means.reshape(b, g, -1), variance.reshape(b, g, -1)
        prior_mean, prior_variance, train_factor, train_added, pending_factor, pending_added = self._prior_at_resources(resources)
        k_train = self.kernel.config_kernel(features, self.data_posterior.train_x)  # b x n
        if not k_train.requires_grad and self._blocks_cost(g) < BLOCKS_WORTH_IT:
            whitened = self._whitened_by_blocks(k_train, resources, train_factor, train_added)
        else:
            # Each configuration's g columns side by side: (b, g, n) is k(D, x)^T, column-major.
            columns = torch.addcmul(train_added, k_train.unsqueeze(1), train_factor).reshape(b * g, -1).T
            if columns.requires_grad:
                whitened = torch.linalg.solve_triangular(self.data_posterior.chol, columns, upper=False)
            else:  # the columns are ours: solved in place, without LAPACK's copy of an n x bg matrix
                whitened = torch.linalg.solve_triangular(self.data_posterior.chol, columns, upper=False, out=columns)
        cross = None
        if len(self.pending_x):
            k_pending = self.kernel.config_kernel(features, self.pending_x)  # b x p
            cross = torch.addcmul(pending_added, k_pending.unsqueeze(1), pending_factor).reshape(b * g, -1)
        means, variance = self._combine(whitened, prior_mean.repeat(b), prior_variance.repeat(b), cross)
        return means.reshape(b, g, -1), variance.reshape(b, g, -1)

    def _blocks_cost(self, g: int) -> float:
        """The triangular solves of :meth:`_whitened_by_blocks` as a share of those of the
        direct path (``g`` resources): ``sum over blocks of (n - start)^2`` against ``g n^2``."""
        n = len(self.data_posterior.train_x)
        return sum((n - start) ** 2 for start, _ in self.kernel.train_runs) / (g * n * n)

    def _whitened_by_blocks(
        self, k_train: torch.Tensor, resources: tuple[float, ...], train_factor: torch.Tensor, train_added: torch.Tensor
    ) -> torch.Tensor:
        """``L^-1 k(D, x)`` of every configuration at each of ``resources``: ``n x bg`` (column
        ``i g + j``: configuration ``i`` at resource ``j``), the direct path's numbers.

        The kernel is ``k_x * factor(r, r_i) + added(r, r_i)`` and the training rows come in
        runs of one resource (``FixedKernel.train_runs``), so a column is
        ``added_r + sum over blocks B of factor(r, r_B) * (k_x restricted to B)``. ``L^-1`` of the
        ``added`` part is one solve per resource for every configuration; ``L^-1`` of ``k_x``
        restricted to a block starting at row ``s`` is zero above ``s`` (``L`` is lower
        triangular), a solve with ``L[s:, s:]``. Most observations sit at the lowest rungs, which
        sort first: a fraction of the ``g`` full solves per configuration of the direct path.
        """
        gp = self.data_posterior
        n, b = len(gp.train_x), k_train.shape[0]
        if resources not in self._whitened_added:  # L^-1 added(D, r): n x g, once per acquisition
            self._whitened_added[resources] = torch.linalg.solve_triangular(gp.chol, train_added.T.contiguous(), upper=False)
        whitened_added = self._whitened_added[resources]
        whitened = None
        for start, end in self.kernel.train_runs:
            pause_point()  # where a background computation steps aside (mobster.yielding)
            # The block's rows of k_x, zero below: column-major, solved in place.
            right = k_train.new_zeros(b, n - start)
            right[:, : end - start] = k_train[:, start:end]
            right = right.T
            solved = torch.linalg.solve_triangular(gp.chol[start:, start:], right, upper=False, out=right).unsqueeze(-1)
            factor = train_factor[:, start]  # factor(r_j, r_B), the same over the block
            if whitened is None:  # the first block starts at row 0: n x b x g
                whitened = torch.addcmul(whitened_added.unsqueeze(1), solved, factor)
            else:
                whitened[start:].addcmul_(solved, factor)
        return whitened.reshape(n, -1)

    def posterior(self, X: torch.Tensor, output_indices=None, observation_noise=False, posterior_transform=None, **kwargs) -> GPyTorchPosterior:
        if X.dim() < 3 or X.shape[-3] != 1 or X.shape[-2] != 1:
            raise ValueError(f"expected inputs of shape ... x 1 x 1 x D, got {tuple(X.shape)}")
        means, variance = self.moments(X.reshape(-1, X.shape[-1]))
        shape = (*X.shape[:-3], self.num_fantasies, 1)
        mvn = MultivariateNormal(means.reshape(shape), torch.diag_embed(variance.reshape(shape)))
        return GPyTorchPosterior(mvn)


def _squared_column_norms(matrix: torch.Tensor) -> torch.Tensor:
    """``|column|^2`` of each column. Without gradients, by a norm (no ``n x N`` temporary of the
    squares); with them, by the squares (the norm's gradient is undefined at a zero column)."""
    if matrix.requires_grad:
        return matrix.square().sum(0)
    return torch.linalg.vector_norm(matrix, dim=0).square()
