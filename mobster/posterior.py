"""The fitted GP's posterior given its data, in closed form, kept after a suggestion.

:class:`ConditionedGP` holds the training Cholesky factor and the whitened residual of a fitted
GP (hyperparameters fixed) and answers posterior means and covariances with a few matrix
products, without GPyTorch's per-call overhead. The acquisition's
:class:`~mobster.fantasy.FantasizedModel` builds on it, and the searcher keeps the last one so
that a framework callback (the rescue of late bloomers) is answered in milliseconds, never by
fitting a model inside the callback. It is immutable once built, so another thread may query it
while the next model is fitted.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from botorch.models import SingleTaskGP

from mobster.fixed_kernel import FixedKernel


def dense(matrix) -> torch.Tensor:
    """A plain tensor from a GPyTorch kernel's output (lazy or not)."""
    return matrix.to_dense() if hasattr(matrix, "to_dense") else matrix


class ConditionedGP:
    """Posterior of a fitted GP given its training data (hyperparameters fixed).

    With ``L`` the Cholesky factor of ``K(D, D) + noise I`` and ``a = L^-1 (y - m(D))``::

        mean(x)     = m(x) + (L^-1 k(D, x))^T a  =  m(x) + k(D, x)^T L^-T a
        cov(x, x')  = k(x, x') - (L^-1 k(D, x))^T (L^-1 k(D, x'))
    """

    def __init__(self, model: SingleTaskGP) -> None:
        # Gradients are wanted with respect to inputs only (the acquisition's), never through
        # the hyperparameter transforms.
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        with torch.no_grad():
            # Rows in order of resource (stable; the posterior does not depend on their order):
            # each resource's rows form one run (``kernel.train_runs``), which the Gram matrix
            # and the acquisition's solves exploit (FantasizedModel.moments_at_resources).
            order = torch.argsort(model.train_inputs[0][:, -1], stable=True)
            self.train_x = model.train_inputs[0][order]
            #: The kernel and prior mean at the fitted hyperparameters (``kernel(x1, x2)``, ``kernel.mean(x)``).
            self.kernel = FixedKernel(model.covar_module, model.mean_module, self.train_x)
            self.noise = model.likelihood.noise.squeeze().detach()
            gram = self.kernel.gram()
            eye = torch.eye(len(self.train_x), dtype=gram.dtype, device=gram.device)
            self.chol = torch.linalg.cholesky(gram + (self.noise + 1e-8) * eye)
            residual = (model.train_targets[order] - self.kernel.mean(self.train_x)).unsqueeze(-1)
            self.alpha = torch.linalg.solve_triangular(self.chol, residual, upper=False).squeeze(-1)
            #: ``K^-1 (y - m(D))``: a mean from kernel columns alone.
            self.weights = torch.linalg.solve_triangular(self.chol.transpose(-1, -2), self.alpha.unsqueeze(-1), upper=True).squeeze(-1)

    def whiten(self, x: torch.Tensor) -> torch.Tensor:
        """``L^-1 k(D, x)``: ``n x N`` for ``N`` inputs."""
        return torch.linalg.solve_triangular(self.chol, self.kernel.train_columns(x), upper=False)

    def mean(self, x: torch.Tensor, whitened: torch.Tensor | None = None) -> torch.Tensor:
        """Posterior mean at ``x`` (``N``)."""
        whitened = self.whiten(x) if whitened is None else whitened
        return self.kernel.mean(x) + whitened.transpose(-1, -2) @ self.alpha

    def columns(self, x: torch.Tensor) -> torch.Tensor:
        """``k(D, x)``: ``n x N``, all a posterior mean needs (no triangular solve: ``N`` of them
        cost ``n`` each instead of ``n^2``)."""
        return self.kernel.train_columns(x)

    def mean_from_columns(self, x: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Posterior mean at ``x`` from :meth:`columns` ``k(D, x)``: ``m(x) + k(D, x)^T K^-1 (y - m(D))``."""
        return self.kernel.mean(x) + columns.transpose(-1, -2) @ self.weights

    def mean_given(
        self,
        x: torch.Tensor,
        extra_x: torch.Tensor,
        extra_y: torch.Tensor,
        mean: torch.Tensor | None = None,
        projection: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Posterior mean at ``x`` once the GP has also seen ``extra_y`` (noisy) at ``extra_x``:
        a trial's results that arrived after the fit, added without refitting anything.

        ``mean``: :meth:`mean` at ``x`` when the caller already has it. ``projection``: maps
        ``V = K^-1 k(D, extra_x)`` (``n x e``) to ``k(x, D) V`` (``N x e``) when the caller
        holds ``k(D, x)`` in some form (:meth:`columns`; it does not depend on the extra points).
        """
        with torch.no_grad():
            if projection is None or mean is None:
                columns = self.columns(x)
                mean = self.mean_from_columns(x, columns) if mean is None else mean
                projection = projection or (lambda solved: columns.transpose(-1, -2) @ solved)
            if len(extra_x) == 0:
                return mean
            # k(D, extra), k(x, extra) and k(extra, extra) in one evaluation: a rescue decision's
            # kernel calls are small, each mostly fixed per-call cost.
            n, m = len(self.train_x), len(x)
            prior = self.kernel(extra_x, torch.cat([self.train_x, x, extra_x])).transpose(-1, -2)
            whitened_e = torch.linalg.solve_triangular(self.chol, prior[:n], upper=False)
            solved_e = torch.linalg.solve_triangular(self.chol.transpose(-1, -2), whitened_e, upper=True)
            cross = prior[n : n + m] - projection(solved_e)
            extra_cov = prior[n + m :] - whitened_e.transpose(-1, -2) @ whitened_e
            extra_cov = extra_cov + self.noise * torch.eye(len(extra_x), dtype=x.dtype, device=x.device)
            surprise = extra_y - self.mean(extra_x, whitened_e)
            return mean + cross @ torch.linalg.solve(extra_cov, surprise)
