"""The joint GP over (configuration features, resource), built and fitted with BoTorch/GPyTorch."""

from __future__ import annotations

import math
import warnings
from typing import Literal

import gpytorch
import torch
from botorch.exceptions.warnings import OptimizationWarning
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import ScaleKernel
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.means import ConstantMean
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import GammaPrior, LogNormalPrior
from linear_operator.utils.cholesky import psd_safe_cholesky
from linear_operator.utils.warnings import NumericalWarning

# Building a GPyTorch kernel calls torch.broadcast_shapes, whose first call imports torch's
# symbolic-shape module and SymPy: 0.2 to 0.7 s of CPU. Imported here, with the library, so
# that the first suggestion (inside a framework's callback, in every process) does not pay it.
import torch.fx.experimental.symbolic_shapes  # noqa: E402,F401  isort: skip

from mobster.kernels import ExpDecayMean, ExpDecayParameters, ExpDecayResourceKernel
from mobster.posterior import dense

KernelName = Literal["exp-decay-sum", "exp-decay-combined", "matern52"]
KERNELS: tuple[str, ...] = ("exp-decay-sum", "exp-decay-combined", "matern52")
#: The default resource kernel. The reference's default is ``exp-decay-sum``, whose decay is the
#: same for every configuration: it cannot represent curves that cross (good early, overfitting
#: late), which ``exp-decay-combined`` can (config-dependent part growing with the resource).
DEFAULT_KERNEL: KernelName = "exp-decay-combined"

#: L-BFGS-B iterations of a fit from default hyperparameters, and of one warm-started from the
#: previous fit, which starts close to the optimum (10% more data moves it little). Warm fits of
#: an mlp_digits run took 15 to 50 iterations; the cap of 25 halves their cost, a decision-time
#: target of the benchmark, at the price of hyperparameters that are a little less polished.
FIT_MAXITER = 100
WARM_FIT_MAXITER = 25
#: Lower bound of the Matérn kernel's scale (targets are standardised, so the scale is ~1).
MIN_OUTPUTSCALE = 1e-4


def validate_kernel(kernel: str) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")


def _matern(num_dims: int) -> ScaleKernel:
    # Matérn-5/2 ARD with a scale, as in the reference, but with BoTorch's dimension-scaled
    # log-normal lengthscale prior (Hvarfner et al. 2024) instead of the reference's flat bounds:
    # flat bounds with a sigmoid transform start the fit at a huge lengthscale where the marginal
    # likelihood is flat, and the fit then explains everything as noise.
    # The scale is kept off zero: on a few points L-BFGS-B can drive a softplus-positive scale
    # to exactly 0.0, where the log-normal prior is undefined and the whole fit raises.
    matern = get_covar_module_with_dim_scaled_prior(ard_num_dims=num_dims, use_rbf_kernel=False)
    return ScaleKernel(
        matern, outputscale_prior=LogNormalPrior(0.0, 1.0), outputscale_constraint=GreaterThan(MIN_OUTPUTSCALE)
    )


def build_model(train_x: torch.Tensor, train_y: torch.Tensor, kernel: KernelName) -> SingleTaskGP:
    """A GP over ``train_x`` (features, then the scaled resource in the last column).

    ``train_y`` must be standardised (``n x 1``); no outcome transform is applied.
    """
    validate_kernel(kernel)
    num_features = train_x.shape[-1] - 1
    likelihood = GaussianLikelihood(noise_prior=GammaPrior(0.1, 1.0), noise_constraint=GreaterThan(1e-6))
    likelihood.noise = 1e-3
    if kernel == "matern52":
        covar, mean = _matern(num_features + 1), ConstantMean()
    else:
        decay = ExpDecayParameters(learn_delta=kernel == "exp-decay-combined")
        mean = ExpDecayMean(decay)
        covar = ExpDecayResourceKernel(_matern(max(num_features, 1)), decay, mean)
    model = SingleTaskGP(
        train_x, train_y, likelihood=likelihood, covar_module=covar, mean_module=mean, outcome_transform=None
    )
    return model.to(train_x)


def hyperparameters(model: SingleTaskGP) -> dict[str, torch.Tensor]:
    """The fitted hyperparameters, to warm-start the next fit."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "raw_" in k}


def apply_hyperparameters(model: SingleTaskGP, params: dict[str, torch.Tensor] | None) -> bool:
    """Load ``params`` into ``model`` where names and shapes match; ``True`` if all of them did."""
    if not params:
        return False
    own = model.state_dict()
    compatible = {k: v.to(own[k]) for k, v in params.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict({**own, **compatible})
    return len(compatible) == len(params) == len(hyperparameters(model))


class _GaussianNegLogLikelihood(torch.autograd.Function):
    """``0.5 r^T K^-1 r + 0.5 log|K|`` with its gradient in closed form.

    Autograd through a Cholesky factorisation and a triangular solve costs about three times the
    forward pass (most of a fit's time at a few hundred points); the closed form
    ``dL/dK = 0.5 (K^-1 - a a^T)``, ``dL/dr = a`` with ``a = K^-1 r`` needs one
    ``cholesky_inverse``.
    """

    @staticmethod
    def forward(ctx, covariance: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        factor = psd_safe_cholesky(covariance)  # GPyTorch's own: escalating jitter, then NotPSDError
        alpha = torch.cholesky_solve(residual.unsqueeze(-1), factor).squeeze(-1)
        ctx.save_for_backward(factor, alpha)
        return 0.5 * (residual * alpha).sum() + torch.log(torch.diagonal(factor)).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        factor, alpha = ctx.saved_tensors
        grad_covariance = 0.5 * grad * (torch.cholesky_inverse(factor) - torch.outer(alpha, alpha))
        return grad_covariance, grad * alpha


class FastExactMarginalLogLikelihood(ExactMarginalLogLikelihood):
    """GPyTorch's exact marginal log likelihood (plus the priors), computed on the dense kernel
    matrix with :class:`_GaussianNegLogLikelihood`: the same value, at about half the cost of a
    gradient. For a single-output :class:`SingleTaskGP` with a Gaussian likelihood (ours)."""

    def forward(self, function_dist, target, *params, **kwargs):  # noqa: ARG002 (dense path)
        train_x = self.model.train_inputs[0]
        covariance = dense(self.model.covar_module.forward(train_x, train_x))
        noise = self.likelihood.noise.reshape(-1)[0]
        covariance = covariance + noise * torch.eye(len(train_x), dtype=train_x.dtype, device=train_x.device)
        residual = target - self.model.mean_module(train_x)
        log_likelihood = -_GaussianNegLogLikelihood.apply(covariance, residual)
        log_likelihood = log_likelihood - 0.5 * len(train_x) * math.log(2 * math.pi)
        return self._add_other_terms(log_likelihood, params).div_(len(train_x))


def ignore_jitter_warnings() -> None:
    """Inside ``warnings.catch_warnings()``: hide linear_operator's notice that it added jitter to
    a nearly singular covariance. Near-duplicate configurations (a grid, a model that keeps
    proposing one region) cause it; the computation goes on and no user can act on it."""
    warnings.filterwarnings("ignore", "A not p.d., added jitter", NumericalWarning)


def fit_model(model: SingleTaskGP, warm_start: dict[str, torch.Tensor] | None = None) -> SingleTaskGP:
    """Type-II MAP fit (L-BFGS-B on the marginal likelihood plus priors), warm-started if possible.

    Raises gpytorch's ``NotPSDError`` (or ``RuntimeError``) when the fit fails numerically.
    """
    warm = apply_hyperparameters(model, warm_start)
    mll = FastExactMarginalLogLikelihood(model.likelihood, model)
    with warnings.catch_warnings():
        # An L-BFGS-B run that stops at its iteration limit is fine for a warm-started fit.
        warnings.simplefilter("ignore", OptimizationWarning)
        ignore_jitter_warnings()
        maxiter = WARM_FIT_MAXITER if warm else FIT_MAXITER
        fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": maxiter}}, max_attempts=2)
    model.eval()
    return model


def cholesky_jitter(level: int) -> gpytorch.settings.cholesky_jitter:
    """Escalating jitter for retries after a failed Cholesky factorisation."""
    return gpytorch.settings.cholesky_jitter(float_value=1e-6 * 100**level, double_value=1e-8 * 100**level)

