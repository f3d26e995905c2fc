"""The Optuna tuners compared by the benchmark: name -> a fresh (sampler, pruner) for one run.

Every method uses the same rung levels: minimum resource 1, reduction factor ``eta = 3``, the
table's maximum resource. Baselines keep their documented defaults otherwise. The reference
MOBSTER and ASHA of Syne Tune 0.13.0 are not here: they run in their own environment
(``benchmarks/reference/``) and write results in the same format; :data:`REFERENCE_METHODS` only
names them for the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

# Tuners are imported inside the factories: the report (and the Syne Tune reference runner,
# whose environment has no Optuna or torch) only need the names, labels and colours.
if TYPE_CHECKING:
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler

MIN_RESOURCE = 1
REDUCTION_FACTOR = 3

Factory = Callable[[int, int], "tuple[BaseSampler, BasePruner]"]
"""``factory(seed, max_resource) -> (sampler, pruner)``."""


@dataclass(frozen=True)
class Method:
    """A tuner in the comparison: its registry name, the label in tables and plots, and a colour."""

    name: str
    label: str
    color: str
    factory: Factory | None = None


def mobster_pruner(max_resource: int, **options: Any) -> BasePruner:
    """MobsterPruner at every method's rung levels (minimum resource 1, ``eta = 3``, up to
    ``max_resource``), with ``options`` (its Hyperband brackets, the model's rescue)."""
    from optuna_mobster import MobsterPruner

    return MobsterPruner(
        min_resource=MIN_RESOURCE, max_resource=max_resource, reduction_factor=REDUCTION_FACTOR, **options
    )


def _mobster_with(brackets: int | Literal["auto"] = 1, rescue_by_model: bool | None = False, **options: object) -> Factory:
    """MOBSTER (Optuna) with some of its choices switched, for the ablations: ``options`` of the
    sampler, the pruner's number of Hyperband ``brackets`` and its ``rescue_by_model`` (off
    unless asked: the ablations were measured before the rescue became the default)."""

    def factory(seed: int, max_resource: int) -> tuple[BaseSampler, BasePruner]:
        from optuna_mobster import MobsterSampler

        pruner = mobster_pruner(max_resource, brackets=brackets, rescue_by_model=rescue_by_model)
        return MobsterSampler(seed=seed, **options), pruner  # type: ignore[arg-type]

    return factory


_mobster = _mobster_with(rescue_by_model=None)  # the library's defaults


def asha(seed: int, max_resource: int) -> tuple[BaseSampler, BasePruner]:
    """ASHA: random configurations + the asynchronous successive-halving stopping rule. In a
    study of several objectives the same pair is MO-ASHA (the pruner ranks each rung by
    non-dominated sorting), the multi-objective benchmark's baseline."""
    from optuna.samplers import RandomSampler

    return RandomSampler(seed=seed), mobster_pruner(max_resource)


def _tpe_hyperband(seed: int, max_resource: int) -> tuple[BaseSampler, BasePruner]:
    from optuna.pruners import HyperbandPruner
    from optuna.samplers import TPESampler

    pruner = HyperbandPruner(min_resource=MIN_RESOURCE, max_resource=max_resource, reduction_factor=REDUCTION_FACTOR)
    return TPESampler(seed=seed), pruner


def _gp_sh(seed: int, max_resource: int) -> tuple[BaseSampler, BasePruner]:
    from optuna.pruners import SuccessiveHalvingPruner
    from optuna.samplers import GPSampler

    # Optuna's SH pruner has no maximum resource: its rungs are 1, 3, 9, ... as everyone else's.
    pruner = SuccessiveHalvingPruner(min_resource=MIN_RESOURCE, reduction_factor=REDUCTION_FACTOR)
    return GPSampler(seed=seed), pruner


def _random_search(seed: int, max_resource: int) -> tuple[BaseSampler, BasePruner]:
    from optuna.pruners import NopPruner
    from optuna.samplers import RandomSampler

    # Every trial trains to the full resource: the floor any multi-fidelity method must beat.
    return RandomSampler(seed=seed), NopPruner()


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("mobster", "MOBSTER (ours, Optuna)", "#d62728", _mobster),
        Method("asha", "ASHA (random + MobsterPruner)", "#1f77b4", asha),
        Method("tpe-hyperband", "TPE + Hyperband (Optuna)", "#2ca02c", _tpe_hyperband),
        Method("gp-sh", "GP + SH (Optuna)", "#9467bd", _gp_sh),
        Method("random", "random search (no stopping)", "#8c8c8c", _random_search),
    )
}

#: Ablations: MOBSTER (ours) with one of its departures from the reference undone at a time, with
#: all of them undone (the reference's choices in this implementation), and with Hyperband
#: brackets (off by default). All but "ours + 3 Hyperband brackets" run without the model's
#: rescue (it became the default after they were measured): compare them with "ours, no rescue".
#: Those that pin ``random_fraction=0`` predate the random share too: compare them with "ours, no
#: random share".
_NO_RANDOM = {"random_fraction": 0.0}
ABLATIONS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("mobster-no-rescue", "ours, no rescue by the model", "#ff9896", _mobster_with()),
        Method("mobster-no-random", "ours, no random share", "#98df8a", _mobster_with(**_NO_RANDOM)),
        # Not a reference default: Hyperband brackets start some trials past the first rungs,
        # where early results rank the configurations poorly (the paper found one bracket best).
        Method("mobster-3-brackets", "ours, 3 Hyperband brackets", "#c5b0d5", _mobster_with(brackets=3)),
        # Both answers to early rungs that rank poorly at once: later first rungs, the model's rescue.
        Method(
            "mobster-3-brackets-rescue",
            "ours + 3 Hyperband brackets",
            "#9edae5",
            _mobster_with(brackets=3, rescue_by_model=None),
        ),
        # Three brackets until the run finds that the first rung ranks well, then one
        # (MobsterPruner(brackets="auto")).
        Method(
            "mobster-auto-brackets",
            'ours + brackets="auto"',
            "#637939",
            _mobster_with(brackets="auto", rescue_by_model=None),
        ),
        Method(
            "mobster-sum-kernel", "ours, exp-decay-sum kernel", "#8c564b", _mobster_with(kernel="exp-decay-sum", **_NO_RANDOM)
        ),
        Method("mobster-no-warp", "ours, no log warp", "#e377c2", _mobster_with(warp_outputs=False, **_NO_RANDOM)),
        Method("mobster-no-rungs", "ours, EI blind to the rungs", "#7f7f7f", _mobster_with(rung_aware=False, **_NO_RANDOM)),
        Method("mobster-no-cost", "ours, no cost term", "#bcbd22", _mobster_with(cost_aware=False, **_NO_RANDOM)),
        Method("mobster-small-jitter", "ours, EI jitter 0.01", "#aec7e8", _mobster_with(ei_jitter=0.01, **_NO_RANDOM)),
        Method(
            "mobster-reference-choices",
            "ours with the reference's choices",
            "#393b79",
            _mobster_with(kernel="exp-decay-sum", warp_outputs=False, rung_aware=False, ei_jitter=0.01, **_NO_RANDOM),
        ),
    )
}

#: Every Optuna method ``make`` builds: the comparison and the ablations.
OPTUNA_METHODS: dict[str, Method] = {**METHODS, **ABLATIONS}

REFERENCE_METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ref-mobster", "MOBSTER (Syne Tune 0.13)", "#ff7f0e"),
        Method("ref-asha", "ASHA (Syne Tune 0.13)", "#17becf"),
    )
}

#: Every method the report knows, in display order.
ALL_METHODS: dict[str, Method] = {**METHODS, **REFERENCE_METHODS, **ABLATIONS}

#: The baseline every ratio is taken against.
BASELINE = "asha"


def make(name: str, seed: int, max_resource: int) -> tuple[BaseSampler, BasePruner]:
    """A fresh (sampler, pruner) of Optuna method ``name`` for one run."""
    method = OPTUNA_METHODS.get(name)
    if method is None or method.factory is None:
        raise KeyError(f"unknown Optuna method {name!r}; known: {', '.join(OPTUNA_METHODS)}")
    return method.factory(seed, max_resource)
