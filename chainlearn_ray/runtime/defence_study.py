"""The trust-mode adversarial study in this process: every row of
:func:`~chainlearn_ray.experiment.defences.defence_variants` on its own fresh trust-mode
deployment, with the same hospitals' data, as tidy rows (each row's attacker marked)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.experiment.defences import DefenceVariant, defence_variants
from chainlearn_ray.experiment.methods import ours_for
from chainlearn_ray.experiment.trust_settings import ours_trust_for, trust_config_of
from chainlearn_ray.methods.contract import ContractPort
from chainlearn_ray.methods.free_riding import OursPublic, OursTrustPublic
from chainlearn_ray.methods.ours import Ours
from chainlearn_ray.methods.trust_contract import TrustContractPort
from chainlearn_ray.planning.placement import hospital_specs
from chainlearn_ray.results.rows import RunKey, result_row, round_rows
from chainlearn_ray.runtime.sequential import run_ours_sequential

logger = logging.getLogger(__name__)

#: Round-0 metric that marks a row's attacker (value 1).
ATTACKER = "attacker"


def run_defence_study(cfg: RunConfig, data: Any, part: Any, key: RunKey,
                      only: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Run each study row (``only``: those method names) in this process on the embedded
    chain; returns every row's result rows (rounds, settlements, withdrawals, attacker)."""
    hardware = {s.hospital_id: s.hardware_tier.label for s in hospital_specs(cfg, data)}
    rows: list[dict[str, Any]] = []
    for variant in defence_variants(cfg, hardware):
        if only is not None and variant.method not in only:
            continue
        port: ContractPort = (ContractPort.open("embedded") if variant.kind == "seed_public"
                              else TrustContractPort.open_trust("embedded", trust_config_of(cfg)))
        try:
            method = _method(cfg, hardware, data, variant)
            run = run_ours_sequential(cfg, data, part, port, method=method)
        finally:
            port.close()
        vkey = replace(key, method=variant.method)
        rows.append(result_row(vkey, 0, variant.attacker, hardware[variant.attacker],
                               ATTACKER, 1.0))
        for outcome in run.outcomes:
            rows.extend(round_rows(vkey, outcome))
        rows.extend(method.summary(vkey))
        logger.info("%s: ensemble accuracy %s", variant.method,
                    run.outcomes[-1].ensemble.get("accuracy") if run.outcomes else None)
    return rows


def _method(cfg: RunConfig, hardware: dict[str, str], data: Any,
            variant: DefenceVariant) -> Ours:
    """The variant's method object: Ours in trust mode, or a public-view variant."""
    if variant.kind == "seed_public":
        base = ours_for(cfg, hardware, behaviours=variant.behaviours, fresh=True)
        return OursPublic(base.hospitals, epochs=base.epochs, seed=base.seed,
                          attendance=base.attendance, deadline=base.deadline, poc=base.poc,
                          behaviours=variant.behaviours, fresh=True)
    method = ours_trust_for(cfg, hardware, data, behaviours=variant.behaviours, fresh=True,
                            **variant.inputs)
    if variant.kind == "trust_public":
        return OursTrustPublic(method.hospitals, rounds=method.rounds,
                               stake_wei=method.stake_wei, audit=method.audit,
                               verifier_timed=method.verifier_timed,
                               spot_checks=method.spot_checks, epochs=method.epochs,
                               seed=method.seed, attendance=method.attendance,
                               deadline=method.deadline, poc=method.poc,
                               behaviours=variant.behaviours, fresh=True)
    return method
