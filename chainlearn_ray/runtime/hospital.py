"""HospitalActor: a Ray actor process hosting one (or, packed, several) simulated hospitals."""

from __future__ import annotations

import logging
import os
from typing import Any

import ray

from chainlearn_ray.hospital import (
    Behaviour,
    EvalSplits,
    Hospital,
    HospitalSpec,
    RoundReport,
    TrainShard,
)

logger = logging.getLogger(__name__)


@ray.remote(max_restarts=-1, max_task_retries=0)
class HospitalActor:
    """Hosts hospitals; every call names the hospital it is for.

    Created once per run and reused across rounds. When the process dies, Ray restarts it
    with the same arguments and each hospital restores itself from its last checkpoint.
    """

    def __init__(self, specs: list[HospitalSpec], shards: list[TrainShard],
                 evals: EvalSplits) -> None:
        self.hospitals = {
            s.hospital_id: Hospital(s, d, evals) for s, d in zip(specs, shards, strict=True)
        }

    def ping(self) -> list[dict[str, Any]]:
        """Identity of every hosted hospital (also proves the actor is up)."""
        return [h.identity() for h in self.hospitals.values()]

    def pid(self) -> int:
        """Process id (for fault-injection tests)."""
        return os.getpid()

    def node_id(self) -> str:
        """Id of the Ray node this actor runs on (placement checks)."""
        return str(ray.get_runtime_context().get_node_id())

    def run_poc(self, hospital_id: str, **poc: Any) -> dict[str, Any]:
        """Proof-of-Capacity benchmark of one hospital."""
        return self.hospitals[hospital_id].run_poc(**poc)

    def sign_registration(self, hospital_id: str, tier: str, bench_hash: bytes, chain_id: int,
                          contract: str) -> bytes:
        """The hospital's signature over its PoC statement on this deployment."""
        return self.hospitals[hospital_id].sign_registration(tier, bench_hash, chain_id, contract)

    def reset(self, hospital_id: str, behaviour: Behaviour | None = None) -> dict[str, Any]:
        """Make one hospital fresh for a new deployment (see ``Hospital.reset``)."""
        return self.hospitals[hospital_id].reset(behaviour)

    def train_round(self, hospital_id: str, round_: int, epochs: int) -> RoundReport:
        """Local training plus reliability metrics and test probabilities."""
        return self.hospitals[hospital_id].train_round(round_, epochs)

    def sign_transaction(self, hospital_id: str, tx: dict[str, Any], model_hash: bytes,
                         confidence: int, ece: int) -> bytes:
        """The hospital's own signature over its submitUpdate transaction."""
        return self.hospitals[hospital_id].sign_transaction(tx, model_hash, confidence, ece)
