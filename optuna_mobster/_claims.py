"""Claims: how trials sampled at the same moment, in any process, avoid taking one configuration.

A trial's configuration reaches storage as its params only when the objective calls
``suggest_*``, after the sampler has returned. Two processes (or threads) that sample from the
same history at the same moment cannot see each other's choice, and since the acquisition's
optimum is often a corner of the space, they pick the same one. So the sampler writes its choice
into the trial's system attrs (a claim) before returning it, then reads the claims and params of
the other trials (a rival may have been pruned already, or be running with params stored). If
any other trial holds the same configuration, whatever its number or state, the sampler gives
way and proposes instead the next best candidate of the same acquisition optimisation that no
other trial holds (free: it was scored on the way), or, when there is none, samples again with
the rival's configuration as pending.

Why two trials cannot both keep one configuration: each writes its claim before it reads, and
the storage orders writes and reads, so whichever of the two wrote second reads after the
other's write, sees it and gives way. Both give way only when both writes come before either
read (the few milliseconds between a write and its read); each then claims its runner-up. A
claim costs one write and one read. Processes that sample all the
time (fast objectives) can keep colliding, each round with the next trial of the other process,
because the same model leads them to the same places; so the sampler's last round
(``MAX_ROUNDS``) is random.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial

if TYPE_CHECKING:
    from optuna.study import Study

#: Trial system attr that holds the claim: ``{"config": {...}}``.
CLAIM_KEY = "mobster:claim"

#: Samplings per trial, the last one random; its choice stands whatever the rivals hold.
MAX_ROUNDS = 3

#: Whether two configurations count as one (the searcher's notion of "already tried").
SameConfiguration = Callable[[dict[str, Any], list[dict[str, Any]]], bool]


def claimed_config(trial: FrozenTrial) -> dict[str, Any] | None:
    """The configuration a running trial claimed and has not yet stored as params (else ``None``)."""
    claim = trial.system_attrs.get(CLAIM_KEY)
    return dict(claim["config"]) if isinstance(claim, dict) else None


def stake(
    study: Study, trial: FrozenTrial, config: dict[str, Any], is_among: SameConfiguration
) -> tuple[bool, list[dict[str, Any]]]:
    """Claim ``config`` for ``trial``: whether the claim stands (``False`` when another trial
    holds it too: propose another), and the configurations the other trials hold."""
    # Optuna has no public way for a sampler to write to a trial; its own samplers (GridSampler,
    # TPESampler, CmaEsSampler) make this same storage call.
    study._storage.set_trial_system_attr(trial._trial_id, CLAIM_KEY, {"config": config})
    rivals = _rival_configs(study, trial)
    return not is_among(config, rivals), rivals


def _rival_configs(study: Study, trial: FrozenTrial) -> list[dict[str, Any]]:
    """Configurations the other trials hold. Every state counts: a rival sampled in the same
    moment may have finished (or been pruned) already."""
    configs = []
    for rival in study.get_trials(deepcopy=False):
        if rival.number == trial.number:
            continue
        # Stored params beat the claim: the objective may have suggested other values.
        config = {**(claimed_config(rival) or {}), **rival.params}
        if config:
            configs.append(config)
    return configs
