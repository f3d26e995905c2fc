"""The joint GP: kernels are valid covariances and the model learns a multi-fidelity function."""

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from mobster.kernels import ExpDecayParameters
from mobster.model import KERNELS, MIN_OUTPUTSCALE, apply_hyperparameters, build_model, fit_model, hyperparameters


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


def test_fit_on_few_points_keeps_the_kernel_scale_positive():
    # Nine rung results from a hgb_breast_cancer run (one-hot loss, five unit features, resource
    # 1 or 3 of 81; standardised targets) on which L-BFGS-B drove the Matérn scale to exactly 0.0,
    # where its log-normal prior raised: every fit failed and the suggestion fell back to random.
    features = torch.tensor(
        [
            [0.9657491980429997, 0.7777024105738202, 0.9726011139048932, 0.2378759202707264, 0.8262822354443189],
            [0.9657491980429997, 0.7777024105738202, 0.9726011139048932, 0.2378759202707264, 0.8262822354443189],
            [0.2984494708891794, 0.6416133447590692, 0.058512491882074746, 0.725670484533391, 0.13070098600339122],
            [0.35833378270496974, 0.2562799493266302, 0.9490941816782104, 0.3602804873042328, 0.13070098600339122],
            [0.8738134432795387, 0.03190366643989476, 0.008715732303784899, 0.04582562520117321, 0.6283260283811849],
            [0.8738134432795387, 0.03190366643989476, 0.008715732303784899, 0.04582562520117321, 0.6283260283811849],
            [0.855302514932059, 0.8110233987843422, 0.2614463614164766, 0.04582562520117321, 0.9473112724881844],
            [0.855302514932059, 0.8110233987843422, 0.2614463614164766, 0.04582562520117321, 0.9473112724881844],
            [0.014529632033217305, 0.7854359127046001, 0.6149674269771402, 0.868741105098169, 0.337857147626047],
        ],
        dtype=torch.float64,
    )
    loss = torch.nn.functional.one_hot(torch.tensor([2, 2, 0, 2, 1, 1, 2, 2, 1]), 3).to(torch.float64)
    resource = (torch.tensor([1, 3, 1, 1, 1, 3, 1, 3, 1], dtype=torch.float64) - 0.5) / 80.5
    x = torch.cat([loss, features, resource.unsqueeze(-1)], dim=-1)
    y = torch.tensor(
        [
            0.3243525552227204, -2.1297022787340634, 0.5245040691600891, 0.7618060426305926,
            0.812986963652389, 0.7944527489182309, 0.3243525552227204, -1.4508452903474878, 0.03809263427480749,
        ],
        dtype=torch.float64,
    )
    model = fit_model(build_model(x, y.unsqueeze(-1), "exp-decay-combined"))
    assert float(model.covar_module.base_kernel.outputscale.detach()) >= MIN_OUTPUTSCALE
    with torch.no_grad():
        posterior = model.posterior(x)
    assert torch.isfinite(posterior.mean).all() and (posterior.variance > 0).all()


def test_conditioning_on_extra_points_matches_the_posterior_given_all_the_data() -> None:
    # The rescue of late bloomers adds a trial's new results to the last model without refitting:
    # that must be the exact posterior of the same GP given the old data and the new points.
    from mobster.posterior import ConditionedGP

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(30, 3, generator=generator, dtype=torch.float64)
    y = torch.sin(6 * x[:, :1]) + x[:, 1:2]
    y = (y - y.mean()) / y.std()
    y[25:] += 1.5  # results the first model did not expect
    fitted = fit_model(build_model(x[:25], y[:25], "exp-decay-combined"))
    fitted.likelihood.noise = 1e-2  # well conditioned: the two routes then agree to rounding
    everything = build_model(x, y, "exp-decay-combined")
    apply_hyperparameters(everything, hyperparameters(fitted))
    queries = torch.cat([torch.rand(7, 3, generator=generator, dtype=torch.float64), x[25:] + 0.01])
    added = ConditionedGP(fitted).mean_given(queries, x[25:], y[25:, 0])
    direct = ConditionedGP(everything.eval()).mean(queries)
    assert torch.allclose(added, direct, atol=1e-6)
    assert not torch.allclose(added, ConditionedGP(fitted).mean(queries), atol=1e-3)  # the points matter


def test_stored_predictions_at_the_full_resource_match_the_posterior_in_any_order(monkeypatch) -> None:
    # A rescue decision reads the predictions the last suggestion stored (rows of blocks), adds
    # older configurations on demand and new results of one trial: every answer must be the GP's
    # own posterior mean, whatever the order, repeats and blocks of the store.
    from mobster import searcher
    from mobster.posterior import ConditionedGP
    from mobster.searcher import FittedPosterior
    from mobster.targets import TargetTransform

    monkeypatch.setattr(searcher, "RESCUE_CHUNK", 4)  # blocks of 4 rows: many blocks, small ones merged

    generator = torch.Generator().manual_seed(1)
    x = torch.rand(40, 3, generator=generator, dtype=torch.float64)
    y = torch.sin(6 * x[:, :1]) + x[:, 1:2]
    y = (y - y.mean()) / y.std()
    gp = ConditionedGP(fit_model(build_model(x, y, "exp-decay-combined")))
    queries = torch.cat([torch.rand(30, 2, generator=generator, dtype=torch.float64), torch.ones(30, 1, dtype=torch.float64)], -1)
    keys = [f"config {k}".encode() for k in range(30)]
    stored = FittedPosterior(gp, TargetTransform.fit(y[:, 0].numpy()), frozenset())
    stored.remember_at_full(keys[:3], queries[:3])
    stored.remember_at_full(keys[:3], queries[:3])  # known ones are not added again
    order = [29, 0, 7, 7, 15, 2, 28]  # a repeat, and configurations it has not seen
    assert stored.missing([keys[k] for k in order]) == [0, 2, 3, 4, 6]  # the repeat twice
    new = [order[k] for k in (0, 2, 3, 4, 6)]
    stored.remember_at_full([keys[k] for k in new], queries[new])  # the repeat stored once
    assert stored.missing([keys[k] for k in order]) == []
    assert torch.allclose(stored.predict_at_full([keys[k] for k in order]), gp.mean(queries[order]), atol=1e-10)
    stored.remember_at_full(keys, queries)  # the rest, in new blocks
    assert max(len(block) for block in stored._columns) <= 4 and len(stored._columns) >= 8
    extra_x = torch.cat([queries[:2, :2], torch.full((2, 1), 0.3, dtype=torch.float64)], -1)
    extra_y = torch.tensor([2.0, -1.0], dtype=torch.float64)
    added = stored.predict_at_full([keys[k] for k in order], extra_x, extra_y)
    assert torch.allclose(added, gp.mean_given(queries[order], extra_x, extra_y), atol=1e-10)
    assert not torch.allclose(added, gp.mean(queries[order]), atol=1e-3)  # the new results matter


@pytest.mark.parametrize("kernel", ["exp-decay-sum", "exp-decay-combined"])
def test_resource_kernel_shortcuts_give_the_plain_formula_and_its_gradient(kernel):
    """The kernel computes the configuration part once per run of equal configurations and the
    resource part as a table over distinct resources; both must equal the formula written out."""
    rng = np.random.default_rng(4)
    train = torch.tensor(np.column_stack([rng.random((40, 3)), rng.choice([0.02, 0.1, 0.3, 1.0], 40)]))
    model = build_model(train, torch.zeros(40, 1, dtype=torch.float64), kernel)
    covar = model.covar_module
    decay = covar.decay
    with torch.no_grad():
        decay.raw_alpha.fill_(0.3)
        if decay.learn_delta:
            decay.raw_delta.fill_(0.2)
    # Candidates as the acquisition asks for them: each configuration at four resources in a row.
    configs = torch.tensor(rng.random((25, 3)), requires_grad=True)
    resources = torch.tensor([0.5, 0.02, 0.1, 0.3], dtype=torch.float64)
    candidates = torch.cat([configs.repeat_interleave(4, 0), resources.repeat(25).unsqueeze(-1)], dim=-1)

    def plain(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        k_x = covar.base_kernel.forward(x1[:, :-1], x2[:, :-1]).to_dense()
        r1, r2 = x1[:, -1:], x2[:, -1].unsqueeze(0)
        kr1, kr2, k_sum = decay.kappa(r1), decay.kappa(r2), decay.kappa(r1 + r2)
        delta = decay.value("delta")
        scale = decay.value("gamma") - delta * model.mean_module.constant
        return k_x * (1 - delta * (kr1 + kr2 - delta * k_sum)) + scale**2 * (k_sum - kr1 * kr2)

    fast = covar.forward(train, candidates)
    expected = plain(train, candidates)
    assert torch.allclose(fast, expected, rtol=1e-12, atol=1e-12)
    (grad_fast,) = torch.autograd.grad(fast.sum(), configs)
    (grad_plain,) = torch.autograd.grad(plain(train, candidates).sum(), configs)
    assert torch.allclose(grad_fast, grad_plain, rtol=1e-10, atol=1e-12)
    assert torch.allclose(covar.forward(candidates, train), expected.T, rtol=1e-12, atol=1e-12)
    # Runs whose resources differ from run to run take the general path: the same formula.
    mixed = candidates.detach().clone()
    mixed[4:8, -1] = torch.tensor([0.3, 0.5, 0.02, 0.1], dtype=torch.float64)
    assert torch.allclose(covar.forward(train, mixed), plain(train, mixed), rtol=1e-12, atol=1e-12)
    # One resource on one side (predictions at the full resource): rows broadcast, same formula.
    at_full = torch.cat([configs.detach(), torch.ones(25, 1, dtype=torch.float64)], dim=-1)
    assert torch.allclose(covar.forward(train, at_full), plain(train, at_full), rtol=1e-12, atol=1e-12)
    # Hyperparameter gradients (the fit's) flow through the resource table too.
    (grad_alpha,) = torch.autograd.grad(covar.forward(train, train).sum(), decay.raw_alpha)
    (plain_alpha,) = torch.autograd.grad(plain(train, train).sum(), decay.raw_alpha)
    assert torch.allclose(grad_alpha, plain_alpha, rtol=1e-10)


@pytest.mark.parametrize("kernel", KERNELS)
def test_fixed_kernel_computes_what_the_fitted_modules_compute(kernel):
    """Predictions use the kernel and mean with their hyperparameters read once (FixedKernel);
    every form of it must equal GPyTorch's modules, and the acquisition's path (each
    configuration at several resources) must equal the moments at the stacked inputs."""
    from mobster.fantasy import FantasizedModel
    from mobster.fixed_kernel import FixedKernel

    x, r, y = training_data(40, 27, seed=5)
    train_x = as_inputs(x, r, 27)
    train_y = torch.tensor((y - y.mean()) / y.std()).unsqueeze(-1)
    model = fit_model(build_model(train_x, train_y, kernel))
    fixed = FixedKernel(model.covar_module, model.mean_module, train_x)

    def modules(a: torch.Tensor, b: torch.Tensor, **kwargs) -> torch.Tensor:
        out = model.covar_module.forward(a, b, **kwargs)
        return out.to_dense() if hasattr(out, "to_dense") else out

    rng = np.random.default_rng(6)
    at_rungs = as_inputs(rng.random((9, 2)), rng.choice([1.0, 3.0, 9.0, 27.0], 9), 27)
    at_full = as_inputs(rng.random((9, 2)), np.full(9, 27.0), 27)
    anywhere = as_inputs(rng.random((9, 2)), rng.uniform(1.0, 27.0, 9), 27)
    assert torch.allclose(fixed.gram(), modules(train_x, train_x), atol=1e-12)
    in_runs = train_x[torch.argsort(train_x[:, -1], stable=True)]  # runs of one resource: by rectangles
    gram_in_runs = FixedKernel(model.covar_module, model.mean_module, in_runs).gram()
    assert torch.allclose(gram_in_runs, modules(in_runs, in_runs), atol=1e-12)
    for points in (at_rungs, at_full, anywhere):
        assert torch.allclose(fixed.train_columns(points), modules(train_x, points), atol=1e-12)
        assert torch.allclose(fixed(points, anywhere), modules(points, anywhere), atol=1e-12)
        assert torch.allclose(fixed(points, points, diag=True), modules(points, points, diag=True), atol=1e-12)
        assert torch.allclose(fixed.mean(points), model.mean_module(points), atol=1e-12)
    assert fixed.separable == (kernel != "matern52")
    # Large tables take the path over distinct resources (small ones are computed pair by pair).
    big = np.random.default_rng(7)
    many_rungs = as_inputs(big.random((150, 2)), big.choice([1.0, 3.0, 9.0, 27.0], 150), 27)
    many_full = as_inputs(big.random((150, 2)), np.full(150, 27.0), 27)
    for points in (many_rungs, many_full):
        assert torch.allclose(fixed.train_columns(points), modules(train_x, points), atol=1e-12)
        assert torch.allclose(fixed(points, many_rungs), modules(points, many_rungs), atol=1e-12)

    # The acquisition's path against the generic one, values and gradients in the features.
    gp = FantasizedModel(model, anywhere[:4], num_fantasies=5, seed=0)
    resources = (1.0, 0.1, 0.3)
    features = torch.tensor(rng.random((6, 2)), requires_grad=True)
    means, variances = gp.moments_at_resources(features, resources)
    stacked = torch.cat(
        [features.repeat_interleave(3, 0), torch.tensor(resources, dtype=torch.float64).repeat(6).unsqueeze(-1)], -1
    )
    expected_means, expected_variances = gp.moments(stacked)
    assert means.shape == variances.shape == (6, 3, 5)
    assert torch.allclose(means.reshape(18, 5), expected_means, atol=1e-10)
    assert torch.allclose(variances.reshape(18, 5), expected_variances, atol=1e-10)
    (grad,) = torch.autograd.grad((means.sin() + variances).sum(), features)
    (expected_grad,) = torch.autograd.grad((expected_means.sin() + expected_variances).sum(), features)
    # (the two paths sum terms in different orders; the solves amplify rounding to ~1e-8 of the largest)
    assert torch.allclose(grad, expected_grad, rtol=1e-6, atol=1e-6 * float(expected_grad.abs().max()))
    with torch.no_grad():  # the in-place path (no gradients) gives the same numbers
        assert torch.allclose(gp.moments_at_resources(features, resources)[1], variances, atol=1e-12)


@pytest.mark.parametrize("kernel", ["exp-decay-sum", "exp-decay-combined"])
def test_pool_moments_by_blocks_of_one_resource_match_the_direct_solves(kernel, monkeypatch) -> None:
    """The acquisition's pool is solved by blocks of training rows with one resource
    (FantasizedModel._whitened_by_blocks); it must give the direct solves' moments, and the
    training rows' new order (by resource) must leave the posterior GPyTorch's."""
    import mobster.fantasy as fantasy
    from mobster.posterior import ConditionedGP

    rng = np.random.default_rng(9)
    x, r, y = training_data(60, 27, seed=8)  # each trial's rungs in turn: rows out of resource order
    off_rungs = rng.uniform(1.0, 27.0, len(r))  # every row a resource of its own: one-row blocks
    for resources_of_rows, expect_blocks in ((r, True), (off_rungs, False)):
        train_x = as_inputs(x, resources_of_rows, 27)
        train_y = torch.tensor((y - y.mean()) / y.std()).unsqueeze(-1)
        model = fit_model(build_model(train_x, train_y, kernel))
        gp = ConditionedGP(model)
        assert torch.equal(gp.train_x[:, -1], gp.train_x[:, -1].sort().values)
        assert len(gp.kernel.train_runs) == len(np.unique(resources_of_rows))
        queries = as_inputs(rng.random((7, 2)), rng.choice([1.0, 3.0, 9.0, 27.0], 7), 27)
        with torch.no_grad():
            assert torch.allclose(gp.mean(queries), model.posterior(queries).mean.squeeze(-1), atol=1e-8)
        pending = as_inputs(rng.random((5, 2)), rng.choice([3.0, 9.0], 5), 27)
        model_with_pending = fantasy.FantasizedModel(model, pending, num_fantasies=6, seed=1)
        features, resources = torch.tensor(rng.random((200, 2))), (0.1, 0.3, 1.0)
        # Rung-shaped data takes the blocks by default, one-row blocks the direct solves.
        assert (model_with_pending._blocks_cost(len(resources)) < fantasy.BLOCKS_WORTH_IT) == expect_blocks
        with torch.no_grad():
            monkeypatch.setattr(fantasy, "BLOCKS_WORTH_IT", math.inf)
            by_blocks = model_with_pending.moments_at_resources(features, resources)
            monkeypatch.setattr(fantasy, "BLOCKS_WORTH_IT", 0.0)
            direct = model_with_pending.moments_at_resources(features, resources)
        assert by_blocks[0].shape == direct[0].shape == (200, 3, 6)
        # Two exact solves agree to about cond(K) * eps in floating point, K = L L^T the matrix
        # both solve with; a fit whose noise reaches its floor makes K ill-conditioned (cond
        # ~1e11 on rung data), a wrong block would be off by the moments' own size (~0.1 to 1).
        condition = float(torch.linalg.cond(model_with_pending.data_posterior.chol)) ** 2
        tolerance = 1e-10 + condition * torch.finfo(torch.float64).eps
        assert tolerance < 1e-3  # the comparison still separates rounding from a wrong solve
        for blocks_moment, direct_moment in zip(by_blocks, direct):
            assert torch.allclose(blocks_moment, direct_moment, rtol=0.0, atol=tolerance)


def test_fit_on_near_duplicates_shows_no_jitter_warning() -> None:
    """Data where gpytorch must add jitter to the kernel matrix during the fit (recorded from a
    benchmark run on a grid table): the fit succeeds and no warning reaches the user, who could
    do nothing about it."""
    recorded = json.loads((Path(__file__).parent / "data" / "near_singular_fit.json").read_text())
    x = torch.tensor(recorded["x"], dtype=torch.float64)
    y = torch.tensor(recorded["y"], dtype=torch.float64).unsqueeze(-1)
    warm = {name: torch.tensor(value, dtype=torch.float64) for name, value in recorded["warm"].items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = fit_model(build_model(x, y, "exp-decay-combined"), warm)
    assert [str(w.message) for w in caught] == []
    with torch.no_grad():
        assert torch.isfinite(model.posterior(x).mean).all()  # the fit went on to a usable model
