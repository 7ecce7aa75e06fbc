"""End-to-end federated runs on real local Ray, the embedded EVM and real (tiny) training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from chainlearn_ray.errors import ChainlearnError
from chainlearn_ray.protocol.rounds import draw_attendance
from chainlearn_ray.runtime.federation import open_federation
from chainlearn_ray.runtime.simulation import load_partitioned, run_simulation

from .conftest import tiny_config

pytestmark = pytest.mark.slow

#: Metrics that depend on wall-clock timing, hence not part of the determinism check.
TIMING = ("poc_throughput", "poc_slowdown", "simulated_seconds", "wall_seconds", "round_seconds",
          "chain_seconds", "train_seconds")


def _metrics(frame: pd.DataFrame) -> pd.DataFrame:
    keep = frame[~frame.metric.isin(TIMING)]
    return keep.drop(columns=["run_id"]).sort_values(
        ["method", "round", "hospital", "metric"]).reset_index(drop=True)


def test_three_hospitals_end_to_end(ray_local: Any, synth_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_config(synth_dir)
    lines: list[str] = []
    summary = run_simulation(cfg, tmp_path / "run", progress=lines.append)
    frame = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert list(frame.columns) == ["run_id", "dataset", "alpha", "seed", "method", "round",
                                   "hospital", "tier", "metric", "value"]
    # every hospital registered the tier its own PoC measured, which matches its hardware
    regs = {r["hospital_id"]: r for r in summary.registrations}
    assert [regs[h]["tier"] for h in sorted(regs)] == ["weak", "medium", "strong"]
    # each round: three on-chain submissions, positive on-chain weights, an ensemble that learns
    for r in (1, 2):
        rnd = frame[frame["round"] == r]
        assert rnd[rnd.metric == "participants"].value.item() == 3
        weights = rnd[rnd.metric == "weight"]
        assert len(weights) == 3 and (weights.value > 0).all()
    final = frame[(frame["round"] == 2) & (frame.hospital == "ensemble")]
    assert final[final.metric == "accuracy"].value.item() > 0.6  # balanced classes: chance 0.5
    # the strong hospital's capacity multiplier shows in its weight at equal-ish metrics
    shard = frame[frame.metric == "shard_size"]
    assert shard.value.sum() == 720 and (shard.value >= 16).all()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["chain"]["chain_id"] > 0 and manifest["chain"]["contract"].startswith("0x")
    assert len(manifest["chain"]["artifact_sha256"]) == 64
    assert manifest["config"]["seed"] == cfg.seed and "torch" in manifest["versions"]
    receipts = json.loads((tmp_path / "run" / "receipts.json").read_text())
    ops = [r["operation"] for r in receipts]
    assert ops.count("registerHospital") == 3 and ops.count("submitUpdate") == 6
    assert ops.count("recordEnsemblePrediction") == 2
    # submissions go out in the order trainings start (largest shard first, ties in hospital
    # order) whatever order training finished in, so the chain's base fee and every signed
    # byte repeat for the same seed and config
    sizes = shard.set_index("hospital").value
    order = [regs[h]["address"].lower() for h in sorted(sorted(regs), key=lambda h: -sizes[h])]
    assert len(set(sizes)) == 3 and order != [regs[h]["address"].lower() for h in sorted(regs)]
    senders = [r["sender"].lower() for r in receipts if r["operation"] == "submitUpdate"]
    assert senders == order * 2
    assert any("ensemble acc" in line for line in lines)


def test_same_seed_same_metrics(ray_local: Any, synth_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_config(synth_dir, **{"train.rounds": 1})
    a = run_simulation(cfg, tmp_path / "a").frame
    other = run_simulation(tiny_config(synth_dir, **{"train.rounds": 1, "seed": 7}),
                           tmp_path / "c").frame
    assert not _metrics(a).equals(_metrics(other))
    # re-running into a folder that holds another run's checkpoints starts from scratch
    b = run_simulation(cfg, tmp_path / "c", existing="overwrite").frame
    pd.testing.assert_frame_equal(_metrics(a), _metrics(b))


def test_twelve_hospitals_mixed_tiers(ray_local: Any, synth_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_config(synth_dir, hospitals="weak:4,medium:4,strong:4",
                      **{"train.rounds": 1, "data.min_shard": 8})
    summary = run_simulation(cfg, tmp_path / "run")
    # hospitals share actor processes here: benchmarks queue per process, and registration
    # keeps the hospital order
    assert [r["hospital_id"] for r in summary.registrations] == [f"h{i:02d}" for i in range(12)]
    assert [r["tier"] for r in summary.registrations] == ["weak"] * 4 + ["medium"] * 4 + [
        "strong"] * 4
    receipts = json.loads((tmp_path / "run" / "receipts.json").read_text())
    registered = [r for r in receipts if r["operation"] == "registerHospital"]
    assert [r["gas_used"] for r in registered] == [
        r["gas_register"] for r in summary.registrations]
    frame = summary.frame
    tiers = frame[frame.metric == "weight"].groupby("tier").size().to_dict()
    assert tiers == {"weak": 4, "medium": 4, "strong": 4}
    assert frame[frame.metric == "participants"].value.item() == 12


def test_hospitals_on_threads_give_the_same_results_as_on_processes(
        ray_local: Any, synth_dir: Path, tmp_path: Path) -> None:
    # six hospitals on four CPUs: one process trains four at once on threads (tiny CNNs draw
    # no random numbers); the same run with one single-threaded process per tier must agree
    cfg = dict(hospitals="weak:2,medium:2,strong:2", **{"train.rounds": 2, "data.min_shard": 8})
    lines: list[str] = []
    threaded = run_simulation(tiny_config(synth_dir, **cfg), tmp_path / "threads",
                              progress=lines.append)
    assert any("1 actor process" in ln and "4 at once on threads" in ln for ln in lines)
    # the coordinator keeps its half CPU, the process the rest: nothing is scaled or time-shared
    assert any(ln.startswith("Resource plan: 6 hospitals in 1 actor process") for ln in lines)
    assert not any("time-shar" in ln for ln in lines)
    lines.clear()
    processes = run_simulation(tiny_config(synth_dir, **cfg, **{
        "runtime.hospitals_per_actor": 2}), tmp_path / "processes", progress=lines.append)
    assert not any("on threads" in ln for ln in lines)
    assert [o.participants for o in threaded.rounds] == [6, 6]
    pd.testing.assert_frame_equal(_metrics(threaded.frame), _metrics(processes.frame))


def test_dropout_attendance_and_deadline(ray_local: Any, synth_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_config(synth_dir, hospitals="weak:2,medium:2,strong:2", **{
        "train.rounds": 3, "tiers.medium.attendance": 0.5, "tiers.strong.attendance": 0.5,
        "data.min_shard": 8,
    })
    summary = run_simulation(cfg, tmp_path / "drop")
    ids = [f"h{i:02d}" for i in range(6)]
    probs = {h: (1.0 if i < 2 else 0.5) for i, h in enumerate(ids)}
    for outcome in summary.rounds:
        expected = draw_attendance(cfg.seed, outcome.round, ids, probs)
        got = {h.hospital_id: h.status == "submitted" for h in outcome.hospitals}
        assert got == expected
        assert outcome.participants == sum(expected.values())

    # virtual clock: the weak profile is ~target-limited (slow), strong is unthrottled. The
    # clock scales measured compute by a 10-step PoC's speed, which a busy machine can skew
    # several-fold between two runs; a weak target of 1 sample/s puts the two tiers ~250x
    # apart, so the deadline between them keeps a ~15x margin on either side.
    slow = {"train.rounds": 1, "tiers.strong.target_throughput": None,
            "tiers.weak.target_throughput": 1.0}
    cfg = tiny_config(synth_dir, **slow)
    probe = run_simulation(cfg, tmp_path / "probe").rounds[0]
    sim = {h.tier: h.simulated_seconds for h in probe.hospitals}
    assert sim["weak"] > 4 * sim["strong"]
    deadline = (sim["weak"] * sim["strong"]) ** 0.5  # geometric middle
    late = run_simulation(tiny_config(synth_dir, **slow, **{"runtime.deadline": deadline}),
                          tmp_path / "late").rounds[0]
    status = {h.tier: h.status for h in late.hospitals}
    assert status["weak"] == "late" and status["strong"] == "submitted"
    assert late.participants == sum(s == "submitted" for s in status.values())


def _round_results(outcomes: list[Any]) -> list[Any]:
    """What a round decided, without its timings."""
    return [(o.round, o.participants, o.ensemble, o.ensemble_hash,
             [(h.hospital_id, h.status, h.weight, h.accuracy, h.ece, h.confidence, h.gas_submit)
              for h in o.hospitals]) for o in outcomes]


def test_next_round_starts_early_with_unchanged_results(
        ray_local: Any, synth_dir: Path, tmp_path: Path) -> None:
    # h00 and h01 share a process; round 2 leaves h00 out while its process-mate trains
    cfg = tiny_config(synth_dir, hospitals="weak:2,strong:1",
                      **{"train.rounds": 3, "runtime.hospitals_per_actor": 2})
    data, part = load_partitioned(cfg)
    plan = [["h00", "h01", "h02"], ["h01", "h02"], ["h00", "h01", "h02"]]

    def rounds(early: bool, folder: Path) -> list[Any]:
        fed = open_federation(cfg, data, part, "early-start", folder)
        try:  # early: round 1 starts while the hospitals are being registered on chain
            fed.register(first_attending=plan[0] if early else None)
            out = [fed.run_round(r, plan[r - 1],
                                 next_attending=plan[r] if early and r < len(plan) else None)
                   for r in range(1, len(plan) + 1)]
            if early:  # a later round must keep the attendance its early start was given
                out.append(fed.run_round(4, plan[0], next_attending=["h00"]))
                with pytest.raises(ChainlearnError, match="started training early"):
                    fed.run_round(5, ["h01"])
            return out
        finally:
            fed.close()

    early = rounds(True, tmp_path / "early")
    one_by_one = rounds(False, tmp_path / "one-by-one")
    assert _round_results(early[:3]) == _round_results(one_by_one)
    assert [o.participants for o in early] == [3, 2, 3, 3]
