"""The acquisition: the successive-halving bars and the survival-weighted expected improvement."""

import math

import numpy as np
import pytest
import torch

from mobster.acquisition import FantasyAveragedLogEI, RungSchedule
from mobster.data import Observation, rung_thresholds
from mobster.fantasy import FantasizedModel
from mobster.model import build_model, fit_model
from mobster.rungs import should_stop


def test_rung_thresholds_are_the_continue_quantile_of_each_rung_below_the_acquisition_level():
    values_at_1 = [0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.4]
    observations = [Observation(i, 1, v) for i, v in enumerate(values_at_1)]
    # Trials reporting every other step land at their own resource, inside the rung's interval.
    observations += [Observation(0, 4, 0.6), Observation(1, 3, 0.2), Observation(2, 9, 0.05)]
    bars = rung_thresholds(observations, [1, 3, 9, 27], below=9, reduction_factor=3)
    assert set(bars) == {1, 3}  # rung 9 is the acquisition level itself: nothing to pass there
    assert bars[1] == pytest.approx(np.quantile(values_at_1, 1 / 3))
    assert bars[3] == pytest.approx(np.quantile([0.6, 0.2], 1 / 3))
    # The bar is exactly the stopping rule's: a value at it continues, one just above stops.
    assert not should_stop(bars[1], values_at_1 + [bars[1]], 3)
    assert should_stop(bars[1] + 0.05, values_at_1 + [bars[1] + 0.05], 3)
    assert rung_thresholds(observations, [1, 3, 9, 27], below=1, reduction_factor=3) == {}


def _fitted_gp():
    """A GP on one-dimensional curves ``y = x + 0.5 exp(-4 r)``: small x is good at every r."""
    rng = np.random.default_rng(0)
    x = rng.random(30)
    r = rng.choice([1 / 54, 3 / 27, 1.0], 30)
    y = x + 0.5 * np.exp(-4 * r)
    train_x = torch.tensor(np.column_stack([x, r]))
    train_y = torch.tensor((y - y.mean()) / y.std()).unsqueeze(-1)
    return fit_model(build_model(train_x, train_y, "exp-decay-sum"))


def _fitted_model() -> FantasizedModel:
    """:func:`_fitted_gp` without pending trials."""
    return FantasizedModel(_fitted_gp(), torch.zeros(0, 2, dtype=torch.float64), 1, seed=0)


def _encode(x: torch.Tensor) -> torch.Tensor:
    return x  # the search coordinates are the GP's features here


def _acquisition(
    model: FantasizedModel, bars: dict[float, float], cost_aware: bool = False, before: int | None = None
) -> FantasyAveragedLogEI:
    """EI at the full resource (scaled 1.0) with rungs at ``bars`` (scaled resource -> bar)."""
    resources = tuple(sorted(bars))
    schedule = RungSchedule(
        resources=resources,
        bars=tuple(bars[r] for r in resources),
        epochs=tuple([1.0] + [2.0 * 3**k for k in range(len(resources))]),  # rungs 1, 3, 9, ...
        before_acquisition=len(resources) if before is None else before,
    )
    return FantasyAveragedLogEI(
        model, torch.tensor([-1.5], dtype=torch.float64), _encode, 1.0, schedule, 1e-3, cost_aware
    )


def test_survival_term_is_neutral_for_an_easy_bar_and_penalises_a_hard_one():
    model = _fitted_model()
    candidates = torch.linspace(0.0, 1.0, 11, dtype=torch.float64).view(-1, 1, 1)
    with torch.no_grad():
        plain = _acquisition(model, {})(candidates)
        easy = _acquisition(model, {1 / 54: 100.0})(candidates)
        hard = _acquisition(model, {1 / 54: -1.0})(candidates)
        harder = _acquisition(model, {1 / 54: -2.0})(candidates)
    assert torch.allclose(plain, easy, atol=1e-6)
    assert (hard < plain).all() and (harder < hard).all()
    # The penalty grows with the predicted first-rung value: large x is worse there.
    assert (plain - hard)[-1] > (plain - hard)[0]


def test_the_bottleneck_rung_decides():
    model = _fitted_model()
    candidates = torch.linspace(0.0, 1.0, 5, dtype=torch.float64).view(-1, 1, 1)
    with torch.no_grad():
        one = _acquisition(model, {1 / 54: -0.5})(candidates)
        both = _acquisition(model, {1 / 54: -0.5, 3 / 27: 100.0})(candidates)
    assert torch.allclose(one, both, atol=1e-6)
    assert all(math.isfinite(v) for v in one.tolist())


def test_rungs_above_the_acquisition_level_only_count_in_the_cost():
    model = _fitted_model()
    candidates = torch.linspace(0.0, 1.0, 5, dtype=torch.float64).view(-1, 1, 1)
    with torch.no_grad():
        below = _acquisition(model, {1 / 54: -0.5}, before=1)(candidates)
        above = _acquisition(model, {1 / 54: -0.5}, before=0)(candidates)
        plain = _acquisition(model, {})(candidates)
    assert torch.allclose(above, plain, atol=1e-6) and (below < plain).all()


def test_cost_term_divides_by_the_expected_resource_under_the_rungs():
    model = _fitted_model()
    candidates = torch.linspace(0.0, 1.0, 11, dtype=torch.float64).view(-1, 1, 1)
    bars = {1 / 54: -0.5, 3 / 27: -0.8}
    with torch.no_grad():
        survival = _acquisition(model, bars)(candidates)
        costed = _acquisition(model, bars, cost_aware=True)(candidates)
        everyone_passes = _acquisition(model, {1 / 54: 100.0, 3 / 27: 100.0}, cost_aware=True)(candidates)
        plain = _acquisition(model, {})(candidates)
    # A trial that passes every rung uses all 1 + 2 + 6 = 9 units: the whole resource.
    assert torch.allclose(everyone_passes, plain - math.log(9.0), atol=1e-6)
    # Otherwise it is expected to use between 1 unit (stopped at once) and 9.
    saved = costed - (survival - math.log(9.0))
    assert (saved > -1e-9).all() and (saved < math.log(9.0) + 1e-9).all()
    # Configurations likely to be stopped early (large x) are the cheap ones.
    assert saved[-1] > saved[0]


def test_rungs_without_data_pass_for_sure_and_keep_gradients_finite():
    model = _fitted_model()
    candidates = torch.linspace(0.1, 0.9, 5, dtype=torch.float64).view(-1, 1, 1).requires_grad_(True)
    acquisition = _acquisition(model, {1 / 54: -0.5, 3 / 27: math.inf}, cost_aware=True)
    value = acquisition(candidates)
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(candidates.grad).all()
    with torch.no_grad():
        assert torch.allclose(value, _acquisition(model, {1 / 54: -0.5, 3 / 27: 100.0}, cost_aware=True)(candidates))


def test_augmentation_discounts_configurations_the_model_already_knows():
    model = _fitted_model()
    acquisition = FantasyAveragedLogEI(
        model, torch.tensor([-1.5], dtype=torch.float64), _encode, 1.0, None, noise=0.05
    )
    train_x = model.data_posterior.train_x
    known = train_x[train_x[:, 1] == 1.0][:1, :1]  # a configuration measured at r = 1
    far = torch.tensor([[4.0]], dtype=torch.float64)  # far outside the data

    def log_augmentation(x: torch.Tensor) -> torch.Tensor:
        X = x.unsqueeze(0)  # one candidate: 1 x 1 x dim
        _, variance = acquisition._moments(X)
        return acquisition._log_augmentation(variance[..., 0, :])

    with torch.no_grad():
        at_known, at_far = log_augmentation(known), log_augmentation(far)
    assert at_known.item() < math.log(0.5) < at_far.item() <= 0.0


def test_expected_improvement_part_is_botorchs_log_ei_averaged_over_fantasies():
    # The acquisition computes log EI from its own (shared) posterior call for speed; it must
    # equal BoTorch's LogExpectedImprovement on the same fantasized model.
    from botorch.acquisition import LogExpectedImprovement
    from botorch.utils.safe_math import logmeanexp

    pending = torch.tensor([[0.2, 1 / 54], [0.6, 3 / 27]], dtype=torch.float64)
    model = FantasizedModel(_fitted_gp(), pending, 8, seed=1)
    best_f = torch.linspace(-1.6, -1.2, 8, dtype=torch.float64)
    ours = FantasyAveragedLogEI(model, best_f, _encode, 1.0, None, noise=0.0)
    candidates = torch.linspace(0.0, 1.0, 7, dtype=torch.float64).view(-1, 1, 1)
    botorch_log_ei = LogExpectedImprovement(model, best_f.unsqueeze(-1), maximize=False)
    with torch.no_grad():
        at_full = torch.cat([candidates, torch.ones_like(candidates)], dim=-1)  # GP inputs at r = 1
        expected = logmeanexp(botorch_log_ei(at_full.unsqueeze(-3)), dim=-1)
        assert torch.allclose(ours(candidates), expected, rtol=1e-9, atol=1e-12)
