"""HospitalActor: a Ray actor process hosting one (or, packed, several) simulated hospitals."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import ray

from chainlearn_ray.errors import HospitalFailure
from chainlearn_ray.hospital.site import EvalSplits, Hospital, HospitalSpec, TrainShard
from chainlearn_ray.learning.threads import pin_torch_threads
from chainlearn_ray.runtime.inputs import ActorInputs

if TYPE_CHECKING:
    from chainlearn_ray.methods.messages import ClientResult, RoundConfig

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
    """Hosts hospitals and the methods' clients beside them; every call names its client.

    Created once per run and reused across rounds and methods. Its hospitals' shards and the
    evaluation splits come from the run's input store (``inputs``; see :mod:`.inputs`). When
    the process dies, Ray restarts it with the same arguments: it fetches that data again and
    each hospital restores itself from its last checkpoint. A method whose client is the
    hospital itself rebuilds it from each request (:attr:`~chainlearn_ray.methods.messages.
    RoundConfig.setup`); other clients are opened once (:meth:`open_client`) and die with the
    process. Calls run ``slots`` at a time (the actor's ``max_concurrency``; 1 unless the
    resource plan gives the process threads), those for one hospital one after another, and
    short follow-ups (:meth:`step_aside`) beside them: a process hosting several hospitals
    signs one's finished update while it trains the next.
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
        self._clients: dict[str, Any] = {}  # opened clients by id
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

    def open_client(self, client_id: str, host_id: str, setup: Any,
                    **data: Any) -> dict[str, Any]:
        """Build a method's client from hospital ``host_id``'s data (and the shared ``data``,
        e.g. a public set) in a slot of its own (the hospital's model and state stay
        untouched); returns its description."""
        with self._hospital(host_id) as hospital:
            client = setup.build(hospital, **data)
        self._clients[client_id] = client
        return dict(client.describe())

    def close_client(self, client_id: str) -> None:
        """Drop an opened client and its model."""
        self._clients.pop(client_id, None)

    def step(self, client_id: str, config: RoundConfig) -> ClientResult:
        """One request of a method's server side, answered by the client it names."""
        return self._step(client_id, config)

    @ray.method(concurrency_group="sign")
    def step_aside(self, client_id: str, config: RoundConfig) -> ClientResult:
        """A short follow-up (signing finished work), run beside the process's other calls."""
        return self._step(client_id, config)

    def _step(self, client_id: str, config: RoundConfig) -> ClientResult:
        client = self._clients.get(client_id)
        if client is not None:
            if client.threads is not None:
                pin_torch_threads(client.threads)
            return client.step(config)  # type: ignore[no-any-return]
        if config.setup is None or client_id not in self.hospitals:
            raise HospitalFailure(f"no client {client_id!r} in this actor (a restarted actor "
                                  "loses the clients opened in it): rerun the method")
        with self._hospital(client_id) as hospital:
            return config.setup.build(hospital).step(config)  # type: ignore[no-any-return]
