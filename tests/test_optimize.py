"""The acquisition optimiser's ranking: its choice first, then runner-ups that are other places."""

import numpy as np
import torch

import mobster  # noqa: F401  (before BoTorch: mobster sets up BoTorch's warnings)
from mobster.optimize import RUNNER_UP_DISTANCE, maximize_acquisition, rank_acquisition_candidates
from mobster.space import Categorical, Float, SearchSpace


def acquisition():
    from botorch.acquisition import AcquisitionFunction

    class TwoHills(AcquisitionFunction):
        """A high hill at x = (0.3, 0.3) and a lower one at (0.8, 0.8), whatever the category."""

        def __init__(self) -> None:
            super().__init__(model=None)

        def forward(self, X: torch.Tensor) -> torch.Tensor:
            x = X[..., 0, :2]
            high = torch.exp(-((x - 0.3) ** 2).sum(-1) / 0.02)
            low = 0.5 * torch.exp(-((x - 0.8) ** 2).sum(-1) / 0.02)
            return high + low

    return TwoHills()


SPACE = SearchSpace({"x": Float(0.0, 1.0), "y": Float(0.0, 1.0), "kind": Categorical(["a", "b"])})


def left_of_a_tenth(units: np.ndarray) -> np.ndarray:
    """Nothing with x below 0.1 may be proposed (as if tried already)."""
    return np.asarray(units)[..., 0] < 0.1


def test_the_first_candidate_is_the_optimisers_choice_and_runner_ups_are_other_allowed_places() -> None:
    kwargs = {"dtype": torch.float64}
    choice = maximize_acquisition(acquisition(), SPACE, left_of_a_tenth, np.random.default_rng(3), kwargs)
    ranked = rank_acquisition_candidates(acquisition(), SPACE, left_of_a_tenth, np.random.default_rng(3), kwargs, count=4)
    assert np.array_equal(ranked[0], choice)
    assert np.allclose(ranked[0][:2], 0.3, atol=0.02)  # on the high hill
    assert len(ranked) == 4 and not left_of_a_tenth(ranked).any()
    distances = np.linalg.norm(ranked[:, None, :] - ranked[None, :, :], axis=-1)
    assert (distances[~np.eye(4, dtype=bool)] >= RUNNER_UP_DISTANCE).all()
    with torch.no_grad():
        values = acquisition()(torch.tensor(ranked, **kwargs).unsqueeze(-2)).numpy()
    assert (np.diff(values) <= 0).all()  # best first
    assert values[1] > 0.4  # the runner-up is a good place too (the other category or the low hill)
