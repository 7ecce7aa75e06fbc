"""Trust mode of the contract as plain data: its deployment parameters and what its views return
(phases, audits, per-round settlements, hospital accounts)."""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from eth_utils import to_checksum_address

from chainlearn_ray.errors import ConfigError

logger = logging.getLogger(__name__)

ZERO_ADDRESS: Final = "0x" + "00" * 20
#: Fixed-point scale of tolerances and slash fractions (the contract's ``SCALE``).
SCALE: Final = 10_000
#: Largest audit committee (``MAX_AUDITORS``).
MAX_AUDITORS: Final = 5
_MAX_STAKE: Final = 2**96 - 1


class Phase(enum.IntEnum):
    """Phase of a trust-mode round (``FLCoordinator.Phase``)."""

    COMMIT = 0
    REVEAL = 1


class AuditStatus(enum.IntEnum):
    """Outcome of a submission's audit (``FLCoordinator.AuditStatus``)."""

    NONE = 0
    PASSED = 1
    FAILED = 2


@dataclass(frozen=True)
class TrustConfig:
    """Trust-mode parameters, fixed at deployment (``FLCoordinator.TrustConfig``).

    Attributes
    ----------
    min_stake_wei:
        Stake a hospital must hold to commit an update.
    reward_per_round_wei:
        Pool each round takes from the reward reserve when it starts (0: no rewards).
    audit_tolerance:
        Largest |claimed - audited| confidence or ECE that stands, fixed point (of 10000).
    slash_fraction:
        Share of the stake (as of the reveal) a failed audit slashes, fixed point (10000: all).
    medium_min_milli, strong_min_milli:
        Verifier-measured throughput (milli-samples per second) from which a hospital may
        register as Medium / Strong.
    verifier:
        Account that issues challenges and attests throughputs; ``None``: the deployer.
    auditors:
        The audit committee (1, 3 or 5 accounts, the median report decides); empty: the
        deployer alone.
    """

    min_stake_wei: int
    reward_per_round_wei: int
    audit_tolerance: int
    slash_fraction: int
    medium_min_milli: int
    strong_min_milli: int
    verifier: str | None = None
    auditors: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("min_stake_wei", "reward_per_round_wei"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= _MAX_STAKE:
                raise ConfigError(f"{name} must be an integer in 0..2**96-1 wei, got {value!r}")
        for name in ("audit_tolerance", "slash_fraction"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= SCALE:
                raise ConfigError(f"{name} must be an integer in 0..{SCALE}, got {value!r}")
        if not 0 <= self.medium_min_milli <= self.strong_min_milli < 2**64:
            raise ConfigError(
                "tier thresholds must satisfy 0 <= medium_min_milli <= strong_min_milli < 2**64, "
                f"got {self.medium_min_milli} and {self.strong_min_milli}"
            )
        count = len(self.auditors)
        if count > MAX_AUDITORS or (count and count % 2 == 0):
            raise ConfigError(f"the audit committee needs 1, 3 or 5 auditors, got {count}")
        if len({a.lower() for a in self.auditors}) != count:
            raise ConfigError("the audit committee lists an auditor twice")

    def to_abi(self) -> tuple[Any, ...]:
        """The constructor argument (``TrustConfig`` tuple) for this configuration."""
        return (
            True,
            self.min_stake_wei,
            self.reward_per_round_wei,
            self.audit_tolerance,
            self.slash_fraction,
            self.medium_min_milli,
            self.strong_min_milli,
            to_checksum_address(self.verifier) if self.verifier else ZERO_ADDRESS,
            [to_checksum_address(a) for a in self.auditors],
        )


#: Constructor argument of a seed-mode deployment.
SEED_CONFIG_ABI: Final[tuple[Any, ...]] = (False, 0, 0, 0, 0, 0, 0, ZERO_ADDRESS, ())


def trust_config_from_view(values: Sequence[Any]) -> TrustConfig | None:
    """``getTrustConfig()`` as a :class:`TrustConfig` (verifier and auditors resolved), or
    ``None`` for a seed-mode deployment."""
    enabled, stake, reward, tolerance, slash, medium, strong, verifier, auditors = values
    if not enabled:
        return None
    return TrustConfig(
        int(stake), int(reward), int(tolerance), int(slash), int(medium), int(strong),
        to_checksum_address(verifier), tuple(to_checksum_address(a) for a in auditors),
    )  # fmt: skip


@dataclass(frozen=True)
class RoundPhase:
    """The current round, its phase and whether it is closed (``getRoundPhase``)."""

    round: int
    phase: Phase
    closed: bool


@dataclass(frozen=True)
class AuditRecord:
    """The audit of one submission (``getAudit``)."""

    status: AuditStatus
    audited_confidence: int
    audited_ece: int
    reports: int


@dataclass(frozen=True)
class RoundSettlement:
    """What a hospital staked, earned and lost in one round (``getRoundSettlement``): one
    result row."""

    round: int
    hospital: str
    stake_wei: int
    weight: int
    reward_wei: int
    slashed_wei: int
    audit_status: AuditStatus
    finalized: bool

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (the audit status by name)."""
        row = asdict(self)
        row["audit_status"] = self.audit_status.name.lower()
        return row


@dataclass(frozen=True)
class RoundRewards:
    """A round's pool and weights (``getRoundRewards``)."""

    pool_wei: int
    total_weight: int
    failed_weight: int
    revealed: int
    finalized: bool
    returned_to_reserve: bool


@dataclass(frozen=True)
class HospitalAccount:
    """A hospital's stake, slashes, rewards and what it may withdraw (``getHospitalAccount``).

    ``withdrawable_wei == stake_wei + rewards_wei`` until the hospital withdraws, ``stake_wei``
    being its deposits less ``slashed_wei``.
    """

    stake_wei: int
    slashed_wei: int
    rewards_wei: int
    withdrawable_wei: int
    exited: bool
