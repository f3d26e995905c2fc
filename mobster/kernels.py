"""The exponential-decay resource kernel and its mean function (GPyTorch modules).

Inputs are ``(x, r)`` with the resource ``r`` in the last column (scaled to (0, 1]). With
``kappa(r) = (beta / (r + beta)) ** alpha`` and ``beta = alpha / mean_lam`` (the Laplace transform
of a Gamma-distributed decay rate, which is why ``kappa(r + r') - kappa(r) kappa(r')`` is a valid
covariance), the reference implementation's family is::

    k((x,r),(x',r')) = k_x(x,x') * [1 - delta*(kappa(r) + kappa(r') - delta*kappa(r+r'))]
                       + (gamma - delta*mu_x)**2 * [kappa(r+r') - kappa(r)*kappa(r')]
    mu(x, r)         = mu_x + kappa(r) * (gamma - delta*mu_x)

``delta = 0`` is ``exp-decay-sum`` (the reference's default), ``delta`` learned in [0, 1] is
``exp-decay-combined`` (this library's default). ``gamma`` is shared by kernel and mean, so it lives in one module,
:class:`ExpDecayParameters`, that both hold.
"""

from __future__ import annotations

import torch
from gpytorch.constraints import Interval
from gpytorch.kernels import Kernel
from gpytorch.means import Mean
from gpytorch.module import Module

from mobster.yielding import pause_point


class ExpDecayParameters(Module):
    """alpha, mean_lam, gamma (and optionally delta), with the reference's bounds and inits."""

    # name -> (lower bound, upper bound, initial value), as in the reference implementation.
    BOUNDS = {
        "alpha": (1e-6, 250.0, 1.0),
        "mean_lam": (1e-4, 50.0, 0.5),
        "gamma": (1e-4, 5.0, 0.5),
        "delta": (0.0, 1.0, 0.5),
    }

    def __init__(self, learn_delta: bool = False) -> None:
        super().__init__()
        self.learn_delta = learn_delta
        names = ["alpha", "mean_lam", "gamma"] + (["delta"] if learn_delta else [])
        for name in names:
            low, high, init = self.BOUNDS[name]
            constraint = Interval(low, high)
            raw = constraint.inverse_transform(torch.tensor(init, dtype=torch.get_default_dtype()))
            self.register_parameter(f"raw_{name}", torch.nn.Parameter(raw))
            self.register_constraint(f"raw_{name}", constraint)

    def value(self, name: str) -> torch.Tensor:
        if name == "delta" and not self.learn_delta:
            return torch.zeros((), dtype=self.raw_gamma.dtype, device=self.raw_gamma.device)
        return getattr(self, f"raw_{name}_constraint").transform(getattr(self, f"raw_{name}"))

    def kappa(self, r: torch.Tensor) -> torch.Tensor:
        """``(beta / (r + beta)) ** alpha`` computed in log space for stability."""
        alpha = self.value("alpha")
        beta = alpha / self.value("mean_lam")
        return torch.exp(alpha * (torch.log(beta) - torch.log(r + beta)))

    def kappas(self, *resources: torch.Tensor) -> list[torch.Tensor]:
        """``kappa`` of several tensors, transforming the parameters once."""
        alpha = self.value("alpha")
        log_beta = torch.log(alpha / self.value("mean_lam"))
        beta = torch.exp(log_beta)
        return [torch.exp(alpha * (log_beta - torch.log(r + beta))) for r in resources]


class ExpDecayResourceKernel(Kernel):
    """Joint kernel over ``(x, r)``: ``base_kernel`` on x, exponential decay in r (last column).

    Args:
        base_kernel: Kernel over the configuration features (e.g. a scaled Matérn-5/2 ARD).
        decay: The shared decay parameters.
        mean_x: The constant ``mu_x`` (only used when ``delta > 0``), a callable returning it.
    """

    has_lengthscale = False

    def __init__(self, base_kernel: Kernel, decay: ExpDecayParameters, mean_module: "ExpDecayMean") -> None:
        super().__init__()
        self.base_kernel = base_kernel
        self.decay = decay
        # Not registered as a submodule: the mean is owned by the model; this avoids a cycle.
        self._mean_ref = [mean_module]

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **params) -> torch.Tensor:
        # Every model computation evaluates this kernel every few milliseconds: where a
        # background computation steps aside for a framework callback (see mobster.yielding).
        pause_point()
        r1, r2 = x1[..., -1], x2[..., -1]
        delta = self.decay.value("delta")
        scale = self.decay.value("gamma") - delta * self._mean_ref[0].constant

        def resource_terms(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """The factor on ``k_x`` and the added term, for resources ``a`` against ``b``."""
            kr1, kr2, k_sum = self.decay.kappas(a, b, a + b)
            return 1.0 - delta * (kr1 + kr2 - delta * k_sum), scale**2 * (k_sum - kr1 * kr2)

        if diag:
            k_x = self.base_kernel.forward(x1[..., :-1], x2[..., :-1], diag=True, **params)
            if hasattr(k_x, "to_dense"):
                k_x = k_x.to_dense()
            factor, added = resource_terms(r1, r2)
            return k_x * factor + added
        # Inputs often come in runs of equal configurations (a fit's subset of trials, each at
        # its rungs; candidates at several resources): the kernel over configurations is
        # computed once per run. (Predictions go through mobster.fixed_kernel instead.)
        (f1, g1), (f2, g2) = _runs(x1[..., :-1]), _runs(x2[..., :-1])
        k_x = self.base_kernel.forward(f1, f2, **params)
        if hasattr(k_x, "to_dense"):
            k_x = k_x.to_dense()
        if g1 > 1:
            k_x = k_x.repeat_interleave(g1, dim=-2)
        pattern = _repeated_pattern(r2, g2)
        if pattern is not None:
            # Every run of x2 holds the same resources in the same order (the acquisition's
            # candidates): the resource terms are n1 x g2, broadcast over the runs, and the
            # n1 x n2 result is built in one pass (no repeat of k_x, no gather by index).
            factor, added = resource_terms(r1.unsqueeze(-1), pattern.unsqueeze(-2))
            combined = k_x.unsqueeze(-1) * factor.unsqueeze(-2) + added.unsqueeze(-2)
            return combined.reshape(*k_x.shape[:-1], -1)
        if g2 > 1:
            k_x = k_x.repeat_interleave(g2, dim=-1)
        if r1.dim() == 1 and r2.dim() == 1:
            # Resources take a few values (the rungs): both terms are a small table, gathered.
            # Resources are data here, never optimised, so the table needs no gradient in them.
            (u1, i1), (u2, i2) = (torch.unique(r.detach(), return_inverse=True) for r in (r1, r2))
            if len(u2) == 1:  # one resource on one side (predictions at the full resource): rows broadcast
                factor, added = resource_terms(u1, u2)
                return k_x * factor[i1].unsqueeze(-1) + added[i1].unsqueeze(-1)
            if len(u1) * len(u2) * 8 <= len(r1) * len(r2):
                factor, added = resource_terms(u1.unsqueeze(-1), u2.unsqueeze(-2))
                index = i1.unsqueeze(-1) * len(u2) + i2.unsqueeze(-2)
                return k_x * factor.reshape(-1)[index] + added.reshape(-1)[index]
        factor, added = resource_terms(r1.unsqueeze(-1), r2.unsqueeze(-2))
        return k_x * factor + added


def _repeated_pattern(resources: torch.Tensor, g: int) -> torch.Tensor | None:
    """The ``g`` resources of the first run when every run of ``g`` rows repeats them, else ``None``."""
    if g <= 1 or resources.dim() != 1:
        return None
    with torch.no_grad():
        runs = resources.view(-1, g)
        if not bool((runs == runs[:1]).all()):
            return None
    return resources[:g]


def _runs(features: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(rows, g)`` when the ``N x d`` rows come in runs of ``g > 1`` equal rows (``rows``: one
    per run), else ``(features, 1)``. Costs a comparison of every row, nothing next to a kernel."""
    n = features.shape[-2]
    if features.dim() != 2 or n < 2:
        return features, 1
    with torch.no_grad():
        same_as_first = (features == features[0]).all(-1)
        g = n if bool(same_as_first.all()) else int(torch.argmin(same_as_first.to(torch.int8)))
        if g <= 1 or n % g:
            return features, 1
        runs = features.view(n // g, g, -1)
        if not bool((runs == runs[:, :1]).all()):
            return features, 1
    return features.view(n // g, g, -1)[:, 0], g


class ExpDecayMean(Mean):
    """``mu(x, r) = mu_x + kappa(r) * (gamma - delta * mu_x)`` with a learned constant ``mu_x``."""

    def __init__(self, decay: ExpDecayParameters) -> None:
        super().__init__()
        self.decay_ref = [decay]  # owned by the kernel; see ExpDecayResourceKernel
        self.register_parameter("raw_constant", torch.nn.Parameter(torch.zeros(())))

    @property
    def constant(self) -> torch.Tensor:
        return self.raw_constant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        decay = self.decay_ref[0]
        delta = decay.value("delta")
        return self.constant + decay.kappa(x[..., -1]) * (decay.value("gamma") - delta * self.constant)
