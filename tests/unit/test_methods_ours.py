"""Ours as a method: its verbs on the in-process executor, against the embedded EVM through the
chain port (a real chain, tiny models, synthetic data)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chainlearn_ray.data.synthetic import write_synthetic
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.loading import load_config
from chainlearn_ray.experiment.methods import ours_for
from chainlearn_ray.methods.contract import ContractPort
from chainlearn_ray.methods.messages import RoundConfig
from chainlearn_ray.methods.ours import REGISTER, TRAIN, Ours
from chainlearn_ray.protocol.ensemble import predict, prediction_hash, weighted_ensemble
from chainlearn_ray.protocol.rounds import ABSENT, ATTENDED, LATE, draw_attendance
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.protocol.weights import compute_weight
from chainlearn_ray.runtime.sequential import OursRun, run_ours_sequential
from chainlearn_ray.runtime.simulation import load_partitioned

ROUNDS = 2


def _config(data_dir: Path, **overrides: Any) -> Any:
    """Tiny CNNs on synthetic data; PoC targets far apart, so tiers follow the hardware."""
    base: dict[str, Any] = {
        "data.dataset": "synthetic", "data.data_dir": str(data_dir), "data.min_shard": 16,
        "data.download": False, "train.rounds": ROUNDS, "train.epochs": 2, "train.lr": 0.003,
        "poc.steps": 10, "poc.warmup": 2, "tiers.weak.arch": "tiny_cnn:4",
        "tiers.medium.arch": "tiny_cnn:8", "tiers.strong.arch": "tiny_cnn:8",
        "poc.weak_below": 25.0, "poc.medium_below": 75.0,
        "tiers.weak.target_throughput": 12.0, "tiers.medium.target_throughput": 40.0,
        "tiers.strong.target_throughput": 150.0,
    }
    base.update(overrides)
    return load_config(None, base)


class Recording:
    """A chain port that records the calls it passes on to a real one."""

    def __init__(self, port: ContractPort) -> None:
        self.port, self.calls = port, []  # type: ignore[var-annotated]

    @property
    def chain_id(self) -> int:
        return self.port.chain_id

    @property
    def contract(self) -> str:
        return self.port.contract

    @property
    def weight_score(self) -> Any:
        return self.port.weight_score

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.port, name)

        def call(*args: Any) -> Any:
            self.calls.append((name, args[0] if name in ("register", "prepare_update") else None))
            return target(*args)

        return call


@dataclass
class Run:
    cfg: Any
    data: Any
    port: ContractPort
    recording: Recording
    run: OursRun


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ours")
    write_synthetic(root, "synthetic", n_classes=2, n_channels=1, n_train=720, n_val=120,
                    n_test=120, seed=0)
    return root


@pytest.fixture(scope="module")
def ours(data_dir: Path) -> Run:
    cfg = _config(data_dir)
    data, part = load_partitioned(cfg)
    port = ContractPort.open("embedded")
    recording = Recording(port)
    run = run_ours_sequential(cfg, data, part, recording)  # type: ignore[arg-type]
    return Run(cfg, data, port, recording, run)


def test_registration_is_round_zero_in_hospital_order(ours: Run) -> None:
    regs = ours.run.method.registrations
    assert [r["hospital_id"] for r in regs] == ["h00", "h01", "h02"]
    assert [r["tier"] for r in regs] == ["weak", "medium", "strong"]
    assert all(r["claimed_tier"] == r["tier"] and r["gas_register"] > 0 for r in regs)
    client = ours.port.client
    assert client.hospital_count() == 3
    for r in regs:
        info = client.hospital_info(r["address"])
        assert info.registered and info.tier == Tier.parse(r["tier"])


def test_weights_come_from_the_chain_and_follow_the_formula(ours: Run) -> None:
    client = ours.port.client
    regs = {r["hospital_id"]: r for r in ours.run.method.registrations}
    for outcome in ours.run.outcomes:
        assert outcome.participants == 3
        for h in outcome.hospitals:
            assert h.status == ATTENDED and h.weight > 0 and h.gas_submit
            sub = client.round_submission(outcome.round, regs[h.hospital_id]["address"])
            assert h.weight == compute_weight(h.tier, sub.confidence, sub.ece, outcome.round)


def test_the_ensemble_combines_the_weights_and_is_recorded(ours: Run) -> None:
    method = ours.run.method
    last = ours.run.outcomes[-1]
    members = [h for h in last.hospitals if h.status == ATTENDED]
    probs = weighted_ensemble([method.latest[h.hospital_id].test_probs for h in members],
                              [h.weight for h in members])
    digest = prediction_hash(predict(probs), last.round)
    assert last.ensemble_hash == "0x" + digest.hex()
    record = ours.port.client.ensemble_record(last.round)
    assert record.prediction_hash == digest and record.participant_count == len(members)
    assert last.ensemble["accuracy"] > 0.6  # balanced classes: chance 0.5
    assert set(last.gas) == {"startNewRound", "recordEnsemblePrediction"}


def test_the_chain_sees_each_round_in_protocol_order(ours: Run) -> None:
    calls = ours.recording.calls
    names = [c[0] for c in calls]
    assert names[:3] == ["register"] * 3
    addresses = {r["hospital_id"]: r["address"] for r in ours.run.method.registrations}
    assert [c[1] for c in calls[:3]] == [addresses[h] for h in ("h00", "h01", "h02")]
    one_round = ["start_round", *["prepare_update"] * 3, *["submit", "round_weight"] * 3,
                 "record_ensemble"]
    assert names[3:] == one_round * ROUNDS
    # submissions are prepared (and relayed) largest shard first
    sizes = {h: int(v.y_train.shape[0]) for h, v in ours.run.hospitals.items()}
    order = sorted(sizes, key=lambda h: -sizes[h])
    assert [c[1] for c in calls[4:7]] == [addresses[h] for h in order]
    receipts = ours.port.receipts()
    senders = [r["sender"].lower() for r in receipts if r["operation"] == "submitUpdate"]
    assert senders == [addresses[h].lower() for h in order] * ROUNDS


def test_summary_books_calldata_up_and_weights_down(ours: Run) -> None:
    from chainlearn_ray.results.rows import RunKey

    rows = ours.run.method.summary(RunKey("r", "synthetic", 1.0, 42, "ours"))
    up = [r for r in rows if r["metric"] == "comm_bytes_up"]
    down = {r["value"] for r in rows if r["metric"] == "comm_bytes_down"}
    assert len(up) == 3 * ROUNDS and all(r["value"] > 100 for r in up)
    assert down == {32.0 * 3}


def test_dropout_attendance_and_a_deadline(data_dir: Path) -> None:
    cfg = _config(data_dir, hospitals="weak:2,strong:2", **{"data.min_shard": 8})
    data, part = load_partitioned(cfg)
    hardware = {f"h{i:02d}": t for i, t in enumerate(["weak", "weak", "strong", "strong"])}
    rates = {"weak": 1.0, "medium": 1.0, "strong": 0.5}
    method = ours_for(cfg, hardware, attendance=rates)
    run = run_ours_sequential(cfg, data, part, ContractPort.open("embedded"), method=method)
    probs = {h: rates[t] for h, t in hardware.items()}
    for outcome in run.outcomes:
        drawn = draw_attendance(cfg.seed, outcome.round, list(hardware), probs)
        got = {h.hospital_id: h.status for h in outcome.hospitals}
        assert got == {h: ATTENDED if yes else ABSENT for h, yes in drawn.items()}
        assert outcome.participants == sum(drawn.values())
    # a deadline nobody meets: everyone is late, nothing is submitted or recorded
    late = ours_for(cfg, hardware, deadline=0.0)
    port = ContractPort.open("embedded")
    run = run_ours_sequential(cfg, data, part, port, method=late)
    for outcome in run.outcomes:
        assert {h.status for h in outcome.hospitals} == {LATE}
        assert outcome.participants == 0 and not outcome.ensemble
    assert not [r for r in port.receipts() if r["operation"] == "recordEnsemblePrediction"]


def test_verbs_refuse_misuse() -> None:
    method = Ours(["h00"])
    assert method.phases_of(0) == (REGISTER,) and method.phases_of(1) == (TRAIN,)
    assert Ours(fresh=True).phases_of(0) == ("reset", REGISTER)
    with pytest.raises(ConfigError, match="connect"):
        method.configure_round(1, TRAIN)
    with pytest.raises(ConfigError):
        method.configure_round(1, "fit")
    ahead = method.configure_ahead(3)
    assert isinstance(ahead, RoundConfig) and (ahead.round, ahead.phase) == (3, TRAIN)
    assert method.configure_evaluate(1, ["h00"]) == {}
    assert method.attending(1, ["h00", "h01"]) == ["h00", "h01"]
    assert np.array_equal(method.attending(1, []), [])


def test_ours_balacc_submits_validation_balanced_accuracy(ours: Run, data_dir: Path) -> None:
    """Ours-BalAcc: the same training, the score field carries validation balanced accuracy on
    a deployment that says so, and the chain's weights follow the formula on it."""
    cfg = _config(data_dir, **{"chain.weight_score": "balanced_accuracy"})
    data, part = load_partitioned(cfg)
    with pytest.raises(ConfigError, match=r"chain\.weight_score: balanced_accuracy"):
        run_ours_sequential(cfg, data, part, ContractPort.open("embedded"))
    port = ContractPort.open("embedded", score="balanced_accuracy")
    run = run_ours_sequential(cfg, data, part, port)
    regs = {r["hospital_id"]: r["address"] for r in run.method.registrations}
    last = run.outcomes[-1]
    for h in last.hospitals:
        report = run.method.latest[h.hospital_id]
        sub = port.client.round_submission(last.round, regs[h.hospital_id])
        assert sub.confidence == report.balanced_accuracy_fixed != report.confidence_fixed
        assert h.weight == compute_weight(h.tier, sub.confidence, sub.ece, last.round)
    # Same seeds, same models: only the weights differ from Ours'.
    for mine, seed in zip(last.hospitals, ours.run.outcomes[-1].hospitals, strict=True):
        assert mine.accuracy == seed.accuracy


def test_an_unknown_weight_score_is_a_config_error(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"chain\.weight_score must be one of"):
        _config(data_dir, **{"chain.weight_score": "brier"})
    with pytest.raises(ConfigError, match="seed mode only"):
        _config(data_dir, **{"chain.weight_score": "balanced_accuracy", "chain.mode": "trust"})


def test_communication_counts_the_predictions_the_ensemble_needs(ours: Run) -> None:
    """Up: the signed submission plus the N × C float32 test probabilities; serving one query
    sends the image to every member and gets C float32 back from each."""
    from chainlearn_ray.results.rows import RunKey

    rows = ours.run.method.summary(RunKey("r", "synthetic", 1.0, 0, "ours"))
    n, c = len(ours.data.test), ours.data.n_classes
    ups = [r["value"] for r in rows if r["metric"] == "comm_bytes_up"]
    calldata = [v for lengths in ours.run.method.calldata.values() for v in lengths.values()]
    assert len(ups) == ROUNDS * 3
    assert sorted(ups) == sorted(v + n * c * 4 for v in calldata)
    (serve,) = [r["value"] for r in rows if r["metric"] == "serve_bytes_per_query"]
    assert serve == 3 * (28 * 28 + 4 * c)
