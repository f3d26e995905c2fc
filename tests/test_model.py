"""The joint GP: kernels are valid covariances and the model learns a multi-fidelity function."""

import numpy as np
import pytest
import torch

from mobster.kernels import ExpDecayParameters
from mobster.model import KERNELS, build_model, fit_model


def synthetic_curve(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """A learning curve: final error depends on x; the decay's amplitude depends a little on x.

    (The default exp-decay-sum kernel models a decay shared by all configurations plus a function
    of x; this curve is close to, but not inside, that model class.)"""
    final = (x[:, 0] - 0.3) ** 2 + 0.5 * (x[:, 1] - 0.6) ** 2
    return final + (0.5 + 0.2 * x[:, 1]) * np.exp(-r / 5.0)


def training_data(n_trials: int, r_max: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs, rs = [], []
    for x in rng.random((n_trials, 2)):
        for r in [1, 3, 9, 27][: rng.integers(1, 5)]:
            xs.append(x)
            rs.append(min(r, r_max))
    x, r = np.array(xs), np.array(rs, dtype=float)
    return x, r, synthetic_curve(x, r)


def as_inputs(x: np.ndarray, r: np.ndarray, r_max: int) -> torch.Tensor:
    return torch.tensor(np.column_stack([x, (r - 0.5) / (r_max - 0.5)]), dtype=torch.float64)


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_matrices_are_positive_definite(kernel):
    rng = np.random.default_rng(1)
    x = torch.tensor(np.column_stack([rng.random((60, 3)), rng.choice([0.02, 0.1, 0.3, 1.0], 60)]))
    model = build_model(x, torch.zeros(60, 1, dtype=torch.float64), kernel)
    for alpha, mean_lam, gamma in [(1.0, 0.5, 0.5), (200.0, 40.0, 1.0), (1e-3, 1e-3, 1e-3)]:
        if kernel != "matern52":
            decay: ExpDecayParameters = model.covar_module.decay
            for name, value in (("alpha", alpha), ("mean_lam", mean_lam), ("gamma", gamma)):
                constraint = getattr(decay, f"raw_{name}_constraint")
                setattr(decay, f"raw_{name}", torch.nn.Parameter(constraint.inverse_transform(torch.tensor(value))))
        with torch.no_grad():
            matrix = model.covar_module(x).to_dense()
        assert torch.allclose(matrix, matrix.T)
        assert torch.linalg.eigvalsh(matrix).min() > -1e-8


def test_resource_kernel_mean_decays_towards_the_constant():
    x = torch.tensor([[0.5, 0.01], [0.5, 0.5], [0.5, 1.0]], dtype=torch.float64)
    model = build_model(x, torch.zeros(3, 1, dtype=torch.float64), "exp-decay-sum")
    with torch.no_grad():
        mean = model.mean_module(x)
    assert mean[0] > mean[1] > mean[2]  # kappa(r) * gamma shrinks with r


@pytest.mark.parametrize("kernel", ["exp-decay-sum", "matern52"])
def test_gp_predicts_full_resource_better_than_a_constant(kernel):
    r_max = 27
    x, r, y = training_data(60, r_max, seed=0)
    mean, std = y.mean(), y.std()
    model = fit_model(build_model(as_inputs(x, r, r_max), torch.tensor((y - mean) / std).unsqueeze(-1), kernel))
    test_x = np.random.default_rng(5).random((200, 2))
    test_r = np.full(200, float(r_max))
    truth = synthetic_curve(test_x, test_r)
    with torch.no_grad():
        predicted = model.posterior(as_inputs(test_x, test_r, r_max)).mean.squeeze(-1).numpy() * std + mean
    gp_error = np.mean((predicted - truth) ** 2)
    constant_error = np.mean((truth - truth.mean()) ** 2)  # the best constant, even knowing the truth
    assert gp_error < 0.25 * constant_error
    rank = np.corrcoef(np.argsort(np.argsort(predicted)), np.argsort(np.argsort(truth)))[0, 1]
    assert rank > 0.8
