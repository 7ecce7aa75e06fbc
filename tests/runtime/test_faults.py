"""Faults: a hospital that dies, raises or hangs misses one round and comes back restored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from chainlearn_ray.runtime.simulation import run_simulation

from .conftest import tiny_config

pytestmark = pytest.mark.slow


def test_crash_raise_and_hang_then_recover(ray_local: Any, synth_dir: Path, tmp_path: Path,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    cfg = tiny_config(synth_dir, **{
        "train.rounds": 3,
        "runtime.faults": ["h00@2:crash", "h01@2:raise", "h02@2:hang"],
        "runtime.round_timeout": 12.0,
    })
    out = tmp_path / "run"
    summary = run_simulation(cfg, out)
    status = {o.round: {h.hospital_id: h.status for h in o.hospitals} for o in summary.rounds}
    errors = {o.round: {h.hospital_id: h.error for h in o.hospitals if h.error}
              for o in summary.rounds}
    assert status[1] == {"h00": "submitted", "h01": "submitted", "h02": "submitted"}
    # h00's process died: it is restarted within the round when the timeout leaves time
    assert status[2]["h00"] in ("submitted", "failed")
    assert (status[2]["h01"], status[2]["h02"]) == ("failed", "timed_out")
    assert status[3] == {"h00": "submitted", "h01": "submitted", "h02": "submitted"}, errors
    assert summary.rounds[1].participants == (status[2]["h00"] == "submitted")
    # round 1 was on disk before the faults; the run completed and kept every round
    frame = pd.read_parquet(out / "results.parquet")
    # why a hospital has no submission is a row of its own, not only attended = 0
    why = frame[frame.metric.str.startswith("status_")]
    assert {(h, m) for h, m in zip(why.hospital, why.metric, strict=True)} >= {
        ("h01", "status_crashed"), ("h02", "status_timed_out")}
    assert (why.value == 1).all() and set(why["round"]) == {2}
    assert sorted(frame["round"].unique()) == [0, 1, 2, 3]
    assert frame[(frame["round"] == 3) & (frame.metric == "participants")].value.item() == 3
    # the restored hospitals continued from their checkpoint: round 3 is their second round
    # on chain, so the participation bonus of round 3 is one round more than in round 1
    w = frame[frame.metric == "weight"].pivot(index="hospital", columns="round", values="value")
    assert (w[3] > 0).all()
    # the restarted process fetched its data by name: no constructor argument lives in the
    # object store, so Ray has nothing to warn about (ray-project/ray#53727)
    assert "constructor arguments in the object store" not in capfd.readouterr().err


def test_a_crash_in_a_process_training_on_threads(ray_local: Any, synth_dir: Path,
                                                 tmp_path: Path) -> None:
    # six hospitals on four CPUs share one process training four at once on threads; one
    # crashing takes the process down mid-round, and Ray restarts it with every hospital
    cfg = tiny_config(synth_dir, hospitals="weak:2,medium:2,strong:2", **{
        "train.rounds": 3, "data.min_shard": 8, "runtime.faults": ["h01@2:crash"]})
    lines: list[str] = []
    summary = run_simulation(cfg, tmp_path / "run", progress=lines.append)
    assert any("4 at once on threads" in ln for ln in lines)
    status = {o.round: {h.hospital_id: h.status for h in o.hospitals} for o in summary.rounds}
    ids = [f"h{i:02d}" for i in range(6)]
    assert status[1] == dict.fromkeys(ids, "submitted")
    # the process died with every hospital it hosts: with no round timeout, all of them
    # start again in the restarted process within the round, and the round loses nobody
    assert status[2] == dict.fromkeys(ids, "submitted")
    assert status[3] == dict.fromkeys(ids, "submitted")
    assert "h01" in summary.rounds[1].restarted  # and the results say so
    frame = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert frame[(frame["round"] == 3) & (frame.metric == "participants")].value.item() == 6
    assert frame[(frame["round"] == 2) & (frame.metric == "participants")].value.item() == 6
    again = frame[frame.metric == "status_restarted"]
    assert "h01" in set(again.hospital) and set(again["round"]) == {2}
