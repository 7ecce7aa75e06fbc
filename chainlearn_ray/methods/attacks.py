"""Attack settings (lazy, inflated metrics, capacity spoofing) and the PoC claim check.

The capacity-spoofing defence is a real mechanism, not the removal of the attacker: the
coordinator recomputes the tier from the hospital's own benchmark record (throughput, K, B) and
checks the benchmark hash against the claimed tier with :func:`verify_claim`. A Weak-measured
hospital that claims Strong is refused or registered as Weak, and keeps taking part.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from chainlearn_ray.errors import ChainlearnError, ConfigError
from chainlearn_ray.hospital.spec import shard_positions
from chainlearn_ray.methods.names import attack_method
from chainlearn_ray.protocol.poc import benchmark_hash, classify
from chainlearn_ray.protocol.tiers import MEDIUM_BELOW, WEAK_BELOW, Tier
from chainlearn_ray.protocol.weights import SCALE

logger = logging.getLogger(__name__)

ClaimPolicy = Literal["correct", "refuse"]
CLAIM_POLICIES: tuple[str, ...] = ("correct", "refuse")


class CapacityClaimError(ChainlearnError):
    """A hospital's claimed capacity tier is not supported by its own signed benchmark.

    The hospital must register with the tier its benchmark measured (or re-run the benchmark).
    """


@dataclass(frozen=True)
class LazyAttack:
    """One hospital trains only ``epochs`` epochs per round and reports honest metrics."""

    hospital_index: int
    epochs: int = 1

    @property
    def method(self) -> str:
        """Result method name."""
        return attack_method("lazy")

    def epochs_for(self, index: int, epochs: int) -> int:
        """Local epochs hospital ``index`` trains (``epochs`` for honest hospitals)."""
        return self.epochs if index == self.hospital_index else epochs


@dataclass(frozen=True)
class InflatedAttack:
    """The lazy hospital also reports inflated metrics (confidence 10000, ECE 0)."""

    hospital_index: int
    epochs: int = 1
    confidence_fixed: int = SCALE
    ece_fixed: int = 0

    @property
    def method(self) -> str:
        """Result method name."""
        return attack_method("inflated")

    def epochs_for(self, index: int, epochs: int) -> int:
        """Local epochs hospital ``index`` trains (``epochs`` for honest hospitals)."""
        return self.epochs if index == self.hospital_index else epochs

    def reported(self, index: int, confidence_fixed: int, ece_fixed: int) -> tuple[int, int]:
        """Metrics hospital ``index`` submits: the inflated pair for the attacker."""
        if index == self.hospital_index:
            return self.confidence_fixed, self.ece_fixed
        return confidence_fixed, ece_fixed


@dataclass(frozen=True)
class SpoofAttack:
    """A weak-hardware hospital claims ``claimed`` and trains on ``data_fraction`` of its shard.

    ``poc`` says whether the coordinator checks claims (:func:`verify_claim` under ``policy``).
    """

    hospital_index: int
    claimed: str = "strong"
    data_fraction: float = 0.1
    poc: bool = True
    policy: ClaimPolicy = "correct"

    def __post_init__(self) -> None:
        Tier.parse(self.claimed)
        if not 0 < self.data_fraction <= 1:
            raise ConfigError(f"spoofer data_fraction must be in (0, 1], got {self.data_fraction}")
        if self.policy not in CLAIM_POLICIES:
            raise ConfigError(f"claim policy must be 'correct' or 'refuse', got {self.policy!r}")

    @property
    def method(self) -> str:
        """Result method name (``attack:spoof_poc`` or ``attack:spoof_no_poc``)."""
        return attack_method("spoof_poc" if self.poc else "spoof_no_poc")

    def claim(self, index: int, measured: Tier | str | int) -> Tier:
        """Tier hospital ``index`` claims: ``claimed`` for the spoofer, else what it measured."""
        return Tier.parse(self.claimed) if index == self.hospital_index else Tier.parse(measured)

    def shard(self, index: int, indices: np.ndarray, seed: int) -> np.ndarray:
        """Training indices of hospital ``index``: a seeded ``data_fraction`` for the spoofer.

        At least one sample is kept; the subset is returned sorted (:func:`~chainlearn_ray.
        hospital.spec.shard_positions`).
        """
        idx = np.asarray(indices)
        if index != self.hospital_index:
            return idx
        return np.sort(idx[shard_positions(len(idx), self.data_fraction, seed, index)])


@dataclass(frozen=True)
class ClaimCheck:
    """Outcome of checking a capacity claim against the benchmark record.

    Attributes
    ----------
    claimed:
        The tier the hospital asked for.
    measured:
        ``classify(throughput)`` under the coordinator's thresholds.
    hash_matches_claim:
        The benchmark hash equals ``benchmark_hash(throughput, K, B, claimed)``.
    hash_matches_measured:
        The benchmark hash equals ``benchmark_hash(throughput, K, B, measured)``.
    """

    claimed: Tier
    measured: Tier
    hash_matches_claim: bool
    hash_matches_measured: bool

    @property
    def honest(self) -> bool:
        """The claim equals the measurement and the hash binds exactly that tier."""
        return self.claimed == self.measured and self.hash_matches_claim

    @property
    def forged(self) -> bool:
        """The hash fits neither the claim nor the measurement: the record cannot be trusted."""
        return not (self.hash_matches_claim or self.hash_matches_measured)


def check_claim(claimed_tier: Tier | str | int, throughput: float, steps: int, batch_size: int,
                bench_hash: bytes, weak_below: float = WEAK_BELOW,
                medium_below: float = MEDIUM_BELOW) -> ClaimCheck:
    """Recompute the tier and the benchmark hash of a claim (see :func:`verify_claim`)."""
    claimed = Tier.parse(claimed_tier)
    if len(bytes(bench_hash)) != 32:
        raise CapacityClaimError(f"benchmark hash must be 32 bytes, got {len(bench_hash)}: "
                                    "send the hash of the PoC benchmark record")
    if not (math.isfinite(throughput) and throughput > 0):
        raise CapacityClaimError(f"benchmark throughput must be a positive number, got "
                                    f"{throughput!r}: re-run the PoC benchmark")
    measured = classify(throughput, weak_below, medium_below)
    return ClaimCheck(
        claimed=claimed,
        measured=measured,
        hash_matches_claim=bytes(bench_hash) == benchmark_hash(throughput, steps, batch_size,
                                                               claimed),
        hash_matches_measured=bytes(bench_hash) == benchmark_hash(throughput, steps, batch_size,
                                                                  measured),
    )


def verify_claim(
    claimed_tier: Tier | str | int,
    throughput: float,
    steps: int,
    batch_size: int,
    bench_hash: bytes,
    weak_below: float = WEAK_BELOW,
    medium_below: float = MEDIUM_BELOW,
    policy: ClaimPolicy = "correct",
) -> Tier:
    """The tier a hospital may register with, given its claim and its benchmark record.

    The coordinator recomputes ``classify(throughput)`` and the benchmark hash
    ``SHA-256(throughput ‖ K ‖ B ‖ tier)``:

    * claim == measured tier and hash of that tier: accepted, the claim is returned;
    * claim != measured tier, or the hash binds another tier than the claim (while it fits the
      measured one): under ``"correct"`` the measured tier is returned (the hospital then signs
      its PoC statement for that tier), under ``"refuse"`` :class:`CapacityClaimError`;
    * a hash that fits neither the claim nor the measured tier: the record itself is forged or
      corrupt, so the throughput cannot be trusted; rejected under both policies.

    Parameters
    ----------
    claimed_tier:
        Tier the hospital asks to register with.
    throughput, steps, batch_size:
        The benchmark record (samples/s, K, B).
    bench_hash:
        The 32-byte benchmark hash the hospital signed.
    weak_below, medium_below:
        The coordinator's tier thresholds (samples/s).
    policy:
        ``"correct"`` or ``"refuse"``.

    Returns
    -------
    Tier

    Raises
    ------
    CapacityClaimError
        A refused claim, or a forged benchmark record.
    ConfigError
        Unknown policy or bad thresholds.
    """
    if policy not in CLAIM_POLICIES:
        raise ConfigError(f"claim policy must be 'correct' or 'refuse', got {policy!r}")
    check = check_claim(claimed_tier, throughput, steps, batch_size, bench_hash, weak_below,
                        medium_below)
    if check.honest:
        return check.claimed
    if check.forged:
        raise CapacityClaimError(
            f"benchmark hash does not match the benchmark record (throughput {throughput:.1f}, "
            f"K {steps}, B {batch_size}) for any tier: re-run the PoC benchmark and sign its hash")
    if policy == "refuse":
        raise CapacityClaimError(
            f"claimed tier {check.claimed.display} but the benchmark measured "
            f"{throughput:.1f} samples/s, which is {check.measured.display}: register as "
            f"{check.measured.display}")
    logger.warning("capacity claim %s corrected to %s (benchmark %.1f samples/s)",
                   check.claimed.display, check.measured.display, throughput)
    return check.measured


def settle_claim(hospital: str, record: dict[str, Any], weak_below: float = WEAK_BELOW,
                 medium_below: float = MEDIUM_BELOW,
                 policy: ClaimPolicy = "correct") -> dict[str, Any]:
    """A PoC record (``tier``, ``throughput``, ``steps``, ``batch_size``, ``bench_hash``) with the
    tier and benchmark hash its measurement supports (:func:`verify_claim`); a corrected claim
    is logged. ``hospital`` names it in the log."""
    claimed = record["tier"]
    tier = verify_claim(claimed, record["throughput"], record["steps"], record["batch_size"],
                        record["bench_hash"], weak_below, medium_below, policy=policy)
    if tier.label == claimed:
        return record
    logger.warning("%s claimed %s; its benchmark says %s: registered %s", hospital, claimed,
                   tier.label, tier.label)
    return {**record, "tier": tier.label,
            "bench_hash": benchmark_hash(record["throughput"], record["steps"],
                                         record["batch_size"], tier)}
