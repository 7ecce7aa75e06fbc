"""The trust-mode adversarial study in this process: every row of
:func:`~chainlearn_ray.experiment.defences.defence_variants` on its own fresh trust-mode
deployment, with the same hospitals' data, as tidy rows (each row's attacker marked)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.experiment.defences import DefenceVariant, defence_variants
from chainlearn_ray.experiment.methods import ours_for
from chainlearn_ray.experiment.trust_method import ours_trust_for
from chainlearn_ray.experiment.trust_settings import trust_config_of
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


def defence_rows(cfg: RunConfig, data: Any, part: Any, key: RunKey,
                 only: tuple[str, ...] | None = None) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Run each study row (``only``: those method names) in this process on the embedded
    chain, each on a fresh deployment; yields ``(method, its result rows)`` as each finishes
    (rounds, settlements, withdrawals, and the ``attacker`` mark)."""
    hardware = {s.hospital_id: s.hardware_tier.label for s in hospital_specs(cfg, data)}
    variants = defence_variants(cfg, hardware)
    unknown = set(only or ()) - {v.method for v in variants}
    if unknown:
        raise ConfigError(f"--only: unknown study rows {sorted(unknown)}; use some of "
                          f"{', '.join(v.method for v in variants)}")
    for variant in variants:
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
        rows = [result_row(vkey, 0, variant.attacker, hardware[variant.attacker], ATTACKER, 1.0)]
        for outcome in run.outcomes:
            rows.extend(round_rows(vkey, outcome))
        rows.extend(method.summary(vkey))
        logger.info("%s: ensemble accuracy %s", variant.method,
                    run.outcomes[-1].ensemble.get("accuracy") if run.outcomes else None)
        yield variant.method, rows


def run_defence_study(cfg: RunConfig, data: Any, part: Any, key: RunKey,
                      only: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Every row of :func:`defence_rows`, as one list."""
    return [row for _method, rows in defence_rows(cfg, data, part, key, only) for row in rows]


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
