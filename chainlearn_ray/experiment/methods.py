"""The study's methods as objects, built from the run and study settings: Ours, its retrained
variants (Ours-Dropout, No PoC, the attacks: Ours with other inputs) and the baselines."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.experiment.study import StudyConfig
from chainlearn_ray.hospital.spec import Behaviour
from chainlearn_ray.methods import names
from chainlearn_ray.methods.ablations import no_poc_arch_by_tier, no_poc_tier
from chainlearn_ray.methods.attacks import InflatedAttack, LazyAttack, SpoofAttack
from chainlearn_ray.methods.ours import Ours, PocSettings
from chainlearn_ray.protocol.rounds import DROPOUT_ATTENDANCE
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.protocol.weights import WeightScore

if TYPE_CHECKING:
    from chainlearn_ray.methods.base import FederatedMethod

#: Baseline method names :func:`make_method` builds.
BASELINES: tuple[str, ...] = (names.FEDAVG, names.FEDPROX, names.FEDMD, names.CENTRALIZED)


def ours_for(cfg: RunConfig, hardware: Mapping[str, str], *,
             attendance: Mapping[str, float] | None = None, **inputs: Any) -> Ours:
    """Ours with the run's settings over ``hardware`` (hospital id -> hardware tier label, id
    order).

    ``attendance``: hardware tier label -> attendance probability (default: the config's);
    ``inputs``: the variant's, or settings replacing the config's (see
    :class:`~chainlearn_ray.methods.ours.Ours`); a ``fresh`` variant reuses each hospital's PoC
    measurement.
    """
    rates = attendance or {t: c.attendance for t, c in cfg.tiers.items()}
    poc = PocSettings(cfg.poc.steps, cfg.poc.warmup, cfg.poc.batch_size, cfg.poc.weak_below,
                      cfg.poc.medium_below, reuse=bool(inputs.get("fresh", False)))
    settings: dict[str, Any] = {
        "epochs": cfg.train.epochs, "seed": cfg.seed, "deadline": cfg.runtime.deadline,
        "score": cfg.chain.weight_score,
        "poc": poc, "attendance": {h: rates[t] for h, t in hardware.items()}, **inputs}
    return Ours(list(hardware), **settings)


def make_method(method: str, study: StudyConfig) -> FederatedMethod:
    """A fresh baseline method object for ``method`` with the study's settings.

    Parameters
    ----------
    method:
        One of :data:`BASELINES`.
    study:
        Supplies FedProx's μ and FedMD's public fraction, temperature and digest settings.
    """
    from chainlearn_ray.methods.centralized import Centralized
    from chainlearn_ray.methods.fedavg import FedAvg, FedProx
    from chainlearn_ray.methods.fedmd import FedMD

    if method == names.FEDAVG:
        return FedAvg()
    if method == names.FEDPROX:
        return FedProx(mu=study.fedprox_mu)
    if method == names.FEDMD:
        return FedMD(public_fraction=study.fedmd_public_fraction,
                     temperature=study.fedmd_temperature,
                     digest_epochs=study.fedmd_digest_epochs, digest_lr=study.fedmd_digest_lr)
    if method == names.CENTRALIZED:
        return Centralized()
    raise ConfigError(f"unknown baseline {method!r}: use one of {', '.join(BASELINES)}")


@dataclass(frozen=True)
class Variant:
    """One retraining of the cell's hospitals on its own fresh deployment: Ours with other
    inputs.

    Attributes
    ----------
    method:
        Result method name.
    behaviours:
        Hospital id -> behaviour (absent: honest).
    verify_claims:
        The coordinator checks capacity claims against the benchmarks (PoC on).
    attendance:
        Hardware tier label -> attendance probability (``None``: the configuration's).
    score:
        What submissions' score field holds (``None``: the configuration's).
    """

    method: str
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    verify_claims: bool = True
    attendance: dict[str, float] | None = None
    score: str | None = None

    def ours(self, cfg: RunConfig, hardware: Mapping[str, str]) -> Ours:
        """The variant as an Ours object: reset hospitals, a fresh deployment, reused PoC."""
        extra = {} if self.score is None else {"score": self.score}
        return ours_for(cfg, hardware, attendance=self.attendance,
                        behaviours=self.behaviours, verify_claims=self.verify_claims,
                        fresh=True, **extra)


def cell_variants(cfg: RunConfig, study: StudyConfig, hardware: dict[str, str]) -> list[Variant]:
    """The retrained variants of a cell selected by ``study`` (Ours itself excluded).

    The lazy (and inflated) attacker is the first Strong-hardware hospital (else the last); the
    spoofer the first Weak-hardware hospital (else the first).
    """
    ids = list(hardware)
    strong = [h for h in ids if hardware[h] == "strong"]
    weak = [h for h in ids if hardware[h] == "weak"]
    lazy_id = strong[0] if strong else ids[-1]
    spoof_id = weak[0] if weak else ids[0]
    out: list[Variant] = []
    if names.OURS_DROPOUT in study.methods:
        out.append(Variant(names.OURS_DROPOUT, attendance=dict(DROPOUT_ATTENDANCE)))
    if names.OURS_BALACC in study.methods:
        out.append(Variant(names.OURS_BALACC, score=WeightScore.BALANCED_ACCURACY.label))
    if names.ablation_method("no_poc") in study.methods:
        arch = no_poc_arch_by_tier(cfg.tiers["medium"].arch)
        claim = no_poc_tier(Tier.MEDIUM).label
        out.append(Variant(names.ablation_method("no_poc"),
                           {h: Behaviour(arch_by_tier=arch, claimed_tier=claim) for h in ids},
                           verify_claims=False))
    if "lazy" in study.attacks:
        lazy = LazyAttack(ids.index(lazy_id))
        out.append(Variant(lazy.method, {lazy_id: Behaviour(total_epochs=lazy.epochs)}))
    if "inflated" in study.attacks:
        inflated = InflatedAttack(ids.index(lazy_id))
        out.append(Variant(inflated.method, {lazy_id: Behaviour(
            total_epochs=inflated.epochs,
            reported=(inflated.confidence_fixed, inflated.ece_fixed))}))
    if "spoof" in study.attacks:
        for poc in (False, True):
            spoof = SpoofAttack(ids.index(spoof_id), poc=poc)
            out.append(Variant(spoof.method, {spoof_id: Behaviour(
                claimed_tier=spoof.claimed, data_fraction=spoof.data_fraction)},
                verify_claims=poc))
    return out
