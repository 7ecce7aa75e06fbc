"""Baselines (FedAvg, FedProx, FedMD, Centralized) with their clients inside hospital actors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.study import StudyConfig
from chainlearn_ray.hospital.site import EvalSplits, Hospital, TrainShard
from chainlearn_ray.learning.hashing import state_dict_bytes
from chainlearn_ray.learning.models import build_model
from chainlearn_ray.methods.base import TrainSettings
from chainlearn_ray.methods.fedavg import FedProx
from chainlearn_ray.methods.fedmd import FedMD, split_public
from chainlearn_ray.results.rows import RunKey
from chainlearn_ray.results.schema import COLUMNS, rows_to_frame
from chainlearn_ray.runtime.baselines import BASELINES, make_method, run_baseline
from chainlearn_ray.runtime.federation import Federation, open_federation
from chainlearn_ray.runtime.sequential import run_sequential
from chainlearn_ray.runtime.simulation import load_partitioned

from .conftest import tiny_config

pytestmark = pytest.mark.slow

ROUNDS, EPOCHS = 2, 1
STUDY = StudyConfig()


@dataclass
class Baselines:
    fed: Federation
    key: RunKey
    rows: dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def baselines(ray_local: Any, synth_dir: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Baselines]:
    """One federation with a packed actor (two medium hospitals) and a strong one; every
    baseline run once through it."""
    cfg = tiny_config(synth_dir, hospitals="medium:2,strong:1",
                      **{"runtime.hospitals_per_actor": 2, "train.rounds": ROUNDS,
                         "train.epochs": EPOCHS, "tiers.medium.arch": "tiny_cnn:4"})
    data, part = load_partitioned(cfg)
    fed = open_federation(cfg, data, part, "baselines", tmp_path_factory.mktemp("ckpt"))
    key = RunKey("baselines", cfg.data.dataset, float(cfg.data.alpha), cfg.seed, "")
    try:
        rows: dict[str, list[dict[str, Any]]] = {}
        for name in BASELINES:
            rows[name] = run_baseline(fed, name, STUDY, key)
        yield Baselines(fed, key, rows)
    finally:
        fed.close()


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return rows_to_frame(rows)


def _value(frame: pd.DataFrame, metric: str, hospital: str | None = None) -> list[float]:
    keep = frame[frame.metric == metric]
    if hospital is not None:
        keep = keep[keep.hospital == hospital]
    return [float(v) for v in keep.value]


def test_the_federation_packs_two_hospitals_into_one_actor(baselines: Baselines) -> None:
    fed = baselines.fed
    assert len(fed.hosts) == 3 and len(fed.actors) == 2
    assert fed.hosts["h00"] is fed.hosts["h01"]  # the two medium hospitals share a process
    for name in ("fedavg", "fedprox", "fedmd"):  # every hospital took part in every baseline
        shards = _frame(baselines.rows[name])
        assert sorted(shards[shards.metric == "shard_size"].hospital) == ["h00", "h01", "h02"]


@pytest.mark.parametrize("name", BASELINES)
def test_each_baseline_learns(baselines: Baselines, name: str) -> None:
    frame = _frame(baselines.rows[name])
    assert tuple(frame.columns) == COLUMNS
    assert set(frame.method) == {name} and set(frame.run_id) == {"baselines"}
    assert _value(frame, "budget_epochs") == [ROUNDS * EPOCHS]  # one budget for every method
    acc = frame[(frame.hospital == "ensemble") & (frame.metric == "accuracy")]
    rounds = 1 if name == "centralized" else ROUNDS
    assert acc["round"].tolist() == list(range(1, rounds + 1))
    assert acc.value.iloc[-1] > 0.6  # balanced two-class test set: chance is 0.5
    for metric in ("macro_f1", "confidence", "ece"):
        assert len(_value(frame, metric, "ensemble")) == rounds


@pytest.mark.parametrize("name", BASELINES)
def test_the_ray_driver_equals_the_sequential_driver(baselines: Baselines, name: str) -> None:
    fed = baselines.fed
    cfg, data, part = fed.cfg, fed.data, fed.part
    specs = sorted(fed.specs, key=lambda s: s.index)
    evals = EvalSplits(data.val.images, data.val.labels, data.test.images, data.test.labels)
    public = None
    indices = [np.asarray(part.indices[s.index]) for s in specs]
    if name == "fedmd":
        pub, _ = split_public(data.train.labels, STUDY.fedmd_public_fraction, cfg.seed)
        public = data.train.images[pub]
        indices = [idx[~np.isin(idx, pub)] for idx in indices]
    shards = [TrainShard(data.train.images[i], data.train.labels[i]) for i in indices]
    run = run_sequential(
        make_method(name, STUDY), shards, evals, tiers=[s.hardware_tier for s in specs],
        arch_by_tier={label: t.arch for label, t in cfg.tiers.items()},
        n_classes=data.n_classes, rounds=cfg.train.rounds,
        settings=TrainSettings(epochs=cfg.train.epochs, batch_size=cfg.train.batch_size,
                               lr=cfg.train.lr, seed=cfg.seed),
        key=baselines.key, public=public,
    )
    assert baselines.rows[name] == run.rows  # every row, every float, bit for bit


def test_traffic_is_the_real_serialised_size(baselines: Baselines) -> None:
    cfg, data = baselines.fed.cfg, baselines.fed.data
    model = build_model(cfg.tiers["strong"].arch, data.n_classes, 1, seed=0)
    size = len(state_dict_bytes(model.state_dict()))
    for name in ("fedavg", "fedprox"):
        frame = _frame(baselines.rows[name])
        for hid in ("h00", "h01", "h02"):
            assert _value(frame, "comm_bytes_up", hid) == [size] * ROUNDS
            assert _value(frame, "comm_bytes_down", hid) == [size] * ROUNDS
        params = set(_value(frame, "model_params"))
        assert len(params) == 1  # every client trains the strong tier's architecture
    # FedMD: float32 logits up and consensus down, n_public x n_classes x 4 bytes
    n_public = len(split_public(data.train.labels, STUDY.fedmd_public_fraction, cfg.seed)[0])
    fedmd = _frame(baselines.rows["fedmd"])
    for hid in ("h00", "h01", "h02"):
        assert _value(fedmd, "comm_bytes_up", hid) == [n_public * data.n_classes * 4] * ROUNDS
        assert _value(fedmd, "comm_bytes_down", hid) == [n_public * data.n_classes * 4] * ROUNDS
    # FedMD trains each tier's own architecture; Centralized sends nothing
    assert len(set(_value(fedmd, "model_params"))) == 2
    central = _frame(baselines.rows["centralized"])
    assert not central.metric.str.startswith("comm_").any()
    assert _value(central, "shard_size", "central") == [len(data.train.labels)]


def test_hospital_processes_yield_to_the_coordinator(baselines: Baselines) -> None:
    import os

    import ray

    from chainlearn_ray.runtime.hospital_actor import HOSPITAL_NICENESS

    for actor in baselines.fed.actors:
        pid = ray.get(actor.pid.remote())
        assert os.getpriority(os.PRIO_PROCESS, pid) == HOSPITAL_NICENESS


def test_unknown_baseline_is_refused(baselines: Baselines) -> None:
    with pytest.raises(ConfigError, match="fedavg"):
        run_baseline(baselines.fed, "fedsgd", STUDY, baselines.key)


def test_baselines_leave_ours_untouched(baselines: Baselines) -> None:
    """After every baseline ran, Ours registers and trains exactly like fresh hospitals."""
    fed = baselines.fed
    regs = fed.register()
    outcome = fed.run_round(1, sorted(fed.hosts))
    by_id = {h.hospital_id: h for h in outcome.hospitals}
    data = fed.data
    evals = EvalSplits(data.val.images, data.val.labels, data.test.images, data.test.labels)
    for reg, spec in zip(sorted(regs, key=lambda r: r["hospital_id"]),
                         sorted(fed.specs, key=lambda s: s.hospital_id), strict=True):
        idx = fed.part.indices[spec.index]
        fresh = Hospital(replace(spec, checkpoint_dir=None),
                         TrainShard(data.train.images[idx], data.train.labels[idx]), evals)
        fresh.sign_registration(reg["tier"], bytes.fromhex(reg["bench_hash"][2:]),
                                fed.chain["chain_id"], fed.chain["contract"])
        report = fresh.train_round(1, fed.cfg.train.epochs)
        got = by_id[spec.hospital_id]
        assert got.status == "submitted", got.error
        assert (got.confidence, got.ece) == (report.confidence, report.ece)



def test_methods_take_the_study_settings() -> None:
    study = StudyConfig(fedprox_mu=0.05, fedmd_public_fraction=0.2, fedmd_temperature=2.0,
                        fedmd_digest_epochs=1, fedmd_digest_lr=5e-4)
    prox = make_method("fedprox", study)
    assert isinstance(prox, FedProx) and prox.mu == 0.05
    md = make_method("fedmd", study)
    assert isinstance(md, FedMD)
    assert (md.public_fraction, md.temperature, md.digest_epochs, md.digest_lr) == (
        0.2, 2.0, 1, 5e-4)
    assert make_method("centralized", study).schedule(3, 2) == (1, 6)
