"""Attack settings and the PoC claim check the coordinator applies at registration."""

from __future__ import annotations

import numpy as np
import pytest

from chainlearn_ray.errors import ChainlearnError, ConfigError
from chainlearn_ray.learning.benchmark import run_benchmark
from chainlearn_ray.learning.hardware import HardwareProfile, Throttle
from chainlearn_ray.methods.attacks import (
    CapacityClaimError,
    InflatedAttack,
    LazyAttack,
    SpoofAttack,
    check_claim,
    verify_claim,
)
from chainlearn_ray.methods.names import METHODS
from chainlearn_ray.protocol.poc import benchmark_hash
from chainlearn_ray.protocol.tiers import Tier

K, B = 50, 16


@pytest.mark.parametrize(("throughput", "tier"), [(42.0, Tier.WEAK), (150.0, Tier.MEDIUM),
                                                  (900.0, Tier.STRONG)])
@pytest.mark.parametrize("policy", ["correct", "refuse"])
def test_honest_claims_are_accepted(throughput: float, tier: Tier, policy: str) -> None:
    h = benchmark_hash(throughput, K, B, tier)
    assert verify_claim(tier.label, throughput, K, B, h, policy=policy) == tier  # type: ignore[arg-type]
    assert check_claim(tier, throughput, K, B, h).honest


@pytest.mark.parametrize("hash_tier", [Tier.WEAK, Tier.STRONG])
def test_weak_hospital_claiming_strong_is_corrected_or_refused(hash_tier: Tier) -> None:
    # hash of the honest measurement, or a hash that binds the false claim: both are caught by
    # recomputing the tier from the signed throughput
    h = benchmark_hash(42.0, K, B, hash_tier)
    assert verify_claim("strong", 42.0, K, B, h, policy="correct") == Tier.WEAK
    with pytest.raises(CapacityClaimError, match="register as Weak"):
        verify_claim("strong", 42.0, K, B, h, policy="refuse")
    check = check_claim("strong", 42.0, K, B, h)
    assert check.measured == Tier.WEAK and not check.honest and not check.forged


def test_coordinator_thresholds_decide_the_tier() -> None:
    h = benchmark_hash(150.0, K, B, Tier.MEDIUM)  # Medium under the default thresholds
    assert verify_claim("medium", 150.0, K, B, h) == Tier.MEDIUM
    assert verify_claim("medium", 150.0, K, B, h, weak_below=200.0,
                        medium_below=400.0) == Tier.WEAK


@pytest.mark.parametrize("policy", ["correct", "refuse"])
def test_forged_hashes_are_caught(policy: str) -> None:
    throughput = 900.0
    forged = [
        bytes(32),
        bytes.fromhex("ab" * 32),
        benchmark_hash(throughput + 1.0, K, B, Tier.STRONG),  # another throughput
        benchmark_hash(throughput, K + 1, B, Tier.STRONG),    # another K
        benchmark_hash(throughput, K, B, Tier.WEAK),          # a tier that fits nothing
    ]
    for h in forged:
        assert check_claim("strong", throughput, K, B, h).forged
        with pytest.raises(CapacityClaimError, match="re-run the PoC"):
            verify_claim("strong", throughput, K, B, h, policy=policy)  # type: ignore[arg-type]


def test_malformed_records_and_policies_are_rejected() -> None:
    h = benchmark_hash(900.0, K, B, Tier.STRONG)
    with pytest.raises(CapacityClaimError):
        verify_claim("strong", 900.0, K, B, h[:31])
    with pytest.raises(CapacityClaimError):
        verify_claim("strong", float("nan"), K, B, h)
    with pytest.raises(CapacityClaimError):
        verify_claim("strong", -5.0, K, B, h)
    with pytest.raises(ConfigError):
        verify_claim("strong", 900.0, K, B, h, policy="ignore")  # type: ignore[arg-type]
    assert issubclass(CapacityClaimError, ChainlearnError)


def test_a_real_weak_benchmark_cannot_register_as_strong() -> None:
    profile = HardwareProfile("weak", threads=1, target_throughput=40.0, mode="virtual")
    poc = run_benchmark(steps=8, warmup=1, batch_size=B, throttle=Throttle(profile))
    assert poc.tier == Tier.WEAK
    spoof = SpoofAttack(hospital_index=0, claimed="strong")
    claimed = spoof.claim(0, poc.tier)
    assert claimed == Tier.STRONG
    registered = verify_claim(claimed, poc.throughput, poc.steps, poc.batch_size, poc.bench_hash,
                              policy=spoof.policy)
    assert registered == Tier.WEAK
    with pytest.raises(CapacityClaimError):
        verify_claim(claimed, poc.throughput, poc.steps, poc.batch_size, poc.bench_hash,
                     policy="refuse")


def test_attack_settings() -> None:
    lazy = LazyAttack(hospital_index=1)
    assert [lazy.epochs_for(i, 3) for i in range(3)] == [3, 1, 3]
    inflated = InflatedAttack(hospital_index=2)
    assert inflated.epochs_for(2, 3) == 1
    assert inflated.reported(2, 7100, 2300) == (10000, 0)
    assert inflated.reported(0, 7100, 2300) == (7100, 2300)
    spoof = SpoofAttack(hospital_index=0, data_fraction=0.1)
    shard = np.arange(100, 200)
    small = spoof.shard(0, shard, seed=42)
    assert len(small) == 10 and set(small) <= set(shard) and np.all(np.diff(small) > 0)
    assert np.array_equal(small, spoof.shard(0, shard, seed=42))
    assert not np.array_equal(small, spoof.shard(0, shard, seed=43))
    assert np.array_equal(spoof.shard(1, shard, seed=42), shard)
    assert len(spoof.shard(0, np.arange(3), seed=0)) == 1
    assert spoof.claim(1, "medium") == Tier.MEDIUM
    names = {lazy.method, inflated.method, spoof.method,
             SpoofAttack(hospital_index=0, poc=False).method}
    assert names == {"attack:lazy", "attack:inflated", "attack:spoof_poc", "attack:spoof_no_poc"}
    assert names <= set(METHODS)
    with pytest.raises(ConfigError):
        SpoofAttack(hospital_index=0, data_fraction=0.0)
    with pytest.raises(ConfigError):
        SpoofAttack(hospital_index=0, claimed="huge")
