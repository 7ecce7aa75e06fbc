"""The chain as a method sees it: a small port (:class:`ChainPort`) and the values it passes.

Ours and its variants decide what is registered, submitted, read and recorded; the port only
carries those decisions to the FLCoordinator contract. The adapter over the typed contract client
is :class:`chainlearn_ray.methods.contract.ContractPort`; any object with these members serves
(a contract with another weighting, a stub in tests). Nothing here imports web3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from chainlearn_ray.protocol.tiers import ModelType, Tier
from chainlearn_ray.protocol.weights import WeightScore

if TYPE_CHECKING:
    from chainlearn_ray.chain.records import HospitalInfo


@dataclass(frozen=True)
class Update:
    """What a hospital submits in one round (``submitUpdate``'s arguments)."""

    model_hash: bytes
    confidence: int
    ece: int
    model_type: ModelType


@dataclass(frozen=True)
class RoundOpening:
    """An opened round: the block that opened it, the fee fields every submission of the round
    is prepared with, and the gas the opening cost."""

    block: int
    gas: int
    fees: Mapping[str, int] = field(default_factory=dict)


class ChainPort(Protocol):
    """What a method may do on the chain (owner transactions, relays and reads)."""

    @property
    def chain_id(self) -> int:
        """Id of the chain (bound into every registration signature)."""
        ...

    @property
    def contract(self) -> str:
        """Address of the contract (bound into every registration signature)."""
        ...

    @property
    def weight_score(self) -> WeightScore:
        """What the deployment's submissions carry in their score (``confidence``) field."""
        ...

    def register(self, hospital: str, name: str, tier: Tier, bench_hash: bytes,
                 signature: bytes) -> int:
        """Fund ``hospital``'s account for its own gas and register it; returns the gas."""
        ...

    def start_round(self) -> RoundOpening:
        """Open the next round."""
        ...

    def prepare_update(self, hospital: str, update: Update,
                       opening: RoundOpening) -> dict[str, object]:
        """The unsigned transaction submitting ``update`` for ``hospital`` to sign, prepared
        against the state right after ``opening``."""
        ...

    def submit(self, raw: bytes) -> int:
        """Relay a hospital's signed transaction; returns the gas it used."""
        ...

    def round_weight(self, round_: int, hospital: str) -> int:
        """``hospital``'s weight from its submission in ``round_``."""
        ...

    def record_ensemble(self, prediction_hash: bytes, participants: int) -> int:
        """Record the round's ensemble prediction hash; returns the gas."""
        ...

    def hospital_info(self, hospital: str) -> HospitalInfo:
        """What the contract stores about ``hospital``."""
        ...

    def weight_pure(self, tier: Tier, confidence: int, ece: int, rounds: int) -> int:
        """The contract's weight formula for arbitrary inputs."""
        ...
