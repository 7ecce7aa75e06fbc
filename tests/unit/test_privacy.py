"""Differentially private local training: the accountant reaches the target ε, the same seed
gives the same private result, BatchNorm models are converted and still learn, every method
that trains locally honours ``train.dp``, and bad settings fail before any actor starts."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from chainlearn_ray.data.medmnist import load_dataset
from chainlearn_ray.data.partition import dirichlet_partition
from chainlearn_ray.data.synthetic import write_synthetic
from chainlearn_ray.errors import ConfigError, ModelError
from chainlearn_ray.experiment.loading import load_config
from chainlearn_ray.experiment.privacy_config import (
    check_dp_shards,
    converted_layers,
    privacy_record,
)
from chainlearn_ray.hospital.spec import EvalSplits, TrainShard
from chainlearn_ray.learning.models import build_model
from chainlearn_ray.learning.privacy import DPSettings, PrivacyAccount, make_private_model
from chainlearn_ray.learning.training import train
from chainlearn_ray.methods.centralized import Centralized
from chainlearn_ray.methods.contract import ContractPort
from chainlearn_ray.methods.fedavg import FedAvg, FedProx
from chainlearn_ray.methods.fedmd import FedMD
from chainlearn_ray.methods.messages import TrainSettings
from chainlearn_ray.results.rows import round_rows
from chainlearn_ray.runtime.sequential import run_ours_sequential, run_sequential
from chainlearn_ray.runtime.simulation import load_partitioned

TARGET = 4.0
DP = DPSettings(TARGET, 1e-3, 1.0)


def _dp_config(data_dir: Path, **overrides: Any) -> Any:
    base: dict[str, Any] = {
        "data.dataset": "synthetic", "data.data_dir": str(data_dir), "data.min_shard": 40,
        "data.download": False, "train.rounds": 2, "train.epochs": 2, "train.lr": 0.003,
        "hospitals": "weak:1,medium:1,strong:1", "poc.steps": 10, "poc.warmup": 2,
        "tiers.weak.arch": "tiny_cnn:4", "tiers.medium.arch": "tiny_cnn:4",
        "tiers.strong.arch": "tiny_cnn:4", "train.dp": {"epsilon": TARGET, "delta": 1e-3},
    }
    base.update(overrides)
    return load_config(None, base)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dp")
    write_synthetic(root, "synthetic", n_classes=2, n_channels=1, n_train=360, n_val=60,
                    n_test=80, seed=0)
    return root


def _ours(cfg: Any) -> Any:
    data, part = load_partitioned(cfg)
    return run_ours_sequential(cfg, data, part, ContractPort.open("embedded"))


@pytest.fixture(scope="module")
def ours_dp(data_dir: Path) -> Any:
    return _ours(_dp_config(data_dir))


def _eps_rows(outcomes: list[Any]) -> dict[tuple[int, str], float]:
    out = {}
    for outcome in outcomes:
        for row in round_rows(_key(), outcome):
            if row["metric"] == "dp_epsilon":
                out[(row["round"], row["hospital"])] = row["value"]
    return out


def _key() -> Any:
    from chainlearn_ray.results.rows import RunKey

    return RunKey("r", "synthetic", 1.0, 0, "ours")


@pytest.mark.slow
def test_ours_reaches_the_target_epsilon_after_the_last_round(ours_dp: Any) -> None:
    eps = _eps_rows(ours_dp.outcomes)
    assert sorted({h for _r, h in eps}) == ["h00", "h01", "h02"]
    for h in ("h00", "h01", "h02"):
        assert 0 < eps[(1, h)] < eps[(2, h)]  # spent grows round by round
        assert abs(eps[(2, h)] - TARGET) <= 0.05 * TARGET
    hospital = ours_dp.hospitals["h00"]
    assert hospital.privacy.steps == hospital.privacy.planned  # the budget was planned for this
    assert not any(isinstance(m, nn.BatchNorm2d) for m in hospital.model.modules())


@pytest.mark.slow
def test_same_seed_same_private_result(data_dir: Path, ours_dp: Any) -> None:
    again = _ours(_dp_config(data_dir))
    for a, b in zip(ours_dp.outcomes, again.outcomes, strict=True):
        assert a.ensemble == b.ensemble and a.ensemble_hash == b.ensemble_hash
        assert [(h.accuracy, h.confidence, h.ece, h.weight, h.dp_epsilon) for h in a.hospitals] \
            == [(h.accuracy, h.confidence, h.ece, h.weight, h.dp_epsilon) for h in b.hospitals]


def _pattern(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes told apart by which half of the image is brighter."""
    x = torch.randn(n, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.arange(n) % 2
    x[y == 1, :, :, :8] += 1.0
    x[y == 0, :, :, 8:] += 1.0
    return x, y


def test_batchnorm_model_is_converted() -> None:
    model = build_model("tiny_cnn:4", 2, 1, seed=1)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    private, converted = make_private_model(model)
    assert converted == ["BatchNorm2d"]
    assert any(isinstance(m, nn.GroupNorm) for m in private.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in private.modules())
    assert not any(getattr(m, "inplace", False) for m in private.modules())
    assert converted_layers("tiny_cnn:4") == ("BatchNorm2d",)


@pytest.mark.slow
def test_batchnorm_model_is_converted_and_still_learns() -> None:
    x, y = _pattern(1024)
    private, _ = make_private_model(build_model("tiny_cnn:4", 2, 1, seed=1))
    account = PrivacyAccount(DPSettings(8.0, 1e-4, 1.0), 1024, 64, 6)
    losses = [train(private, x, y, epochs=2, lr=0.01, seed=r, privacy=account).final_loss
              for r in range(3)]
    assert losses[-1] < losses[0] - 0.1
    assert abs(account.spent() - 8.0) <= 0.4


@pytest.mark.slow
def test_private_gradients_match_plain_ones_without_noise_or_clipping() -> None:
    """With no noise and no clipping DP-SGD is ordinary training on Poisson batches: it must
    learn as fast (per-sample gradients of channels-last convolutions would not)."""
    x, y = _pattern(512)
    model = make_private_model(build_model("tiny_cnn:4", 2, 1, seed=1))[0]
    account = PrivacyAccount(DPSettings(1e9, 1e-3, 1e6), 512, 32, 8)
    account.noise = 0.0
    losses = [train(model, x, y, epochs=2, lr=0.01, seed=r, privacy=account).final_loss
              for r in range(3)]
    assert losses[-1] < 0.2


def test_private_training_leaves_the_plain_path_alone() -> None:
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.arange(64) % 2
    a, b = build_model("tiny_cnn:4", 2, 1, seed=3), build_model("tiny_cnn:4", 2, 1, seed=3)
    sa = train(a, x, y, epochs=1, seed=5)
    sb = train(b, x, y, epochs=1, seed=5)
    assert sa.epsilon is None and sa.final_loss == sb.final_loss
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.fixture(scope="module")
def shards(data_dir: Path) -> tuple[list[TrainShard], EvalSplits, np.ndarray]:
    data = load_dataset("synthetic", data_dir)
    evals = EvalSplits(data.val.images, data.val.labels, data.test.images, data.test.labels)
    part = dirichlet_partition(data.train.labels, 3, 1.0, seed=7, min_size=60)
    return ([TrainShard(data.train.images[i], data.train.labels[i]) for i in part.indices],
            evals, data.train.images[:40])


@pytest.mark.slow
@pytest.mark.parametrize("factory", [FedAvg, FedProx, FedMD, Centralized])
def test_baselines_spend_the_budget(shards: Any, factory: Any) -> None:
    train_shards, evals, public = shards
    settings = TrainSettings(epochs=1, batch_size=16, lr=3e-3, seed=7, dp=DP,
                             private_models=True)
    run = run_sequential(factory(), train_shards, evals, tiers=["weak", "medium", "strong"],
                         arch_by_tier={t: "tiny_cnn:4" for t in ("weak", "medium", "strong")},
                         n_classes=2, rounds=2, settings=settings,
                         public=public if factory is FedMD else None)
    eps = [r for r in run.rows if r["metric"] == "dp_epsilon"]
    last = max(r["round"] for r in eps)
    finals = [r["value"] for r in eps if r["round"] == last]
    assert finals and all(abs(v - TARGET) <= 0.05 * TARGET for v in finals)
    assert {r["value"] for r in run.rows if r["metric"] == "dp_delta"} == {DP.delta}
    assert all(c.privacy is not None for c in run.clients)


# ---------------------------------------------------------------------------- errors
def test_unreachable_epsilon_is_one_line_before_any_actor(data_dir: Path) -> None:
    cfg = _dp_config(data_dir, **{"train.dp": {"epsilon": 1e-9, "delta": 1e-5},
                                  "train.rounds": 50})
    with pytest.raises(ConfigError, match=r"train\.dp\.epsilon 1e-09 cannot be reached") as exc:
        check_dp_shards(cfg, [40, 200, 120])
    assert "\n" not in str(exc.value)


def test_delta_at_least_one_over_n_is_refused(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.dp\.delta 0\.05 must be below 1/n"):
        _dp_config(data_dir, **{"train.dp": {"epsilon": 3, "delta": 0.05}})
    cfg = _dp_config(data_dir, **{"tiers.weak.dp": {"delta": 0.02}})  # below 1/min_shard
    with pytest.raises(ConfigError, match=r"tiers\.weak\.dp\.delta 0\.02 must be below 1/n "
                                          r"of the smallest shard \(n = 60"):
        check_dp_shards(cfg, [60, 200, 100])


class Stateful(nn.Module):
    """A trainable layer with a buffer, which no Opacus fixer knows."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.register_buffer("running", torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.running


def test_model_opacus_cannot_make_private_is_refused() -> None:
    with pytest.raises(ModelError, match="Opacus cannot make this model private"):
        make_private_model(nn.Sequential(nn.Flatten(), Stateful()), "tiers.weak.arch")


def test_missing_opacus_is_refused(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opacus", None)  # what an environment without it imports
    with pytest.raises(ConfigError, match=r"train\.dp asks for differential privacy but opacus "
                                          r"is not installed: pip install 'chainlearn_ray\[dp\]'"):
        _dp_config(data_dir)


def test_settings_are_checked_and_named(data_dir: Path) -> None:
    for bad, pattern in [({"epsilon": 0}, r"train\.dp\.epsilon must be positive"),
                         ({"epsilon": "three"}, r"train\.dp\.epsilon must be a number"),
                         ({"epsilon": 3, "max_grad_norm": -1}, r"max_grad_norm must be"),
                         ({"eps": 3}, r"unknown key\(s\) \['eps'\] in train\.dp")]:
        with pytest.raises(ConfigError, match=pattern):
            _dp_config(data_dir, **{"train.dp": bad})


def test_tiers_override_the_run_target(data_dir: Path) -> None:
    cfg = _dp_config(data_dir, **{"tiers.strong.dp": {"epsilon": "inf"},
                                  "tiers.weak.dp": {"epsilon": 8}})
    assert cfg.tiers["weak"].dp == DPSettings(8, 1e-3, 1.0)  # δ from train.dp
    assert math.isinf(cfg.tiers["strong"].dp.epsilon)
    record = privacy_record(cfg)
    assert record["secure_mode"] is False and record["tiers"]["strong"] is None
    assert record["converted_models"] == {"tiny_cnn:4": ["BatchNorm2d"]}
    from chainlearn_ray.planning.placement import hospital_specs

    data = load_dataset("synthetic", data_dir)
    specs = hospital_specs(cfg, data)
    assert [s.dp.epsilon if s.dp else None for s in specs] == [8, TARGET, None]
    assert all(s.private_models and s.dp_epochs == 4 for s in specs)


@pytest.mark.slow
def test_a_restarted_hospital_keeps_its_spent_budget(data_dir: Path, tmp_path: Path) -> None:
    from chainlearn_ray.hospital.site import Hospital
    from chainlearn_ray.planning.placement import hospital_specs

    cfg = _dp_config(data_dir)
    data, part = load_partitioned(cfg)
    spec = hospital_specs(cfg, data, ckpt=tmp_path)[0]
    idx = part.indices[0]
    shard = TrainShard(data.train.images[idx], data.train.labels[idx])
    evals = EvalSplits(data.val.images, data.val.labels, data.test.images, data.test.labels)
    first = Hospital(spec, shard, evals)
    first.sign_registration("weak", b"\x00" * 32, 1, "0x" + "11" * 20)
    report = first.train_round(1, 2)
    assert report.extra["dp_epsilon"] == pytest.approx(first.privacy.spent())
    restarted = Hospital(spec, shard, evals)  # a new process, from the checkpoint
    assert restarted.privacy.history() == first.privacy.history()
    assert restarted.privacy.spent() == first.privacy.spent()
    again = restarted.train_round(2, 2)
    assert abs(again.extra["dp_epsilon"] - TARGET) <= 0.05 * TARGET
