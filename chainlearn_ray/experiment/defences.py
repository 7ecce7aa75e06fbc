"""The adversarial study of trust mode: each cheat run twice, without and with the defence
meant to stop it, on Ours in trust mode (:func:`defence_variants`).

Rows (method names): ``attack:lazy`` (trains one epoch, honest metrics, audited);
``attack:inflated_no_audit`` / ``attack:inflated_audit`` (the lazy model claims confidence
10000 and ECE 0); ``attack:spoof_tier_self`` / ``attack:spoof_tier_timed`` (a Weak-hardware
hospital claims Strong, trains on 10 % of its shard) and ``attack:spoof_throughput_self`` /
``attack:spoof_throughput_timed`` (it also reports a Strong throughput with a matching
benchmark hash), each with the self-reported PoC and with the verifier-timed one;
``attack:free_rider_no_cr`` / ``attack:free_rider_cr`` (a hospital trains nothing and copies
another's submission, on the seed protocol's one-step submission and under commit-reveal; see
:mod:`chainlearn_ray.methods.free_riding`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.hospital.spec import Behaviour
from chainlearn_ray.methods.attacks import InflatedAttack, SpoofAttack
from chainlearn_ray.methods.names import attack_method
from chainlearn_ray.protocol.weights import SCALE

#: Throughput factor above ``poc.medium_below`` the throughput spoofer reports.
SPOOF_THROUGHPUT_FACTOR = 2.0


@dataclass(frozen=True)
class DefenceVariant:
    """One row of the study: the cheat, who cheats, and the trust-mode inputs (defence on or
    off) it runs with."""

    method: str
    attacker: str
    behaviours: dict[str, Behaviour]
    inputs: dict[str, Any] = field(default_factory=dict)
    #: ``"trust"`` (Ours in trust mode), ``"trust_public"`` (trust mode, hospitals acting on
    #: public commitments and openings) or ``"seed_public"`` (seed protocol, acting on public
    #: submissions)
    kind: str = "trust"


def defence_variants(cfg: RunConfig, hardware: Mapping[str, str]) -> list[DefenceVariant]:
    """Every row of the study over ``hardware`` (hospital id -> hardware tier, id order).

    The lazy (and inflated) attacker is the first Strong-hardware hospital (else the last), the
    spoofer the first Weak-hardware one (else the first), as in the seed study.
    """
    ids = list(hardware)
    strong = [h for h in ids if hardware[h] == "strong"]
    weak = [h for h in ids if hardware[h] == "weak"]
    lazy, spoofer = (strong[0] if strong else ids[-1]), (weak[0] if weak else ids[0])
    inflated = InflatedAttack(ids.index(lazy))
    spoof = SpoofAttack(ids.index(spoofer))
    lie = Behaviour(total_epochs=inflated.epochs,
                    reported=(inflated.confidence_fixed, inflated.ece_fixed))
    out = [DefenceVariant(attack_method("lazy"), lazy,
                          {lazy: Behaviour(total_epochs=inflated.epochs)}),
           DefenceVariant(attack_method("inflated_no_audit"), lazy, {lazy: lie},
                          {"audit": None}),
           DefenceVariant(attack_method("inflated_audit"), lazy, {lazy: lie})]
    tier_only = Behaviour(claimed_tier=spoof.claimed, data_fraction=spoof.data_fraction)
    fast = Behaviour(claimed_tier=spoof.claimed, data_fraction=spoof.data_fraction,
                     reported_throughput=cfg.poc.medium_below * SPOOF_THROUGHPUT_FACTOR)
    for name, behaviour in (("spoof_tier", tier_only), ("spoof_throughput", fast)):
        for timed in (False, True):
            out.append(DefenceVariant(attack_method(f"{name}_{'timed' if timed else 'self'}"),
                                      spoofer, {spoofer: behaviour},
                                      {"verifier_timed": timed}))
    rider, victim = free_rider_pair(hardware)
    copier = {rider: Behaviour(total_epochs=0, copies=victim)}
    out.append(DefenceVariant(attack_method("free_rider_no_cr"), rider, copier,
                              kind="seed_public"))
    out.append(DefenceVariant(attack_method("free_rider_cr"), rider, copier,
                              kind="trust_public"))
    return out


def free_rider_pair(hardware: Mapping[str, str]) -> tuple[str, str]:
    """``(free-rider, the hospital it copies)``: two hospitals of one hardware tier when there
    are (the copy then has the model type of the copier's tier: the strongest case), the
    strongest such tier first; else the first Weak copies the first Strong (else the last
    copies the first)."""
    ids = list(hardware)
    for tier in ("strong", "medium", "weak"):
        same = [h for h in ids if hardware[h] == tier]
        if len(same) >= 2:
            return same[1], same[0]
    weak = [h for h in ids if hardware[h] == "weak"]
    strong = [h for h in ids if hardware[h] == "strong"]
    if weak and strong:
        return weak[0], strong[0]
    return ids[-1], ids[0]


#: The claim an inflated attacker makes, for tables that explain the rows.
INFLATED_CLAIM = (SCALE, 0)
