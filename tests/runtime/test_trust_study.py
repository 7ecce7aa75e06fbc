"""The trust-mode adversarial study: the free-rider with and without commit-reveal, in this
process; and a trust-mode run on Ray actors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from chainlearn_ray.results.defences import defence_table
from chainlearn_ray.results.rows import RunKey
from chainlearn_ray.runtime.defence_study import run_defence_study
from chainlearn_ray.runtime.simulation import load_partitioned, run_simulation

from .conftest import tiny_config

pytestmark = pytest.mark.slow


def _final(rows: pd.DataFrame, method: str, hospital: str, metric: str) -> list[float]:
    part = rows[(rows["method"] == method) & (rows["hospital"] == hospital)
                & (rows["metric"] == metric)]
    return [float(v) for v in part.sort_values("round")["value"]]


def test_free_rider_profits_without_commit_reveal_and_is_slashed_with_it(
        synth_dir: Path) -> None:
    cfg = tiny_config(synth_dir, hospitals="weak:1,medium:1,strong:2",
                      **{"chain.mode": "trust", "train.epochs": 1})
    data, part = load_partitioned(cfg)
    rows = pd.DataFrame(run_defence_study(
        cfg, data, part, RunKey("t", "synthetic", 1.0, cfg.seed, "x"),
        only=("attack:free_rider_no_cr", "attack:free_rider_cr")))
    # h03 (Strong) copies h02 (Strong): one-step submissions let it earn h02's weight untrained
    no_cr = "attack:free_rider_no_cr"
    assert _final(rows, no_cr, "h03", "weight") == _final(rows, no_cr, "h02", "weight")
    assert min(_final(rows, no_cr, "h03", "weight")) > 0
    # under commit-reveal it can copy the commitment and even open it once h02 has revealed,
    # but it cannot hand the auditor the model that hash names: weight 0 and slashed
    cr = "attack:free_rider_cr"
    assert _final(rows, cr, "h03", "audit_failed")[0] == 1
    assert _final(rows, cr, "h03", "weight") == [0.0]  # round 2: below the minimum stake
    assert _final(rows, cr, "h03", "reward_wei") == [0.0, 0.0]
    stake = cfg.chain.stake_wei
    assert _final(rows, cr, "h03", "stake_wei")[-1] == stake - stake * cfg.chain.slash_fraction \
        // 10_000
    table = defence_table(rows).set_index("method")
    assert table.loc[no_cr, "attacker_weight_mean"] > 0
    assert table.loc[cr, "attacker_weight_mean"] == 0


def test_trust_mode_on_ray(ray_local: Any, synth_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_config(synth_dir, hospitals="weak:1,medium:1,strong:1",
                      **{"chain.mode": "trust", "train.epochs": 1})
    summary = run_simulation(cfg, tmp_path / "run")
    assert [r["tier"] for r in summary.registrations] == ["weak", "medium", "strong"]
    rows = pd.read_parquet(tmp_path / "run" / "results.parquet")
    rewards = rows[rows["metric"] == "reward_wei"].groupby("round")["value"].sum()
    assert rewards.to_dict() == {1: cfg.chain.reward_per_round_wei,
                                 2: cfg.chain.reward_per_round_wei}
    withdrawn = rows[rows["metric"] == "withdrawn_wei"].set_index("hospital")["value"].to_dict()
    earned = rows[rows["metric"] == "reward_wei"].groupby("hospital")["value"].sum()
    assert withdrawn == (earned + cfg.chain.stake_wei).to_dict() and len(withdrawn) == 3
    assert all(o.participants == 3 for o in summary.rounds)
