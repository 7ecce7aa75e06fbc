"""The trust-mode adversarial study in this process: every row of
:func:`~chainlearn_ray.experiment.defences.defence_variants` on its own fresh trust-mode
deployment, with the same hospitals' data, as tidy rows (each row's attacker marked)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.experiment.defences import defence_variants
from chainlearn_ray.experiment.trust_settings import ours_trust_for, trust_config_of
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
        port = TrustContractPort.open_trust("embedded", trust_config_of(cfg))
        try:
            method = ours_trust_for(cfg, hardware, data, behaviours=variant.behaviours, fresh=True,
                                    **variant.inputs)
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
