"""The GP's targets: the shifted log warp spreads the best values apart and keeps the order."""

import numpy as np

from mobster.targets import TargetTransform


def test_warp_is_monotone_standardised_and_spreads_the_low_end():
    values = np.array([0.017, 0.02, 0.03, 0.1, 0.4, 0.9, 0.9])
    warped = TargetTransform.fit(values)(values)
    assert np.all(np.diff(warped) >= 0)
    assert abs(warped.mean()) < 1e-9 and abs(warped.std() - 1.0) < 1e-9
    plain = TargetTransform.fit(values, warp=False)(values)
    # The two best values are 0.003 apart: a sliver of the spread unwarped, a real gap warped.
    assert (warped[1] - warped[0]) > 10 * (plain[1] - plain[0])
    # The bad end is compressed instead.
    assert (warped[5] - warped[4]) < (plain[5] - plain[4])


def test_values_outside_the_fitted_range_stay_finite_and_ordered():
    transform = TargetTransform.fit(np.array([1.0, 2.0, 3.0]))
    below, at, above = transform(np.array([0.5, 1.0, 10.0]))
    assert np.isfinite([below, at, above]).all()
    assert below == at < above  # under the minimum is clipped to it


def test_constant_and_negative_data():
    constant = TargetTransform.fit(np.array([2.0, 2.0]))
    assert np.allclose(constant(np.array([2.0, 2.0])), 0.0)
    negated_accuracy = np.array([-0.99, -0.95, -0.5])  # maximised metric, negated
    warped = TargetTransform.fit(negated_accuracy)(negated_accuracy)
    assert warped[0] < warped[1] < warped[2]
