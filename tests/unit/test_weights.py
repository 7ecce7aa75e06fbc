"""Unit tests of the fixed-point weight formula against SPEC.md §3's test vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.protocol.weights import (
    BONUS_PER_ROUND,
    CAP_MUL,
    MAX_BONUS,
    MAX_WEIGHT,
    SCALE,
    compute_weight,
    participation_bonus,
)

#: (tier, confidence, ece, rounds) -> weight, from the reference contract's test-suite.
VECTORS = [
    (Tier.STRONG, 9500, 500, 0, 10830),
    (Tier.MEDIUM, 9000, 1000, 0, 8100),
    (Tier.WEAK, 8000, 2000, 0, 5120),
    (Tier.STRONG, 10000, 0, 0, 12000),
    (Tier.STRONG, 0, 500, 0, 0),
    (Tier.MEDIUM, 9000, 10000, 0, 0),
    (Tier.STRONG, 9500, 500, 1, 11330),
    (Tier.MEDIUM, 9000, 1000, 3, 9600),
    (Tier.MEDIUM, 9000, 1000, 5, 10600),
    (Tier.MEDIUM, 9000, 1000, 10, 10600),
    (Tier.STRONG, 10000, 0, 5, 14500),
    (Tier.WEAK, 10000, 0, 5, 10500),
    (Tier.STRONG, 0, 0, 2, 1000),
    # stored-state vector: all submit 9000/1000 in round 1
    (Tier.STRONG, 9000, 1000, 1, 10220),
    (Tier.MEDIUM, 9000, 1000, 1, 8600),
    (Tier.WEAK, 9000, 1000, 1, 6980),
]


@pytest.mark.parametrize(("tier", "conf", "ece", "rounds", "expected"), VECTORS)
def test_reference_vectors(tier: Tier, conf: int, ece: int, rounds: int, expected: int) -> None:
    assert compute_weight(tier, conf, ece, rounds) == expected


def test_constants() -> None:
    assert SCALE == 10_000
    assert dict(CAP_MUL) == {Tier.WEAK: 8000, Tier.MEDIUM: 10000, Tier.STRONG: 12000}
    assert (BONUS_PER_ROUND, MAX_BONUS, MAX_WEIGHT) == (500, 2500, 15000)


def test_tier_spellings_agree() -> None:
    assert compute_weight("weak", 8000, 2000, 0) == compute_weight(0, 8000, 2000, 0) == 5120
    assert compute_weight("Strong", 9500, 500, 1) == compute_weight(Tier.STRONG, 9500, 500, 1)


def test_participation_bonus_caps() -> None:
    assert [participation_bonus(r) for r in range(7)] == [0, 500, 1000, 1500, 2000, 2500, 2500]


def test_ablation_switches() -> None:
    # Weak 8000/2000, 2 rounds: base 5120, bonus 1000
    assert compute_weight(Tier.WEAK, 8000, 2000, 2) == 6120
    assert compute_weight(Tier.WEAK, 8000, 2000, 2, use_capmul=False) == 6400 + 1000
    assert compute_weight(Tier.WEAK, 8000, 2000, 2, use_confidence=False) == 6400 + 1000
    assert compute_weight(Tier.WEAK, 8000, 2000, 2, use_ece=False) == 6400 + 1000
    assert compute_weight(Tier.WEAK, 8000, 2000, 2, use_bonus=False) == 5120
    all_off = compute_weight(
        Tier.WEAK,
        8000,
        2000,
        2,
        use_capmul=False,
        use_confidence=False,
        use_ece=False,
        use_bonus=False,
    )
    assert all_off == SCALE


def test_no_capmul_makes_tiers_equal() -> None:
    weights = {compute_weight(t, 9000, 1000, 1, use_capmul=False) for t in Tier}
    assert weights == {8100 + 500}


def test_weight_is_capped() -> None:
    assert compute_weight(Tier.STRONG, 10000, 0, 100) == 14500
    assert compute_weight(Tier.STRONG, 10000, 0, 100, use_capmul=False) == 12500


@pytest.mark.parametrize(
    ("conf", "ece", "rounds"),
    [(-1, 0, 0), (10001, 0, 0), (0, -1, 0), (0, 10001, 0), (0, 0, -1), (0.5, 0, 0), (True, 0, 0)],
)
def test_rejects_out_of_range(conf: int, ece: int, rounds: int) -> None:
    with pytest.raises(ConfigError):
        compute_weight(Tier.MEDIUM, conf, ece, rounds)


def test_rejects_unknown_tier() -> None:
    with pytest.raises(ConfigError):
        compute_weight("huge", 9000, 1000, 0)
    with pytest.raises(ConfigError):
        compute_weight(3, 9000, 1000, 0)


@given(
    tier=st.sampled_from(list(Tier)),
    conf=st.integers(0, SCALE),
    ece=st.integers(0, SCALE),
    rounds=st.integers(0, 50),
)
def test_monotone_and_bounded(tier: Tier, conf: int, ece: int, rounds: int) -> None:
    w = compute_weight(tier, conf, ece, rounds)
    assert 0 <= w <= MAX_WEIGHT
    if conf < SCALE:
        assert compute_weight(tier, conf + 1, ece, rounds) >= w
    if ece < SCALE:
        assert compute_weight(tier, conf, ece + 1, rounds) <= w
    assert compute_weight(tier, conf, ece, rounds + 1) >= w
    if tier != Tier.STRONG:
        assert compute_weight(Tier(tier + 1), conf, ece, rounds) >= w
