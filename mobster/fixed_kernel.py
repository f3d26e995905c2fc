"""A fitted model's kernel and prior mean as plain tensor arithmetic, hyperparameters read once.

Every prediction evaluates the kernel against the training data at fixed hyperparameters: the
acquisition's pool of candidates, each L-BFGS step on a few points, the rescue's means. Through
GPyTorch's modules, each call derives the constrained hyperparameters again (softplus, sigmoid),
rescales the training points and passes several module layers: hundreds of small tensor
operations, most of the cost of a small evaluation. :class:`FixedKernel` reads them once per
fitted model and computes the same functions (the tests compare it with the modules):

- ``matern52``: ``s^2 * Matern52(|(z - z') / l|)`` over every input column;
- ``exp-decay-*``: the same Matérn term ``k_x`` over the configuration features, times a factor
  and plus a term that depend on the resources only (:class:`~mobster.kernels.ExpDecayResourceKernel`).
  Such a kernel is *separable*: the acquisition, which asks for every candidate at the same few
  resources, computes ``k_x`` once per candidate and the resource terms once per acquisition
  (:meth:`FixedKernel.resource_terms`).

Columns against the training data, ``k(D, x)``, come out column-major (the transpose of a
contiguous ``N x n``): the triangular solve of the posterior reads them as they are.
"""

from __future__ import annotations

import math

import torch
from gpytorch.kernels import Kernel, MaternKernel, ScaleKernel
from gpytorch.means import ConstantMean, Mean

from mobster.kernels import ExpDecayMean, ExpDecayResourceKernel
from mobster.yielding import pause_point

SQRT5 = math.sqrt(5.0)
#: Resource pairs up to which :meth:`FixedKernel._terms_table` computes every pair's terms
#: instead of those of the distinct values (a few rung levels) and gathering them.
SMALL_RESOURCE_TABLE = 4096
#: Runs of one resource among the training rows up to which :meth:`FixedKernel.gram` applies the
#: resource terms run by run (a few rung levels; beyond, a slice per pair costs more than a gather).
MAX_GRAM_BLOCKS = 16


class FixedKernel:
    """``k`` and the prior mean of a fitted model (``build_model``'s kernels), for inputs whose
    last column is the resource, with the training inputs ``train_x`` cached.

    Raises ``TypeError`` for a kernel or mean that ``build_model`` does not make.
    """

    def __init__(self, kernel: Kernel, mean: Mean, train_x: torch.Tensor) -> None:
        #: Whether ``k((x, r), (x', r')) = k_x(x, x') * factor(r, r') + added(r, r')``.
        self.separable = isinstance(kernel, ExpDecayResourceKernel)
        with torch.no_grad():
            scaled = kernel.base_kernel if self.separable else kernel
            if not (
                isinstance(scaled, ScaleKernel)
                and isinstance(scaled.base_kernel, MaternKernel)
                and scaled.base_kernel.nu == 2.5
                and isinstance(mean, ExpDecayMean if self.separable else ConstantMean)
            ):
                raise TypeError(f"no fixed form of kernel {type(kernel).__name__} with mean {type(mean).__name__}")
            self._outputscale = scaled.outputscale.detach().reshape(())
            self._lengthscale = scaled.base_kernel.lengthscale.detach().reshape(-1)
            #: Input columns of the Matérn term: the features only when the resource is separate.
            self._columns = train_x.shape[-1] - 1 if self.separable else train_x.shape[-1]
            self._centre = train_x[:, : self._columns].mean(0)
            self._constant = mean.constant.detach().reshape(())
            if self.separable:
                decay = kernel.decay
                self._alpha = decay.value("alpha").detach()
                self._log_beta = torch.log(self._alpha / decay.value("mean_lam").detach())
                self._beta = torch.exp(self._log_beta)
                self._delta = decay.value("delta").detach()
                self._scale = decay.value("gamma").detach() - self._delta * self._constant
            self.train_x = train_x
            self._train_scaled = self._scaled(train_x)
            self._train_norm = self._train_scaled.square().sum(-1)
            values, counts = torch.unique_consecutive(train_x[:, -1], return_counts=True)
            ends = torch.cumsum(counts, 0).tolist()
            #: Runs of consecutive training rows with one resource, ``(first row, end row)``: a
            #: few blocks when the rows are sorted by resource (:class:`~mobster.posterior.ConditionedGP`).
            self.train_runs: list[tuple[int, int]] = list(zip([0, *ends[:-1]], ends))
            self._run_resources = values

    # ----- any inputs -------------------------------------------------------------------------

    def __call__(self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False) -> torch.Tensor:
        """``k(x1, x2)``: ``n1 x n2``, or ``n1`` with ``diag`` (``x1`` and ``x2`` of one length)."""
        if diag:
            pause_point()  # where a background computation steps aside (mobster.yielding)
            k_x = self._matern((self._scaled(x1) - self._scaled(x2)).square().sum(-1))
        else:
            k_x = self.config_kernel(x1[:, : self._columns], x2)  # (a pause point too)
        if not self.separable:
            return k_x
        r1, r2 = x1[:, -1].detach(), x2[:, -1].detach()
        factor, added = self.resource_terms(r1, r2) if diag else self._terms_table(r1, r2)
        return torch.addcmul(added, k_x, factor)

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """The prior mean at ``x``: ``N``."""
        if not self.separable:
            return self._constant.expand(x.shape[0])
        return self.mean_at(x[:, -1])

    # ----- against the training data ------------------------------------------------------------

    def gram(self) -> torch.Tensor:
        """``k(D, D)`` of the training inputs (a distance of exactly zero on the diagonal)."""
        pause_point()
        squared = _squared_distance(self._train_scaled, self._train_norm, self._train_scaled, self._train_norm)
        squared.diagonal().zero_()
        k_x = self._matern(squared)
        if not self.separable:
            return k_x
        if len(self.train_runs) <= MAX_GRAM_BLOCKS:
            # The terms are one number per pair of runs, applied to each rectangle without
            # gathering n x n tables.
            values = self._run_resources
            factor, added = self.resource_terms(values.unsqueeze(-1), values.unsqueeze(-2))
            for i, (top, bottom) in enumerate(self.train_runs):
                for j, (left, right) in enumerate(self.train_runs):
                    k_x[top:bottom, left:right].mul_(factor[i, j]).add_(added[i, j])
            return k_x
        r = self.train_x[:, -1]
        factor, added = self._terms_table(r, r)
        return k_x.mul_(factor).add_(added)  # in place: k_x is this call's own

    def train_columns(self, x: torch.Tensor) -> torch.Tensor:
        """``k(D, x)``: ``n x N``, column-major."""
        return self(x, self.train_x).T

    # ----- the separable parts ------------------------------------------------------------------

    def config_kernel(self, features: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
        """The Matérn term between configuration ``features`` (``b x f``: model inputs without
        the resource) and the model inputs ``others`` (``m x D``; the training inputs cached): ``b x m``."""
        pause_point()
        if others is self.train_x:
            other_scaled, other_norm = self._train_scaled, self._train_norm
        else:
            other_scaled, other_norm = self._scaled(others), None
        return self._matern(_squared_distance(self._scaled(features), None, other_scaled, other_norm))

    def resource_terms(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``factor(a, b)`` and ``added(a, b)`` of a separable kernel, broadcast over resources."""
        ka, kb, k_sum = self._kappa(a), self._kappa(b), self._kappa(a + b)
        factor = 1.0 - self._delta * (ka + kb - self._delta * k_sum)
        return factor, self._scale**2 * (k_sum - ka * kb)

    def prior_variance_at(self, resources: torch.Tensor) -> torch.Tensor:
        """``k((x, r), (x, r))`` of a separable kernel, the same for every ``x``."""
        factor, added = self.resource_terms(resources, resources)
        return self._outputscale * factor + added

    def mean_at(self, resources: torch.Tensor) -> torch.Tensor:
        """The prior mean of a separable model at ``resources``, the same for every ``x``."""
        return self._constant + self._kappa(resources) * self._scale

    # ----- pieces -----------------------------------------------------------------------------

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, : self._columns] - self._centre) / self._lengthscale

    def _matern(self, squared_distance: torch.Tensor) -> torch.Tensor:
        """``s^2 (1 + sqrt5 d + 5/3 d^2) exp(-sqrt5 d)`` (``d`` kept off zero for its gradient, as
        GPyTorch does). Without gradients, in place in ``squared_distance`` (the caller's temporary):
        large matrices cost their memory passes and fresh allocations more than their arithmetic."""
        if squared_distance.requires_grad:
            scaled = squared_distance.clamp_min(1e-30).sqrt() * SQRT5
            polynomial = torch.addcmul(scaled + 1.0, scaled, scaled, value=1.0 / 3.0)
            return polynomial * torch.exp(-scaled) * self._outputscale
        scaled = squared_distance.clamp_min_(1e-30).sqrt_().mul_(SQRT5)
        polynomial = scaled.mul(1.0 / 3.0).add_(1.0).mul_(scaled).add_(1.0)  # 1 + s (1 + s / 3)
        return polynomial.mul_(scaled.neg_().exp_()).mul_(self._outputscale)

    def _kappa(self, r: torch.Tensor) -> torch.Tensor:
        return torch.exp(self._alpha * (self._log_beta - torch.log(r + self._beta)))

    def _terms_table(self, r1: torch.Tensor, r2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`resource_terms` of every pair, ``n1 x n2``: resources take a few values (the
        rungs), so the terms are computed on the distinct values and gathered. When ``r1`` holds
        one value (the rescue's predictions, all at the full resource), ``1 x n2``, broadcast.
        A small table is computed directly: there finding the distinct values costs more."""
        if r1.numel() * r2.numel() <= SMALL_RESOURCE_TABLE:
            return self.resource_terms(r1.unsqueeze(-1), r2.unsqueeze(-2))
        (u1, i1), (u2, i2) = (torch.unique(r, return_inverse=True) for r in (r1, r2))
        factor, added = self.resource_terms(u1.unsqueeze(-1), u2.unsqueeze(-2))
        rows = slice(None) if len(u1) == 1 else i1
        return factor[rows][:, i2], added[rows][:, i2]


def _squared_distance(
    a: torch.Tensor, a_norm: torch.Tensor | None, b: torch.Tensor, b_norm: torch.Tensor | None
) -> torch.Tensor:
    """``|a_i - b_j|^2`` (``n x m``, never negative) from the rows' squared norms."""
    a_norm = a.square().sum(-1) if a_norm is None else a_norm
    b_norm = b.square().sum(-1) if b_norm is None else b_norm
    return torch.addmm(a_norm.unsqueeze(-1) + b_norm.unsqueeze(-2), a, b.T, alpha=-2.0).clamp_min(0.0)


__all__ = ["FixedKernel"]
