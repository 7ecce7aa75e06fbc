"""One driver: Ours in this process (in-process executor, embedded EVM) decides exactly what the
same run decides on Ray (hospital actors on threads, the coordinator actor's chain)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chainlearn_ray.methods.contract import ContractPort
from chainlearn_ray.runtime.sequential import run_ours_sequential
from chainlearn_ray.runtime.simulation import load_partitioned, run_simulation

from .conftest import tiny_config

pytestmark = pytest.mark.slow


def _decided(outcomes: list[Any]) -> list[Any]:
    """What each round decided: statuses, weights, metrics, the ensemble and its gas."""
    return [(o.round, o.participants, o.ensemble, o.ensemble_hash, o.gas,
             [(h.hospital_id, h.tier, h.status, h.weight, h.accuracy, h.macro_f1, h.confidence,
               h.ece, h.val_accuracy, h.samples, h.gas_submit) for h in o.hospitals])
            for o in outcomes]


def test_ours_in_process_equals_ours_on_ray(ray_local: Any, synth_dir: Path,
                                            tmp_path: Path) -> None:
    # six hospitals in one process training on threads, and a dropout draw
    cfg = tiny_config(synth_dir, hospitals="weak:2,medium:2,strong:2", **{
        "train.rounds": 3, "data.min_shard": 8, "tiers.strong.attendance": 0.5})
    on_ray = run_simulation(cfg, tmp_path / "ray")
    data, part = load_partitioned(cfg)
    port = ContractPort.open("embedded")
    local = run_ours_sequential(cfg, data, part, port)

    assert [(r["hospital_id"], r["tier"]) for r in local.method.registrations] == [
        (r["hospital_id"], r["tier"]) for r in on_ray.registrations]
    assert _decided(local.outcomes) == _decided(on_ray.rounds)
    assert 0 < sum(o.participants for o in local.outcomes) < 6 * 3  # somebody dropped out
    # the same transactions in the same order (registration gas follows the PoC reading)
    ray_receipts = json.loads((tmp_path / "ray" / "receipts.json").read_text())
    for a, b in zip(port.receipts(), ray_receipts, strict=True):
        assert (a["operation"], a["sender"]) == (b["operation"], b["sender"])
        if a["operation"] != "registerHospital":
            assert a["gas_used"] == b["gas_used"]
