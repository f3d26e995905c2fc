"""The searcher's options: one typed, validated value that both plugins accept and pass on whole.

``MobsterSampler``, ``MobsterSearcher`` and the core's ``ModelBasedSearcher`` take an
``options=SearcherOptions(...)`` value, or the same names as keyword arguments (overriding the
value's fields); the defaults and the checks live here only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mobster.model import DEFAULT_KERNEL, KernelName, validate_kernel

#: Subtracted from the incumbent (standardised, warped units). The reference's 0.01 makes EI
#: favour tiny improvements right next to the incumbent, over and over; a trial costs minutes to
#: hours, so only improvements worth one would do: larger jitter explores more.
DEFAULT_EI_JITTER = 0.5
#: Share of model-phase suggestions drawn at random, as BOHB's default. On the benchmark's three
#: tuning tables it made time-to-target 0.51x / 1.04x / 0.62x ASHA's against 0.72x / 0.94x /
#: 1.10x without; on the held-out one it changed nothing (P(first vs ASHA) 0.23 both ways). The
#: model, however good, sees only what it proposed; random draws keep its data diverse.
DEFAULT_RANDOM_FRACTION = 1 / 3


@dataclass(frozen=True)
class SearcherOptions:
    """How the model proposes configurations (the rung levels and seeds are set elsewhere).

    Args:
        kernel: Resource kernel: ``"exp-decay-combined"`` (default), ``"exp-decay-sum"`` (the
            reference's) or ``"matern52"``.
        num_initial_random: Configurations drawn at random before the model is used (the first
            is the centre of the space; in Optuna, whose trials declare their parameters as they
            run, the first trial is a random draw).
        num_fantasies: Joint posterior samples drawn at pending trials' next rungs.
        max_observations: Data cap; beyond it, lower rungs are subsampled.
        cost_aware: When the scheduler's rungs are known, divide expected improvement by the
            resource a new trial is expected to use before it is stopped.
        warp_outputs: Fit the GP to log-warped values (:mod:`mobster.targets`); ``False``
            standardises the raw values, as the reference.
        random_fraction: Share of the suggestions after the initial ones drawn at random; one
            third by default, as BOHB (``0``: the reference's rule).
        ei_jitter: Improvement over the incumbent that EI takes for granted, in standard
            deviations of the warped targets (the reference uses 0.01).
        device: ``"cpu"`` or ``"cuda"``: where the GP and the acquisition run.
        multi_objective_acquisition: With several objectives, ``"parego"`` (default: expected
            improvement on a random scalarisation per suggestion, one GP) or ``"nehvi"``
            (BoTorch's qLogNEHVI, one GP per objective); see :mod:`mobster.multiobjective`.
    """

    kernel: KernelName = DEFAULT_KERNEL
    num_initial_random: int = 6
    num_fantasies: int = 20
    max_observations: int = 500
    cost_aware: bool = True
    warp_outputs: bool = True
    random_fraction: float = DEFAULT_RANDOM_FRACTION
    ei_jitter: float = DEFAULT_EI_JITTER
    device: str = "cpu"
    multi_objective_acquisition: Literal["parego", "nehvi"] = "parego"

    def __post_init__(self) -> None:
        validate_kernel(self.kernel)
        if self.num_initial_random < 0:
            raise ValueError(f"num_initial_random must be >= 0, got {self.num_initial_random}")
        if self.num_fantasies < 1:
            raise ValueError(f"num_fantasies must be >= 1, got {self.num_fantasies}")
        if self.max_observations < 2:
            raise ValueError(f"max_observations must be >= 2, got {self.max_observations}")
        if not 0.0 <= self.random_fraction <= 1.0:
            raise ValueError(f"random_fraction must be in [0, 1], got {self.random_fraction!r}")
        if not (math.isfinite(self.ei_jitter) and self.ei_jitter >= 0.0):
            raise ValueError(f"ei_jitter must be finite and >= 0, got {self.ei_jitter!r}")
        if self.multi_objective_acquisition not in ("parego", "nehvi"):
            raise ValueError(
                f"multi_objective_acquisition must be 'parego' or 'nehvi', got {self.multi_objective_acquisition!r}"
            )

    @classmethod
    def resolve(cls, options: SearcherOptions | None, overrides: Mapping[str, Any], owner: str) -> SearcherOptions:
        """``options`` (default: all defaults) with the keyword arguments given to ``owner``
        applied; an unknown name is a ``TypeError`` that lists the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(
                f"{owner} got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
                f"the searcher's options are {', '.join(sorted(known))}"
            )
        return dataclasses.replace(options if options is not None else cls(), **overrides)
