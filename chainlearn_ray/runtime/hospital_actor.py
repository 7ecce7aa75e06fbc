"""HospitalActor: a Ray actor process hosting one (or, packed, several) simulated hospitals."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import ray

from chainlearn_ray.hospital.site import (
    Behaviour,
    EvalSplits,
    Hospital,
    HospitalSpec,
    RoundReport,
    TrainShard,
)
from chainlearn_ray.learning.threads import pin_torch_threads
from chainlearn_ray.runtime.inputs import ActorInputs

logger = logging.getLogger(__name__)


#: Unix ``nice`` of hospital processes: the lowest priority. Ray starts every worker at 15 by
#: default, so the coordinator and the Ray system processes stay ahead of training.
HOSPITAL_NICENESS = 19


def _yield_to_coordinator() -> None:
    """Lower this process's CPU priority: where hospitals and the coordinator share cores,
    the coordinator's relays (the round's critical path) go first and training absorbs the
    wait. Results do not change; only who waits for a core."""
    try:
        os.nice(max(0, HOSPITAL_NICENESS - os.getpriority(os.PRIO_PROCESS, 0)))
    except (AttributeError, OSError):  # not Unix, or not permitted: run at normal priority
        logger.debug("could not lower the hospital process's priority", exc_info=True)


@ray.remote(max_restarts=-1, max_task_retries=0, concurrency_groups={"sign": 1})  # type: ignore[call-overload]
class HospitalActor:
    """Hosts hospitals; every call names the hospital it is for.

    Created once per run and reused across rounds. Its hospitals' shards and the evaluation
    splits come from the run's input store (``inputs``; see :mod:`.inputs`). When the process
    dies, Ray restarts it with the same arguments: it fetches that data again and each hospital
    restores itself from its last checkpoint.
    Calls run ``slots`` at a time (the actor's ``max_concurrency``; 1 unless the resource plan
    gives the process threads), those for one hospital one after another, and signing runs
    beside them: a process hosting several hospitals signs one's finished update while it
    trains the next. A call that must follow another one for the same hospital passes that
    call's result reference (``after``), which Ray resolves first.
    """

    def __init__(self, specs: list[HospitalSpec], inputs: ActorInputs, slots: int = 1) -> None:
        shards: list[TrainShard]
        evals: EvalSplits
        shards, evals = inputs.fetch()
        self.hospitals = {
            s.hospital_id: Hospital(s, d, evals) for s, d in zip(specs, shards, strict=True)
        }
        self.slots = int(slots)
        self._locks = {h: threading.Lock() for h in self.hospitals}
        # after the imports (torch), which the run waits for as much as for the coordinator's
        _yield_to_coordinator()

    @contextlib.contextmanager
    def _hospital(self, hospital_id: str) -> Iterator[Hospital]:
        """The hospital, held for this call (calls for one hospital never overlap), on a
        thread computing with its torch threads."""
        hospital = self.hospitals[hospital_id]
        with self._locks[hospital_id]:
            pin_torch_threads(hospital.spec.threads)
            yield hospital

    def ping(self) -> list[dict[str, Any]]:
        """Identity of every hosted hospital with its process's ``slots`` (also proves the
        actor is up)."""
        return [{**h.identity(), "slots": self.slots} for h in self.hospitals.values()]

    def pid(self) -> int:
        """Process id (for fault-injection tests)."""
        return os.getpid()

    def node_id(self) -> str:
        """Id of the Ray node this actor runs on (placement checks)."""
        return str(ray.get_runtime_context().get_node_id())

    def run_poc(self, hospital_id: str, **poc: Any) -> dict[str, Any]:
        """Proof-of-Capacity benchmark of one hospital."""
        with self._hospital(hospital_id) as hospital:
            return hospital.run_poc(**poc)

    def sign_registration(self, hospital_id: str, tier: str, bench_hash: bytes, chain_id: int,
                          contract: str) -> bytes:
        """The hospital's signature over its PoC statement on this deployment."""
        with self._hospital(hospital_id) as hospital:
            return hospital.sign_registration(tier, bench_hash, chain_id, contract)

    def reset(self, hospital_id: str, behaviour: Behaviour | None = None) -> dict[str, Any]:
        """Make one hospital fresh for a new deployment (see ``Hospital.reset``)."""
        with self._hospital(hospital_id) as hospital:
            return hospital.reset(behaviour)

    def train_round(self, hospital_id: str, round_: int, epochs: int,
                    after: Any = None) -> RoundReport:
        """Local training plus reliability metrics and test probabilities.

        ``after``: the result reference of a call this training must follow (Ray resolves
        it first; its value is not used), e.g. the registration that gives the hospital its
        tier and model.
        """
        with self._hospital(hospital_id) as hospital:
            return hospital.train_round(round_, epochs)

    @ray.method(concurrency_group="sign")
    def sign_transaction(self, hospital_id: str, tx: dict[str, Any], model_hash: bytes,
                         confidence: int, ece: int) -> bytes:
        """The hospital's own signature over its submitUpdate transaction."""
        with self._hospital(hospital_id) as hospital:
            return hospital.sign_transaction(tx, model_hash, confidence, ece)

    def baseline_setup(self, hospital_id: str, setup: Any, public: Any = None,
                       pooled: Any = None) -> dict[str, Any]:
        """Build a fresh baseline client from one hospital's data in its own slot (the
        hospital's Ours model and state stay untouched); see ``runtime.baselines``."""
        from chainlearn_ray.runtime.baselines import BaselineClient

        with self._hospital(hospital_id) as hospital:
            client = BaselineClient.create(hospital, setup, public, pooled)
        self.__dict__.setdefault("baseline_clients", {})[client.client_id] = client
        return client.describe()

    def baseline_step(self, client_id: str, config: Any) -> Any:
        """One phase of a baseline round on a baseline client (returns its ClientResult)."""
        return self._baseline_client(client_id).step(config)

    def baseline_predict(self, client_id: str, state: Any = None) -> Any:
        """Test probabilities of a baseline client's model (or of ``state`` in a copy of it)."""
        return self._baseline_client(client_id).predict_test(state)

    def baseline_close(self, client_id: str) -> None:
        """Drop a baseline client and its model."""
        self.__dict__.get("baseline_clients", {}).pop(client_id, None)

    def _baseline_client(self, client_id: str) -> Any:
        from chainlearn_ray.errors import HospitalFailure

        clients = self.__dict__.get("baseline_clients", {})
        if client_id not in clients:
            raise HospitalFailure(f"no baseline client {client_id!r} in this actor (a restarted "
                                  "actor loses its baseline clients): rerun the baseline")
        client = clients[client_id]
        pin_torch_threads(client.threads)
        return client
