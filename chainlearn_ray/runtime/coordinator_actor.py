"""CoordinatorActor: hosts the chain connection and the owner key, relays, and schedules.

It is where a chain method (Ours and its variants) runs its server side: the method reaches the
chain through the actor's :class:`~chainlearn_ray.methods.contract.ContractPort`, and the one
:class:`~chainlearn_ray.runtime.driver.Driver` places its client steps on the hospital actors
through an :class:`~chainlearn_ray.runtime.actor_executor.ActorExecutor`, so hospitals' signed
transactions come here directly and are relayed from here. What is registered, submitted,
weighed and recorded is the method's decision; this actor holds no protocol logic.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import ray

from chainlearn_ray.chain.trust import TrustConfig
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.protocol.rounds import RoundOutcome
from chainlearn_ray.runtime.actor_executor import ActorExecutor
from chainlearn_ray.runtime.driver import Driver
from chainlearn_ray.runtime.progress import ObservedPort, poster

if TYPE_CHECKING:
    from chainlearn_ray.methods.contract import ContractPort
    from chainlearn_ray.methods.ours import Ours
    from chainlearn_ray.results.rows import RunKey

logger = logging.getLogger(__name__)


@ray.remote(max_restarts=0)
class CoordinatorActor:
    """The only holder of a Web3 object; runs chain methods against the hospital actors.

    Parameters
    ----------
    backend, rpc_url, contract:
        Chain selection (``embedded`` runs an in-process EVM inside this actor); ``contract``
        attaches to a deployed FLCoordinator instead of deploying one.
    y_test, n_classes:
        Test labels, to score hospitals and the ensemble.
    score:
        What the first deployment's submissions hold (``chain.weight_score``).
    journal:
        An interrupted run's signed transactions, replayed on the fresh chain first (resume).
    """

    def __init__(self, backend: str, rpc_url: str | None, contract: str | None,
                 y_test: np.ndarray, n_classes: int, score: str = "confidence",
                 trust: TrustConfig | None = None, journal: list[str] | None = None) -> None:
        from chainlearn_ray.methods.contract import ContractPort
        from chainlearn_ray.methods.trust_contract import TrustContractPort

        self.port: ContractPort = (
            ContractPort.open(backend, rpc_url, contract, score, journal) if trust is None
            else TrustContractPort.open_trust(backend, trust, rpc_url, contract, score))
        self.y_test = np.asarray(y_test, dtype=np.int64)
        self.n_classes = int(n_classes)
        self.hosts: dict[str, Any] = {}
        self.executor: ActorExecutor | None = None
        self.method: Ours | None = None
        self.driver: Driver | None = None
        self.board: Any = None  # live progress (see runtime.progress)

    def chain_info(self) -> dict[str, Any]:
        """Contract address, chain id, backend and artifact hash."""
        return self.port.info()

    def attach_hospitals(self, hosts: dict[str, Any], concurrency: int) -> list[dict[str, Any]]:
        """Take the hospital actor handles (id -> handle, id order); returns their identities.

        ``concurrency``: how many timed steps (benchmarks) may run at once.
        """
        self.hosts = dict(hosts)
        firsts: dict[int, str] = {}
        for h, actor in self.hosts.items():
            firsts.setdefault(id(actor), h)
        answers = ray.get([self.hosts[h].ping.remote() for h in firsts.values()])
        identities = [ident for group in answers for ident in group]
        slots = {id(self.hosts[i["hospital_id"]]): int(i.get("slots", 1)) for i in identities}
        samples = {i["hospital_id"]: int(i.get("train_samples", 0)) for i in identities}
        self.executor = ActorExecutor(self.hosts, slots, samples, concurrency)
        return identities

    def open(self, method: Ours, *, redeploy: bool = False,
             round_timeout: float | None = None) -> dict[str, Any]:
        """Run ``method`` from now on (on a fresh deployment with ``redeploy``, so nothing of
        an earlier method's state reaches its weights, and on one whenever the method submits
        another score than the deployment holds); returns :meth:`chain_info`.

        ``round_timeout``: seconds a round's training may take before the hospital is timed
        out and its process restarted.
        """
        if self.executor is None:
            raise ConfigError("attach the hospitals before opening a method")
        if redeploy or method.score != self.port.weight_score:
            self.port.redeploy(method.score)
        self.executor.forget()
        observer = None
        if self.board is not None:
            observer = poster(self.board)
            method.connect(ObservedPort(self.port, observer))  # type: ignore[arg-type]
        else:
            method.connect(self.port)
        method.bind_test(self.y_test, self.n_classes)
        self.method = method
        self.driver = Driver(method, self.executor, list(self.hosts),
                             round_timeout=round_timeout,
                             restart_timeout=max(60.0, round_timeout or 0.0))
        self.driver.observer = observer
        return self.chain_info()

    def watch(self, board: Any) -> None:
        """Report live progress to ``board`` (a :class:`~chainlearn_ray.runtime.progress.
        ProgressBoard`) from the next :meth:`open` on."""
        self.board = board

    def _driver(self) -> Driver:
        if self.driver is None:
            raise ConfigError("open a method before running it")
        return self.driver

    def setup(self, next_attending: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The method's set-up (Ours: every hospital's PoC and registration, in hospital
        order); ``next_attending``: who attends round 1, whose training then starts while the
        hospitals are registered on chain. Returns the registrations."""
        self._driver().setup(next_attending)
        assert self.method is not None
        return list(self.method.registrations)

    def resume(self, registrations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Take up the method after its set-up as an earlier run recorded it (the chain was
        rebuilt from that run's journal); returns the registrations."""
        self._driver()
        assert self.method is not None
        self.method.restore(registrations)
        return list(self.method.registrations)

    def journal(self) -> list[str]:
        """Every signed transaction sent on the chain so far (see :meth:`resume`)."""
        return self.port.journal()

    def run_round(self, round_: int, attending: Sequence[str],
                  next_attending: Sequence[str] | None = None) -> RoundOutcome:
        """One round with ``attending`` hospitals; ``next_attending``: who attends the next
        one, whose training a process may start as soon as it is through this one."""
        driver = self._driver()
        if isinstance(getattr(self.method, "port", None), ObservedPort):
            self.method.port.round = round_  # type: ignore[union-attr]
        return driver.run_round(round_, attending, next_attending)

    def summary(self, key: RunKey) -> list[dict[str, Any]]:
        """The method's closing rows (Ours: the traffic of every submission)."""
        self._driver()
        assert self.method is not None
        return self.method.summary(key)

    def posthoc(self, methods: list[str], key: RunKey, round_: int, hardware: dict[str, str],
                chain_rows: bool) -> list[dict[str, Any]]:
        """Rows of the post-hoc methods on the current method's final models (see
        :class:`~chainlearn_ray.methods.posthoc.PostHoc`)."""
        from chainlearn_ray.methods.posthoc import PostHoc

        self._driver()
        assert self.method is not None
        posthoc = PostHoc(methods, self.method, hardware, round_, chain_rows=chain_rows)
        posthoc.bind_test(self.y_test, self.n_classes)
        return posthoc.summary(key)

    def receipts(self) -> list[dict[str, Any]]:
        """Every transaction of the current deployment as plain dicts."""
        return self.port.receipts()

    def close(self) -> None:
        """Stop the chain backend (an anvil process, for instance)."""
        self.port.close()
