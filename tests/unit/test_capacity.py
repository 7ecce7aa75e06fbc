"""Proof of Capacity: hash preimage, signature, tiers, benchmark, profiles and throttle accuracy."""

from __future__ import annotations

import hashlib
import struct
import time

import pytest
import torch
from eth_account import Account
from eth_account.messages import encode_defunct

from chainlearn_ray.chain.statements import (
    attestation_digest,
    poc_digest,
    sign_poc,
    update_commitment,
)
from chainlearn_ray.errors import ConfigError, ResourceError
from chainlearn_ray.learning.benchmark import run_benchmark
from chainlearn_ray.learning.hardware import HardwareProfile, Pacer, Throttle
from chainlearn_ray.learning.threads import torch_threads
from chainlearn_ray.protocol.poc import benchmark_hash, classify
from chainlearn_ray.protocol.tiers import Tier

KEY = "0x" + "11" * 32
CONTRACT = "0x" + "ab" * 20


def test_benchmark_hash_preimage() -> None:
    expected = hashlib.sha256(struct.pack(">dII", 123.5, 50, 16) + b"Medium").digest()
    assert benchmark_hash(123.5, 50, 16, Tier.MEDIUM) == expected
    assert benchmark_hash(123.5, 50, 16, "medium") == expected
    assert benchmark_hash(123.5, 50, 16, "strong") != expected


def test_signature_recovers_the_hospital_and_binds_the_deployment() -> None:
    h = benchmark_hash(500.0, 50, 16, Tier.STRONG)
    sig = sign_poc(KEY, Tier.STRONG, h, 1337, CONTRACT, name="St. Mary's")
    address = Account.from_key(KEY).address
    digest = poc_digest(address, Tier.STRONG, h, 1337, CONTRACT, name="St. Mary's")
    assert len(sig) == 65
    assert Account.recover_message(encode_defunct(primitive=digest), signature=sig) == address
    other_chain = poc_digest(address, Tier.STRONG, h, 1, CONTRACT, name="St. Mary's")
    assert Account.recover_message(encode_defunct(primitive=other_chain), signature=sig) != address
    other_name = poc_digest(address, Tier.STRONG, h, 1337, CONTRACT, name="St. Mary")
    assert Account.recover_message(encode_defunct(primitive=other_name), signature=sig) != address


def test_statements_keep_the_bytes_of_hand_encoded_abi_words() -> None:
    """Hex vectors from hand-encoded ``abi.encode`` words (32-byte big-endian words joined),
    which the contract's ``keccak256(abi.encode(...))`` also hashes."""
    h = benchmark_hash(500.0, 50, 16, Tier.STRONG)
    assert h.hex() == "51c61fb3f97f26781a1cb216ca347670589a008e680a2877fd6c6ec5d328ef58"
    address = Account.from_key(KEY).address
    assert poc_digest(address, Tier.STRONG, h, 1337, CONTRACT, name="h00").hex() == (
        "7c31e18c4cf59a823cb9236dfc1f98f81fed23878c8963a2c1aca1abd394e714")
    any_case = poc_digest(address.lower(), "weak", h, 31337,
                          CONTRACT.upper().replace("0X", "0x"), name="Hôpital 7")
    assert any_case.hex() == "3c1963cfc889920b238375e3f62405022bf909d3a5ba16d55f21d8e3283c601a"
    challenge, salt = bytes(range(32)), bytes(range(32, 64))
    with_challenge = poc_digest(address, Tier.MEDIUM, h, 1337, CONTRACT, name="h01",
                                challenge=challenge)
    assert with_challenge.hex() == (
        "89b961faf28696970dbc2cb28e7846df72db441b728eb15362f6e0249946fa77")
    assert sign_poc(KEY, Tier.STRONG, h, 1337, CONTRACT, name="h00").hex() == (
        "34a1c11bd54610285ebb4a64c72566f87883515950d521a3b3c6626ac80fa9a7"
        "7bcbbb4a4b3ff44b8f895a018881245645d60a232a4c6a049f813fca0b4f3c561c")
    assert attestation_digest(address, challenge, 123456, 1337, CONTRACT).hex() == (
        "f97c3cce64fe4280102da185278a8eef7c514b45dcf47896564f532e9fceba98")
    assert update_commitment(h, 9000, 1000, 2, salt).hex() == (
        "c0ce3773be754f7de691d21eb11dc553b76df931a9f843cf64f8ee5350ea88fc")
    with pytest.raises(ConfigError, match="20-byte"):
        poc_digest("0x1234", Tier.STRONG, h, 1337, CONTRACT, name="h00")
    with pytest.raises(ConfigError, match="uint256"):
        poc_digest(address, Tier.STRONG, h, 2**256, CONTRACT, name="h00")


@pytest.mark.parametrize(
    ("throughput", "tier"),
    [(0.0, Tier.WEAK), (99.999, Tier.WEAK), (100.0, Tier.MEDIUM), (299.99, Tier.MEDIUM),
     (300.0, Tier.STRONG), (1e6, Tier.STRONG)],
)
def test_classify_default_thresholds(throughput: float, tier: Tier) -> None:
    assert classify(throughput) is tier


def test_classify_custom_thresholds_and_validation() -> None:
    assert classify(1500.0, weak_below=1000.0, medium_below=5000.0) is Tier.MEDIUM
    with pytest.raises(ConfigError):
        classify(10.0, weak_below=300.0, medium_below=100.0)
    with pytest.raises(ConfigError):
        classify(float("nan"))


def test_unthrottled_benchmark_result_is_consistent() -> None:
    result = run_benchmark(steps=10, warmup=2, batch_size=8, threads=1)
    assert (result.steps, result.batch_size) == (10, 8)
    assert result.throughput == pytest.approx(80 / result.seconds)
    assert result.compute_seconds == result.seconds
    assert result.tier is classify(result.throughput)
    assert result.bench_hash == benchmark_hash(result.throughput, 10, 8, result.tier)
    assert run_benchmark(steps=10, warmup=2, batch_size=8, weak_below=1e9,
                         medium_below=2e9).tier is Tier.WEAK


def test_benchmark_validation() -> None:
    with pytest.raises(ConfigError):
        run_benchmark(steps=0)
    if not torch.cuda.is_available():
        with pytest.raises(ResourceError):
            run_benchmark(steps=1, device="cuda")


def test_profiles_validate() -> None:
    assert HardwareProfile("weak").mode == "virtual"
    for bad in ({"threads": 0}, {"target_throughput": 0.0}, {"mode": "fast"},
                {"device": "tpu"}, {"target_throughput": float("inf")}):
        with pytest.raises(ConfigError):
            HardwareProfile("x", **bad)  # type: ignore[arg-type]


def test_slowdown_from_calibration() -> None:
    profile = HardwareProfile("weak", target_throughput=50.0)
    assert Throttle.from_profile(profile, 1000.0).slowdown == pytest.approx(20.0)
    slower = Throttle.from_profile(profile, 20.0)  # machine below the target: no speed-up
    assert slower.slowdown == 1.0
    assert Throttle.calibrate(HardwareProfile("strong")).slowdown == 1.0
    calibrated = Throttle.calibrate(HardwareProfile("weak", target_throughput=10.0), steps=10)
    assert calibrated.unthrottled_throughput is not None
    assert calibrated.slowdown == pytest.approx(calibrated.unthrottled_throughput / 10.0)
    with pytest.raises(ConfigError):
        Throttle(profile, 0.5)


def test_pacer_virtual_and_sleep_clocks() -> None:
    virtual = Pacer(slowdown=3.0, mode="virtual")
    virtual.step(0.01, 10)
    virtual.step(0.02, 10)
    assert virtual.simulated_seconds == pytest.approx(0.09)
    assert virtual.slept_seconds == 0.0
    capped = Pacer(cap=100.0, mode="virtual")
    capped.step(0.01, 50)
    assert capped.simulated_seconds == pytest.approx(0.5)
    sleeper = Pacer(cap=100.0, mode="sleep")
    t0 = time.perf_counter()
    sleeper.step(0.0, 20)
    assert time.perf_counter() - t0 >= 0.19
    assert sleeper.slept_seconds == pytest.approx(0.2, abs=0.05)


def test_virtual_mode_reports_the_target_exactly_and_fast() -> None:
    profile = HardwareProfile("weak", target_throughput=40.0, mode="virtual")
    throttle = Throttle.from_profile(profile, 1000.0)
    t0 = time.perf_counter()
    result = run_benchmark(steps=20, warmup=2, batch_size=16, throttle=throttle)
    assert time.perf_counter() - t0 < 5.0  # 320 samples at 40/s would take 8 s of wall time
    assert result.throughput == pytest.approx(40.0, rel=1e-9)
    assert result.seconds == pytest.approx(8.0)
    assert result.tier is Tier.WEAK
    assert result.compute_seconds < result.seconds


@pytest.mark.parametrize(("target", "tier"), [(40.0, Tier.WEAK), (150.0, Tier.MEDIUM)])
def test_sleep_mode_measured_throughput_within_15_percent(target: float, tier: Tier) -> None:
    # targets far below this machine's speed (~1000 samples/s single-threaded), so the cap binds
    profile = HardwareProfile(tier.label, target_throughput=target, mode="sleep")
    throttle = Throttle.calibrate(profile, steps=10, warmup=2)
    steps, batch = (10, 8) if tier is Tier.WEAK else (20, 16)
    t0 = time.perf_counter()
    result = run_benchmark(steps=steps, warmup=2, batch_size=batch, throttle=throttle)
    wall = time.perf_counter() - t0
    assert result.throughput == pytest.approx(target, rel=0.15)
    assert wall >= 0.85 * steps * batch / target  # the wall clock really slowed down
    assert result.tier is tier


def test_weak_profile_trains_slower_than_strong_on_the_same_machine() -> None:
    from chainlearn_ray.learning.models import build_model
    from chainlearn_ray.learning.training import train

    x = torch.randn(64, 1, 16, 16)
    y = torch.randint(0, 2, (64,))
    seconds = {}
    for tier, target in ((Tier.WEAK, 50.0), (Tier.STRONG, None)):
        profile = HardwareProfile(tier.label, target_throughput=target, mode="virtual")
        throttle = Throttle.calibrate(profile, steps=10, warmup=2)
        stats = train(build_model("tiny_cnn:8", 2, 1), x, y, epochs=1, seed=0,
                      throttle=throttle)
        seconds[tier] = stats.simulated_seconds
    assert seconds[Tier.WEAK] > 3 * seconds[Tier.STRONG]


def test_torch_threads_is_scoped() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
