"""Ours in trust mode built from a run's settings (``chain.mode: trust``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.experiment.methods import ours_for
from chainlearn_ray.methods.audit import AuditSplit, audit_positions
from chainlearn_ray.methods.ours_trust import OursTrust


def hold_out_audit(cfg: RunConfig, data: Any) -> Any:
    """``data`` with a seeded ``chain.audit_fraction`` of its validation split held out as
    ``data.audit`` (trust mode with audits; else ``data`` as it is).

    The auditor scores each model on images drawn like the ones the hospital measured its
    claim on (its validation split), so an honest claim differs from the audit by sampling
    noise only; the hospitals are given the rest of the validation split.
    """
    if cfg.chain.mode != "trust" or not cfg.chain.audit or data.audit is not None:
        return data
    import dataclasses

    from chainlearn_ray.data.medmnist import Split

    picked = audit_positions(len(data.val), cfg.chain.audit_fraction, cfg.seed)
    rest = np.setdiff1d(np.arange(len(data.val)), picked)
    images, labels = data.val.images, data.val.labels
    return dataclasses.replace(data, val=Split(images[rest], labels[rest]),
                               audit=Split(images[picked], labels[picked]))


def ours_trust_for(cfg: RunConfig, hardware: Mapping[str, str], data: Any,
                   **inputs: Any) -> OursTrust:
    """Ours in trust mode with ``cfg``'s settings over ``hardware`` (id -> hardware tier);
    its auditor holds ``data.audit`` (:func:`hold_out_audit`), images no hospital is given.
    ``inputs`` replace the config's (e.g. ``audit=None``, ``verifier_timed=False``,
    ``behaviours``)."""
    split = None
    if cfg.chain.audit:
        held = data.audit
        if held is None:
            raise ConfigError("the audit needs chain.mode: trust when the data is loaded (its "
                              "audit split is held out of the validation split then, by "
                              "hold_out_audit)")
        split = AuditSplit(
            held.images, held.labels.reshape(-1),
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
