"""Typed records the FLCoordinator client returns: transaction results and contract views."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from chainlearn_ray.protocol.tiers import ModelType, Tier


@dataclass(frozen=True)
class TxResult:
    """A mined transaction, as plain data (for Parquet/JSON)."""

    operation: str
    tx_hash: str
    gas_used: int
    block_number: int
    sender: str

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return asdict(self)


@dataclass(frozen=True)
class HospitalInfo:
    """What the contract stores about a hospital (``getHospitalInfo``)."""

    name: str
    tier: Tier
    model_type: ModelType
    confidence: int
    ece: int
    registered: bool
    poc_benchmark_hash: bytes
    rounds_participated: int


@dataclass(frozen=True)
class RoundSubmission:
    """A hospital's submission in one round (``getRoundSubmission``); zeros when none."""

    model_hash: bytes
    confidence: int
    ece: int
    timestamp: int
    model_type: ModelType


@dataclass(frozen=True)
class EnsembleRecord:
    """A round's recorded ensemble (``getEnsembleRecord``); zeros when none."""

    prediction_hash: bytes
    participant_count: int
    timestamp: int
