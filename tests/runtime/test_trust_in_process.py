"""Ours in trust mode in this process on the embedded EVM: stakes, rewards and slashes as rows
that add up, and a failed audit that zeroes the weight and slashes the stake."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.trust_method import ours_trust_for
from chainlearn_ray.experiment.trust_settings import trust_config_of
from chainlearn_ray.hospital.spec import Behaviour
from chainlearn_ray.methods.trust_contract import TrustContractPort
from chainlearn_ray.planning.placement import hospital_specs
from chainlearn_ray.results.rows import RunKey
from chainlearn_ray.runtime.sequential import run_ours_sequential
from chainlearn_ray.runtime.simulation import load_partitioned

from .conftest import tiny_config


def _run(synth_dir: Path, behaviours: dict[str, Behaviour] | None = None) -> tuple[Any, Any,
                                                                                    pd.DataFrame]:
    cfg = tiny_config(synth_dir, hospitals="weak:1,medium:1,strong:1",
                      **{"chain.mode": "trust", "train.epochs": 1})
    data, part = load_partitioned(cfg)
    hardware = {s.hospital_id: s.hardware_tier.label for s in hospital_specs(cfg, data)}
    port = TrustContractPort.open_trust("embedded", trust_config_of(cfg))
    method = ours_trust_for(cfg, hardware, data, behaviours=behaviours or {},
                            fresh=bool(behaviours))
    run = run_ours_sequential(cfg, data, part, port, method=method)
    rows = pd.DataFrame(method.summary(RunKey("t", "synthetic", 1.0, cfg.seed, method.name)))
    port.close()
    return cfg, run, rows


def _wei(rows: pd.DataFrame, metric: str) -> dict[tuple[int, str], int]:
    part = rows[rows["metric"] == metric]
    return {(int(r), str(h)): int(v) for r, h, v in
            zip(part["round"], part["hospital"], part["value"], strict=True)}


def test_trust_run_settles_stakes_and_rewards_exactly(synth_dir: Path) -> None:
    cfg, run, rows = _run(synth_dir)
    regs = {r["hospital_id"]: r["tier"] for r in run.method.registrations}
    assert regs == {"h00": "weak", "h01": "medium", "h02": "strong"}  # the verifier's timing
    assert [o.participants for o in run.outcomes] == [3, 3]
    stake, reward = _wei(rows, "stake_wei"), _wei(rows, "reward_wei")
    slashed, withdrawn = _wei(rows, "slashed_wei"), _wei(rows, "withdrawn_wei")
    per_round: dict[int, int] = defaultdict(int)
    for (r, _h), wei in reward.items():
        per_round[r] += wei
    assert dict(per_round) == {1: cfg.chain.reward_per_round_wei, 2: cfg.chain.reward_per_round_wei}
    assert set(slashed.values()) == {0}
    for h in regs:
        assert stake[(2, h)] == cfg.chain.stake_wei
        assert withdrawn[(2, h)] == stake[(2, h)] + reward[(1, h)] + reward[(2, h)]
    for outcome in run.outcomes:  # every claim stands: the optimistic auditor reports nothing
        assert all(h.weight and h.weight > 0 for h in outcome.hospitals)
        assert {"startRevealPhase", "recordEnsemblePrediction"} <= set(outcome.gas)
        assert "reportAudit" not in outcome.gas


def test_inflated_claim_fails_its_audit_zero_weight_and_slash(synth_dir: Path) -> None:
    cfg, run, rows = _run(synth_dir, {"h02": Behaviour(total_epochs=1, reported=(10_000, 0))})
    first = {h.hospital_id: h for h in run.outcomes[0].hospitals}
    assert run.outcomes[0].gas["reportAudit"] > 0  # the one deviating claim is reported
    assert first["h02"].weight == 0 and first["h00"].weight > 0
    slash = cfg.chain.stake_wei * cfg.chain.slash_fraction // 10_000
    assert _wei(rows, "audit_failed")[(1, "h02")] == 1
    assert _wei(rows, "slashed_wei")[(1, "h02")] == slash
    assert _wei(rows, "reward_wei")[(1, "h02")] == 0
    assert _wei(rows, "stake_wei")[(2, "h02")] == cfg.chain.stake_wei - slash
    # below the minimum stake it cannot commit again (out of the last round, so it does not
    # withdraw with the others; the rest of its stake stays its own on chain)
    assert run.outcomes[1].participants == 2
    assert (2, "h02") not in _wei(rows, "withdrawn_wei")
    honest = sum(_wei(rows, "reward_wei")[(1, h)] for h in ("h00", "h01"))
    assert honest == cfg.chain.reward_per_round_wei  # the others share the whole pool


def test_bad_trust_settings_name_the_setting(synth_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"chain\.mode"):
        tiny_config(synth_dir, **{"chain.mode": "paranoid"})
    with pytest.raises(ConfigError, match=r"chain\.slash_fraction"):
        tiny_config(synth_dir, **{"chain.slash_fraction": 20_000})
    with pytest.raises(ConfigError, match=r"chain\.stake_wei"):
        tiny_config(synth_dir, **{"chain.stake_wei": 2**60})


@pytest.mark.slow
def test_trust_run_is_deterministic(synth_dir: Path) -> None:
    runs = [_run(synth_dir) for _ in range(2)]
    decided = [[(o.round, o.participants, o.ensemble, o.ensemble_hash, o.gas,
                 [(h.hospital_id, h.weight, h.accuracy, h.simulated_seconds)
                  for h in o.hospitals]) for o in run.outcomes] for _cfg, run, _rows in runs]
    assert decided[0] == decided[1]
    assert runs[0][2].drop(columns=["run_id"]).equals(runs[1][2].drop(columns=["run_id"]))
    regs = [[(r["hospital_id"], r["tier"], r["throughput"]) for r in run.method.registrations]
            for _cfg, run, _rows in runs]
    assert regs[0] == regs[1]
