"""Ours in trust mode built from a run's settings (``chain.mode: trust``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.experiment.methods import ours_for
from chainlearn_ray.methods.audit import audit_split
from chainlearn_ray.methods.ours_trust import OursTrust


def ours_trust_for(cfg: RunConfig, hardware: Mapping[str, str], data: Any,
                   **inputs: Any) -> OursTrust:
    """Ours in trust mode with ``cfg``'s settings over ``hardware`` (id -> hardware tier);
    its auditor holds a seeded ``chain.audit_fraction`` of ``data``'s test split, whose labels
    no hospital is given. ``inputs`` replace the config's (e.g. ``audit=None``,
    ``verifier_timed=False``, ``behaviours``)."""
    split = None
    if cfg.chain.audit:
        split, _ = audit_split(
            data.test.images, data.test.labels, cfg.chain.audit_fraction, cfg.seed,
            n_classes=int(data.n_classes), in_channels=_channels(data, cfg),
            size=cfg.data.resize or cfg.data.size, rgb=cfg.data.rgb,
            normalize=cfg.data.normalize)
    settings: dict[str, Any] = {
        "rounds": cfg.train.rounds, "stake_wei": cfg.chain.stake_wei, "audit": split,
        "verifier_timed": cfg.chain.verifier_timed, "spot_checks": cfg.chain.spot_checks,
        **inputs}
    base = ours_for(cfg, hardware)
    return OursTrust(list(hardware), epochs=base.epochs, seed=base.seed,
                     attendance=base.attendance, deadline=base.deadline, poc=base.poc,
                     **settings)


def _channels(data: Any, cfg: RunConfig) -> int:
    return 3 if cfg.data.rgb else int(data.n_channels)
