"""FedAvg, FedProx, FedMD and Centralized run in-process on synthetic data with tiny models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from chainlearn_ray.data.medmnist import MedMNISTData, load_dataset
from chainlearn_ray.data.partition import dirichlet_partition
from chainlearn_ray.data.synthetic import write_synthetic
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.hospital.site import EvalSplits, Hospital, HospitalSpec, TrainShard
from chainlearn_ray.learning.hashing import state_dict_bytes
from chainlearn_ray.learning.models import build_model, count_parameters
from chainlearn_ray.learning.threads import torch_threads
from chainlearn_ray.methods.base import Client, FederatedMethod, TrainSettings
from chainlearn_ray.methods.centralized import CENTRAL_ID, Centralized
from chainlearn_ray.methods.comm import (
    WEIGHT_READ_BYTES,
    ensemble_serve_bytes,
    ours_comm_bytes,
    state_bytes,
)
from chainlearn_ray.methods.fedavg import FedAvg, FedProx
from chainlearn_ray.methods.fedmd import FedMD, fedmd_split, split_public
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.results.schema import COLUMNS, rows_to_frame
from chainlearn_ray.runtime.sequential import SequentialRun, run_sequential

ARCH = {"weak": "tiny_cnn:4", "medium": "tiny_cnn:6", "strong": "tiny_cnn:8"}
TIERS = ["weak", "medium", "strong"]
ROUNDS = 2
SETTINGS = TrainSettings(epochs=2, batch_size=16, lr=1e-3, seed=7)


@dataclass
class Setup:
    data: MedMNISTData
    evals: EvalSplits
    shards: list[TrainShard]
    public: np.ndarray
    fedmd_shards: list[TrainShard]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root: Path = tmp_path_factory.mktemp("fed")
    write_synthetic(root, n_train=400, n_val=60, n_test=200, seed=11)
    data = load_dataset("synthetic", root)
    evals = EvalSplits(data.val.images, data.val.labels, data.test.images, data.test.labels)
    part = dirichlet_partition(data.train.labels, 3, 1.0, seed=7, min_size=60)
    shards = [TrainShard(data.train.images[i], data.train.labels[i]) for i in part.indices]
    public, private, _ = fedmd_split(data.train.labels, 3, 1.0, fraction=0.1, seed=7,
                                     min_size=50)
    fedmd_shards = [TrainShard(data.train.images[i], data.train.labels[i]) for i in private]
    return Setup(data, evals, shards, data.train.images[public], fedmd_shards)


def _run(setup: Setup, method: FederatedMethod) -> SequentialRun:
    shards = setup.fedmd_shards if isinstance(method, FedMD) else setup.shards
    return run_sequential(method, shards, setup.evals, tiers=TIERS, arch_by_tier=ARCH,
                          n_classes=2, rounds=ROUNDS, settings=SETTINGS,
                          public=setup.public if isinstance(method, FedMD) else None)


_CACHE: dict[str, SequentialRun] = {}


def _cached(setup: Setup, name: str) -> SequentialRun:
    if name not in _CACHE:
        factory = {"fedavg": FedAvg, "fedprox": FedProx, "fedmd": FedMD,
                   "centralized": Centralized}[name]
        _CACHE[name] = _run(setup, factory())
    return _CACHE[name]


@pytest.mark.parametrize("name", ["fedavg", "fedprox", "fedmd", "centralized"])
def test_each_method_learns(setup: Setup, name: str) -> None:
    run = _cached(setup, name)
    assert run.method.name == name
    assert run.metrics["accuracy"] > 0.6  # balanced two-class test set: chance is 0.5
    frame = rows_to_frame(run.rows)
    assert tuple(frame.columns) == COLUMNS
    assert set(frame["method"]) == {name}
    budget = frame[frame["metric"] == "budget_epochs"]["value"].tolist()
    assert budget == [ROUNDS * SETTINGS.epochs]  # one training budget for every method
    acc = frame[(frame["hospital"] == "ensemble") & (frame["metric"] == "accuracy")]
    assert acc["round"].tolist() == list(range(1, run.rounds + 1))
    assert acc["value"].iloc[-1] == run.metrics["accuracy"]


def test_fedavg_traffic_is_the_serialised_state_size(setup: Setup) -> None:
    run = _cached(setup, "fedavg")
    assert isinstance(run.method, FedAvg) and run.method.global_state is not None
    frame = rows_to_frame(run.rows)
    down = len(state_dict_bytes(run.method.global_state))
    for client in run.clients:
        up = len(state_dict_bytes(client.model.state_dict()))  # type: ignore[union-attr]
        mine = frame[frame["hospital"] == client.hospital_id]
        assert mine[mine["metric"] == "comm_bytes_up"]["value"].tolist() == [up] * ROUNDS
        assert mine[mine["metric"] == "comm_bytes_down"]["value"].tolist() == [down] * ROUNDS
        assert set(mine["tier"]) == {client.tier.label}
    # every client trains the Strong tier's architecture
    counts = {count_parameters(c.model) for c in run.clients}  # type: ignore[arg-type]
    assert counts == {count_parameters(build_model(ARCH["strong"], 2, 1))}


def test_traffic_scales_with_parameter_count() -> None:
    sizes, floats = {}, {}
    for arch in ("tiny_cnn:4", "tiny_cnn:8", "tiny_cnn:16"):
        model = build_model(arch, 2, 1, seed=0)
        method = FedAvg()
        method.initialize(model.state_dict())
        config = method.configure_round(1, "fit")
        assert config.bytes_down == len(state_dict_bytes(model)) == state_bytes(model)
        sizes[arch] = config.bytes_down
        floats[arch] = sum(v.numel() for v in model.state_dict().values() if v.is_floating_point())
        assert floats[arch] > count_parameters(model)  # BN running statistics travel too
    # same keys and ranks, so the byte difference is exactly 4 bytes per float32 value
    assert sizes["tiny_cnn:8"] - sizes["tiny_cnn:4"] == 4 * (floats["tiny_cnn:8"]
                                                             - floats["tiny_cnn:4"])
    assert sizes["tiny_cnn:16"] - sizes["tiny_cnn:8"] == 4 * (floats["tiny_cnn:16"]
                                                              - floats["tiny_cnn:8"])


def test_fedprox_uses_its_proximal_term(setup: Setup) -> None:
    avg, prox = _cached(setup, "fedavg"), _cached(setup, "fedprox")
    assert isinstance(prox.method, FedProx) and prox.method.mu == 0.01
    a, p = avg.method.global_state, prox.method.global_state  # type: ignore[attr-defined]
    assert any(not torch.equal(a[k], p[k]) for k in a)
    assert prox.method.comm(1, "h00") == avg.method.comm(1, "h00")


def test_same_seed_same_results(setup: Setup) -> None:
    first = _cached(setup, "fedprox")
    again = _run(setup, FedProx())
    assert np.array_equal(first.test_probs, again.test_probs)
    g1, g2 = first.method.global_state, again.method.global_state  # type: ignore[attr-defined]
    assert all(torch.equal(g1[k], g2[k]) for k in g1)
    assert first.rows == again.rows


def test_fedmd_traffic_is_the_public_logits(setup: Setup) -> None:
    run = _cached(setup, "fedmd")
    assert isinstance(run.method, FedMD) and run.method.consensus is not None
    n_public = len(setup.public)
    assert run.method.consensus.shape == (n_public, 2)
    frame = rows_to_frame(run.rows)
    comm = frame[frame["metric"].str.startswith("comm_bytes")]
    assert len(comm) == 2 * 3 * ROUNDS
    assert set(comm["value"]) == {4 * n_public * 2}  # float32 (N_public, C)
    # FedMD keeps each tier's own architecture, and the rows state each one's real size
    params = [count_parameters(c.model) for c in run.clients]  # type: ignore[arg-type]
    assert params == sorted(set(params))
    stated = frame[frame["metric"] == "model_params"].set_index("hospital")["value"]
    assert stated.tolist() == params
    shard_rows = frame[frame["metric"] == "shard_size"]["value"].tolist()
    assert shard_rows == [len(s.y) for s in setup.fedmd_shards]


def test_centralized_pools_all_data_in_one_run(setup: Setup) -> None:
    run = _cached(setup, "centralized")
    assert (run.rounds, run.epochs) == (1, ROUNDS * SETTINGS.epochs)
    assert [c.hospital_id for c in run.clients] == [CENTRAL_ID]
    assert run.clients[0].n_samples == sum(len(s.y) for s in setup.shards)
    assert not any(r["metric"].startswith("comm_") for r in run.rows)


def test_public_split_is_seeded_and_disjoint(setup: Setup) -> None:
    labels = setup.data.train.labels
    pub, priv = split_public(labels, 0.1, seed=7)
    assert len(pub) == 40 and len(priv) == 360
    assert np.intersect1d(pub, priv).size == 0
    assert np.array_equal(np.union1d(pub, priv), np.arange(400))
    assert np.array_equal(pub, split_public(labels, 0.1, seed=7)[0])
    assert not np.array_equal(pub, split_public(labels, 0.1, seed=8)[0])
    public, shards, part = fedmd_split(labels, 3, 0.5, fraction=0.1, seed=7, min_size=20)
    assert np.array_equal(public, pub)
    joined = np.concatenate(shards)
    assert np.array_equal(np.sort(joined), priv)
    assert part.sizes.tolist() == [len(s) for s in shards]
    with pytest.raises(ConfigError):
        split_public(labels, 1.0, seed=0)


def test_misuse_is_reported() -> None:
    with pytest.raises(ConfigError):
        FedAvg().configure_round(1, "fit")
    with pytest.raises(ConfigError):
        FedAvg().initialize(None)
    with pytest.raises(ConfigError):
        FedMD().configure_round(1, "digest")
    with pytest.raises(ConfigError):
        FedMD().configure_round(1, "fit")
    with pytest.raises(ConfigError):
        FedProx(mu=0.0)
    with pytest.raises(ConfigError):
        TrainSettings(epochs=1, lr=0.0)


def test_ours_traffic_is_calldata_and_weight_words() -> None:
    from eth_account import Account

    account = Account.from_key(b"\x01" * 32)
    calldata = "0x" + "ab" * (4 + 4 * 32)  # selector + 4 ABI words, like submitUpdate
    raw = bytes(Account.sign_transaction(
        {"to": "0x" + "11" * 20, "data": calldata, "gas": 300_000, "gasPrice": 10**9,
         "nonce": 0, "chainId": 1, "value": 0},
        account.key,
    ).raw_transaction)
    comm = ours_comm_bytes(len(raw), weight_reads=3)
    assert comm.up == len(raw) > 4 + 4 * 32
    assert comm.down == 3 * WEIGHT_READ_BYTES == 96
    with pytest.raises(ConfigError):
        ours_comm_bytes(-1, 0)
    with_probs = ours_comm_bytes(len(raw), 3, prediction_bytes=624 * 2 * 4)
    assert with_probs.up == len(raw) + 4992 and with_probs.down == comm.down
    assert ensemble_serve_bytes(3, 28 * 28, 2) == 3 * (784 + 8)


def test_clients_wrap_plain_hospitals(setup: Setup) -> None:
    spec = dict(arch_by_tier=ARCH, seed=3, n_classes=2, in_channels=1, batch_size=16)
    hospitals = []
    for i, tier in enumerate((Tier.WEAK, Tier.STRONG)):
        h = Hospital(HospitalSpec(f"h{i:02d}", i, tier, **spec), setup.shards[i], setup.evals)
        h.sign_registration(tier.label, bytes(32), 1, "0x" + "11" * 20)
        hospitals.append(h)
    strong = ARCH["strong"]
    clients = [Client.from_hospital(h, model=build_model(strong, 2, 1, seed=i))
               for i, h in enumerate(hospitals)]
    assert [c.tier for c in clients] == [Tier.WEAK, Tier.STRONG]
    assert clients[0].n_samples == len(setup.shards[0].y)
    assert Client.from_hospital(hospitals[0]).model is hospitals[0].model
    method = FedAvg()
    method.initialize(build_model(strong, 2, 1, seed=0).state_dict())
    config = method.configure_round(1, "fit")
    settings = TrainSettings(epochs=1, batch_size=16, seed=3)
    with torch_threads(1):
        results = [method.client_step(c, config, settings) for c in clients]
    method.aggregate(1, "fit", results)
    assert [r.n_samples for r in results] == [len(setup.shards[i].y) for i in range(2)]
    assert method.comm(1, "h01").down == config.bytes_down
    assert method.comm(1, "h01").up == len(state_dict_bytes(clients[1].model))  # type: ignore[arg-type]
