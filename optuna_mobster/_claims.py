"""Claims: how trials sampled at the same moment, in any process, avoid taking one configuration.

A trial's configuration reaches storage as its params only when the objective calls
``suggest_*``, after the sampler has returned. Two processes (or threads) that sample from the
same history at the same moment cannot see each other's choice, and since the acquisition's
optimum is often a corner of the space, they pick the same one. So the sampler writes its choice
into the trial's system attrs (a claim) before returning it, reads the claims and params of the
other trials (a rival may have been pruned already), and samples again when a rival wins:

1. write the claim, tentative, and read the rivals: a rival holding the same configuration wins
   if its claim is final (or it has params), or if its trial number is lower;
2. otherwise mark the claim final and read the rivals again: a lower-numbered rival holding the
   same configuration wins (it may have read our claim while it was still tentative).

Why two trials a < b cannot both keep one configuration: b keeps it only if a's claim was not
visible at either of b's reads; a keeps it only if it read before b's claim became final. The
storage orders writes and reads, so that would need a's write after b's second read, which comes
after b's final write, after a's read, after a's own write. Both may give way: each samples
again with the other's claim as pending. Processes that sample all the time (fast objectives)
can keep colliding, each round with the next trial of the other process, because the same model
leads them to the same places; so the sampler's last round (``MAX_ROUNDS``) is random.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial

if TYPE_CHECKING:
    from optuna.study import Study

#: Trial system attr that holds the claim: ``{"config": {...}, "final": bool}``.
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
) -> bool:
    """Claim ``config`` for ``trial``; ``False`` when a rival holds it (sample again)."""
    _write(study, trial, config, final=False)
    if is_among(config, _rival_configs(study, trial, lambda rival: _is_final(rival) or rival.number < trial.number)):
        return False
    _write(study, trial, config, final=True)
    return not is_among(config, _rival_configs(study, trial, lambda rival: rival.number < trial.number))


def _rival_configs(
    study: Study, trial: FrozenTrial, wins: Callable[[FrozenTrial], bool]
) -> list[dict[str, Any]]:
    """Configurations of the other trials that would win a tie against ``trial``.

    Every state counts: a rival sampled in the same moment may have finished (or been pruned)
    already.
    """
    configs = []
    for rival in study.get_trials(deepcopy=False):
        if rival.number == trial.number or not wins(rival):
            continue
        # Stored params beat the claim: the objective may have suggested other values.
        config = {**(claimed_config(rival) or {}), **rival.params}
        if config:
            configs.append(config)
    return configs


def _is_final(trial: FrozenTrial) -> bool:
    claim = trial.system_attrs.get(CLAIM_KEY)
    return bool(trial.params) or (isinstance(claim, dict) and bool(claim.get("final")))


def _write(study: Study, trial: FrozenTrial, config: dict[str, Any], final: bool) -> None:
    # Optuna has no public way for a sampler to write to a trial; its own samplers (GridSampler,
    # TPESampler, CmaEsSampler) make this same storage call.
    study._storage.set_trial_system_attr(trial._trial_id, CLAIM_KEY, {"config": config, "final": final})
