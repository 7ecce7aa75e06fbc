"""Ablations as inputs to the unchanged weight formula, so the contract itself can compute them."""

from __future__ import annotations

import logging
from collections.abc import Callable

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.methods.names import ABLATIONS
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.protocol.weights import SCALE, compute_weight

logger = logging.getLogger(__name__)

#: ``(tier, confidence, ece, rounds) -> weight``:
#: :func:`chainlearn_ray.protocol.weights.compute_weight`, or a call of the contract's
#: ``calculateWeightPure``.
WeightFn = Callable[[Tier, int, int, int], int]

#: The tier whose capacity multiplier is neutral (10000): stands for "no capacity term".
NEUTRAL_TIER = Tier.MEDIUM

#: Architecture every hospital trains in the No PoC ablation (the Medium tier's model family,
#: so the contract's model-type check accepts it for the Medium tier all hospitals register as).
NO_POC_ARCH = "efficientnet_b0"


def ablation_inputs(name: str | None, tier: Tier | str | int, confidence: int, ece: int,
                    rounds: int) -> tuple[Tier, int, int, int]:
    """Inputs that make the *unchanged* weight formula compute an ablation.


    Feeding these to ``calculateWeightPure`` (or
    :func:`chainlearn_ray.protocol.weights.compute_weight`) gives the ablated weight, so no second
    formula exists anywhere:

    * ``no_capmul`` and ``no_poc``: tier Medium (capMul 10000 for everyone);
    * ``no_conf``: confidence 10000;
    * ``no_ece``: ECE 0;
    * ``no_bonus``: 0 rounds (bonus 0);
    * ``None`` or ``"none"``: the inputs unchanged (Ours).

    Parameters
    ----------
    name:
        Ablation name, with or without the ``"ablation:"`` prefix.
    tier, confidence, ece, rounds:
        The hospital's registered tier, fixed-point metrics and rounds participated.

    Returns
    -------
    tuple
        ``(tier, confidence, ece, rounds)``.

    Raises
    ------
    ConfigError
        Unknown ablation name.
    """
    t = Tier.parse(tier)
    key = "none" if name is None else str(name).removeprefix("ablation:")
    if key == "none":
        return t, confidence, ece, rounds
    if key in ("no_capmul", "no_poc"):
        return NEUTRAL_TIER, confidence, ece, rounds
    if key == "no_conf":
        return t, SCALE, ece, rounds
    if key == "no_ece":
        return t, confidence, 0, rounds
    if key == "no_bonus":
        return t, confidence, ece, 0
    raise ConfigError(f"unknown ablation {name!r}: use one of {', '.join(ABLATIONS)}")


def ablated_weight(name: str | None, tier: Tier | str | int, confidence: int, ece: int,
                   rounds: int, weight_fn: WeightFn | None = None) -> int:
    """Weight of one hospital under an ablation: ``weight_fn(*ablation_inputs(...))``.

    ``weight_fn`` defaults to :func:`chainlearn_ray.protocol.weights.compute_weight`.
    """
    fn: WeightFn = weight_fn if weight_fn is not None else compute_weight
    t, conf, err, r = ablation_inputs(name, tier, confidence, ece, rounds)
    return int(fn(t, int(conf), int(err), int(r)))


def no_poc_arch_by_tier(arch: str = NO_POC_ARCH) -> dict[str, str]:
    """Tier label -> architecture for the No PoC ablation: ``arch`` for every tier."""
    return {t.label: arch for t in Tier}


def no_poc_tier(measured: Tier | str | int) -> Tier:
    """Tier registered in the No PoC ablation, whatever was measured: Medium for everyone."""
    Tier.parse(measured)
    return NEUTRAL_TIER


def describe(name: str) -> str:
    """One-line description of an ablation, for tables and logs."""
    texts = {
        "no_capmul": "capacity multiplier 10000 for every tier",
        "no_conf": "confidence taken as 10000",
        "no_ece": "ECE taken as 0",
        "no_bonus": "participation bonus 0",
        "no_poc": f"all hospitals {NO_POC_ARCH}, registered Medium (no capacity term)",
    }
    key = name.removeprefix("ablation:")
    if key not in texts:
        raise ConfigError(f"unknown ablation {name!r}: use one of {', '.join(ABLATIONS)}")
    return texts[key]
