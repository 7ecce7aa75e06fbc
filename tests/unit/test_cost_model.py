"""The cost-model clock: arithmetic, PoC and training on it, config, calibration cache, CLI."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest
import torch

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.clock import clock_record, config_record, cost_model_of
from chainlearn_ray.experiment.config import (
    REFERENCE_POC_THROUGHPUT,
    REFERENCE_SECONDS_PER_SAMPLE,
    builtin_cost_model,
)
from chainlearn_ray.experiment.loading import load_config
from chainlearn_ray.learning import calibration
from chainlearn_ray.learning.benchmark import run_benchmark
from chainlearn_ray.learning.cost import POC_KEY, CostModel
from chainlearn_ray.learning.hardware import HardwareProfile, Throttle
from chainlearn_ray.learning.models import build_model
from chainlearn_ray.learning.training import train
from chainlearn_ray.protocol.tiers import Tier

#: A table with round numbers: known answers below.
COSTS = CostModel({"resnet50": 0.02, "tiny_cnn": 2.72e-4, "tiny_cnn:4": 1e-3}, 4000.0)


def test_cost_arithmetic_known_answers() -> None:
    assert COSTS.per_sample("resnet50") == pytest.approx(0.02)
    # other sizes: (2 + pixels / 28^2) / 3 of the 28 px cost, unless the table has the size
    assert COSTS.per_sample("resnet50", 56, 56) == pytest.approx(0.04)  # 4x the pixels: 2x
    assert COSTS.per_sample("resnet50", 28, 56) == pytest.approx(0.02 * 4 / 3)
    assert COSTS.per_sample("resnet50", 224, 224) == pytest.approx(0.02 * 22)
    sized = CostModel({"resnet50": 0.02, "resnet50@224": 0.5}, 4000.0)
    assert sized.per_sample("resnet50", 224, 224) == 0.5
    assert sized.per_sample("resnet50", 56, 56) == pytest.approx(0.04)
    # a tiny_cnn width without an entry: half fixed, half growing with (w^2 + w) / 272
    assert COSTS.per_sample("tiny_cnn:8") == pytest.approx(2.72e-4 * (1 + 72 / 272) / 2)
    assert COSTS.per_sample("tiny_cnn:32") == pytest.approx(2.72e-4 * (1 + 1056 / 272) / 2)
    assert COSTS.per_sample("tiny_cnn:16") == pytest.approx(2.72e-4)
    assert COSTS.per_sample("tiny_cnn:4") == pytest.approx(1e-3)  # its own entry wins
    assert COSTS.slowdown(50.0) == pytest.approx(80.0)
    assert COSTS.slowdown(None) == 1.0
    assert COSTS.slowdown(8000.0) == pytest.approx(0.5)  # faster than the reference machine
    assert COSTS.poc_throughput_of(None) == 4000.0 and COSTS.poc_throughput_of(12.0) == 12.0
    # 100 samples x 0.02 s x slowdown 4000/400
    assert COSTS.training_seconds("resnet50", 100, 400.0) == pytest.approx(20.0)
    assert COSTS.training_seconds("resnet50", 100, 400.0, height=56, width=56) == \
        pytest.approx(40.0)
    with pytest.raises(ConfigError, match=r"runtime\.clock: measured"):
        COSTS.per_sample("efficientnet_b0")
    with pytest.raises(ConfigError):
        COSTS.per_sample("resnet50:2")


def test_cost_tables_validate_and_merge() -> None:
    for bad in ({}, {"resnet50": 0.0}, {"resnet50": -1.0}, {"resnet50": "fast"},
                {"resnet50": float("nan")}, {"resnet50": True}):
        with pytest.raises(ConfigError):
            CostModel(bad, 1000.0)
    with pytest.raises(ConfigError):
        CostModel({"resnet50": 0.02}, 0.0)
    merged = CostModel.from_table({"resnet50": 0.05, POC_KEY: 2000}, COSTS)
    assert merged.per_sample("resnet50") == 0.05 and merged.per_sample("tiny_cnn:4") == 1e-3
    assert merged.poc_throughput == 2000.0 and merged.source == "config"
    with pytest.raises(ConfigError, match=POC_KEY):
        CostModel.from_table({"resnet50": 0.05})
    table = COSTS.table()
    assert table[POC_KEY] == 4000.0 and CostModel.from_table(table) == COSTS
    record = COSTS.record()
    assert record["reference_side"] == 28 and record["seconds_per_sample"]["resnet50"] == 0.02


def test_training_on_the_cost_clock_is_the_formula_whatever_the_load() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(100, 1, 16, 16, generator=gen), torch.randint(0, 2, (100,), generator=gen)
    cost = CostModel({"tiny_cnn:8": 0.001}, 1000.0)
    throttle = Throttle.from_cost_model(HardwareProfile("weak", target_throughput=250.0), cost)
    assert throttle.clock == "cost" and throttle.slowdown == pytest.approx(4.0)
    expected = 2 * 100 * 0.001 * (2 + (16 * 16) / (28 * 28)) / 3 * 4.0
    runs = []
    for _ in range(2):
        stats = train(build_model("tiny_cnn:8", 2, 1, seed=0), x, y, epochs=2, seed=0,
                      throttle=throttle)
        assert stats.samples == 200
        assert stats.simulated_seconds == pytest.approx(expected, rel=1e-12)
        assert stats.seconds < 5.0  # virtual: nothing sleeps
        runs.append(stats.simulated_seconds)
    assert runs[0] == runs[1]
    # a model the cost model cannot name is refused, with what to do
    with pytest.raises(ConfigError, match="build_model"):
        train(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 2)), x, y, epochs=1,
              seed=0, throttle=throttle)


@pytest.mark.parametrize(("target", "tier"), [(40.0, Tier.WEAK), (150.0, Tier.MEDIUM),
                                              (1234.5, Tier.STRONG), (None, Tier.STRONG)])
def test_poc_on_the_cost_clock_reports_the_profile_exactly(target: float | None,
                                                           tier: Tier) -> None:
    throttle = Throttle.from_cost_model(HardwareProfile(tier.label, target_throughput=target),
                                        COSTS)
    result = run_benchmark(steps=10, warmup=1, batch_size=8, throttle=throttle)
    expected = COSTS.poc_throughput_of(target)
    assert result.seconds == 80 / expected
    assert result.throughput == pytest.approx(expected, rel=1e-12)
    assert result.tier is tier


def test_sleep_mode_on_the_cost_clock_really_sleeps_to_the_priced_time() -> None:
    throttle = Throttle.from_cost_model(
        HardwareProfile("weak", target_throughput=100.0, mode="sleep"), COSTS)
    t0 = time.perf_counter()
    result = run_benchmark(steps=5, warmup=1, batch_size=8, throttle=throttle)
    assert result.seconds == pytest.approx(0.4)  # the priced time, not the wall time
    assert time.perf_counter() - t0 >= 0.38


def test_cost_throttle_validation() -> None:
    profile = HardwareProfile("strong", target_throughput=8000.0)
    assert Throttle.from_cost_model(profile, COSTS).slowdown == pytest.approx(0.5)
    with pytest.raises(ConfigError):
        Throttle(profile, 0.5)  # the measured clock cannot run faster than the machine
    with pytest.raises(ConfigError):
        Throttle(profile, 0.0, cost=COSTS)


def test_config_clock_defaults_and_errors() -> None:
    cfg = load_config()
    assert (cfg.runtime.clock, cfg.runtime.cost_model) == ("cost", "builtin")
    cost = cost_model_of(cfg)
    assert cost == builtin_cost_model() and cost is not None and cost.source == "builtin"
    assert cost.poc_throughput == REFERENCE_POC_THROUGHPUT
    assert set(REFERENCE_SECONDS_PER_SAMPLE) == {
        "tiny_cnn", "mobilenet_v3_small", "efficientnet_b0", "resnet50"}
    record = config_record(cfg, cost)
    assert record["runtime"]["cost_model"] == cost.table()
    assert clock_record(cfg, cost)["cost_model"]["source"] == "builtin"
    measured = load_config(None, {"runtime.clock": "measured"})
    assert cost_model_of(measured) is None
    assert config_record(measured, None)["runtime"]["cost_model"] == "builtin"
    assert clock_record(measured, None) == {"clock": "measured", "throttle": "virtual",
                                            "cost_model": None}
    given = load_config(None, {"runtime.cost_model": "tiny_cnn=0.001,poc_throughput=2000"})
    assert given.runtime.cost_model == {"tiny_cnn": 0.001, POC_KEY: 2000.0}
    from_config = cost_model_of(given)
    assert from_config is not None and from_config.source == "config"
    assert from_config.per_sample("tiny_cnn") == 0.001
    assert from_config.per_sample("resnet50") == REFERENCE_SECONDS_PER_SAMPLE["resnet50"]
    yaml_like = load_config(None, {"runtime.cost_model": {"resnet50": 0.03}})
    assert cost_model_of(yaml_like).per_sample("resnet50") == 0.03  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r"cost .* or measured"):
        load_config(None, {"runtime.clock": "wall"})
    with pytest.raises(ConfigError, match=r"builtin .* calibrate"):
        load_config(None, {"runtime.cost_model": "guess"})
    with pytest.raises(ConfigError, match=r"runtime\.cost_model"):
        load_config(None, {"runtime.cost_model": {"resnet50": -1}})
    with pytest.raises(ConfigError, match=r"resnet50=0\.02"):
        load_config(None, {"runtime.cost_model": "resnet50=fast"})
    # with a table that cannot price a tier's architecture, the config names the tier
    with pytest.raises(ConfigError, match=r"tiers\.weak\.arch"):
        load_config(None, {"tiers.weak.arch": "unknown_net"})
    # an unknown architecture is refused under any clock, before Ray starts
    with pytest.raises(ConfigError, match=r"tiers\.weak\.arch: unknown architecture"):
        load_config(None, {"tiers.weak.arch": "unknown_net", "runtime.clock": "measured"})


def test_calibration_measures_once_per_machine(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_sample(arch: str, **_kw: object) -> float:
        calls.append(arch)
        return 0.001 * len(calls)

    def fake_poc(**_kw: object) -> float:
        calls.append("poc")
        return 3000.0

    monkeypatch.setattr(calibration, "measure_seconds_per_sample", fake_sample)
    monkeypatch.setattr(calibration, "measure_poc_throughput", fake_poc)
    first = calibration.calibrated_cost_model(["tiny_cnn:4"], cache_dir=tmp_path)
    assert calls == ["tiny_cnn:4", "poc"] and first.source == "calibrated"
    assert first.machine["threads"] == 1 and "torch" in first.machine
    again = calibration.calibrated_cost_model(["tiny_cnn:4"], cache_dir=tmp_path)
    assert calls == ["tiny_cnn:4", "poc"] and again == first  # read from the cache
    more = calibration.calibrated_cost_model(["tiny_cnn:4", "resnet50"], cache_dir=tmp_path)
    assert calls == ["tiny_cnn:4", "poc", "resnet50"]  # only what was missing
    assert more.per_sample("tiny_cnn:4") == first.per_sample("tiny_cnn:4")
    sized = calibration.calibrated_cost_model(["tiny_cnn:4"], sides=[64], cache_dir=tmp_path)
    assert calls[-1] == "tiny_cnn:4" and len(calls) == 4  # 28 px cached, 64 px measured
    assert set(sized.seconds_per_sample) == {"tiny_cnn:4", "tiny_cnn:4@64"}
    cached = json.loads(calibration.cache_path(calibration.machine_key(1), tmp_path).read_text())
    assert cached["machine"] == calibration.machine_key(1) and cached[POC_KEY] == 3000.0
    assert calibration.cache_path(calibration.machine_key(2), tmp_path) != \
        calibration.cache_path(calibration.machine_key(1), tmp_path)
    # the config's calibrate option measures the built-in architectures and the tiers' own
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cfg = load_config(None, {"runtime.cost_model": "calibrate", "tiers.weak.arch": "tiny_cnn:4",
                             "data.resize": 64})
    got = cost_model_of(cfg)
    assert got is not None and got.source == "calibrated"
    archs = {*REFERENCE_SECONDS_PER_SAMPLE, "tiny_cnn:4"}
    assert set(got.seconds_per_sample) == archs | {f"{a}@64" for a in archs}
    assert list((tmp_path / "xdg" / "chainlearn").glob("cost-model-*.json"))


def test_real_measurement_is_positive() -> None:
    assert calibration.measure_seconds_per_sample("tiny_cnn:4", samples=64, repeats=1) > 0
    assert calibration.measure_poc_throughput(steps=5, warmup=1, repeats=1) > 0


def test_run_command_documents_and_passes_the_clock() -> None:
    from chainlearn_ray.commands.run import add_arguments, overrides

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = parser.format_help()
    assert "--clock {cost,measured}" in text and "--cost-model" in text
    args = parser.parse_args(["--clock", "measured", "--cost-model", "calibrate"])
    over = overrides(args)
    assert over["runtime.clock"] == "measured" and over["runtime.cost_model"] == "calibrate"
    with pytest.raises(SystemExit):
        parser.parse_args(["--clock", "wall"])
