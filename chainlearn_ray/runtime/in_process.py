"""The in-process executor: client steps run one after another in this process (tests, small
studies). Results equal those of the Ray executor for the same seed: the steps are the same
calls, started and accepted in the same order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from chainlearn_ray.errors import ChainlearnError
from chainlearn_ray.hospital.site import Hospital
from chainlearn_ray.learning.threads import torch_threads
from chainlearn_ray.methods.hosting import HostedClient
from chainlearn_ray.methods.messages import ClientResult, RoundConfig
from chainlearn_ray.runtime.executor import StepFailed
from chainlearn_ray.runtime.scheduling import NoAhead, start_order

logger = logging.getLogger(__name__)


class _Done:
    """A step that already ran: its result or its failure."""

    def __init__(self, result: ClientResult | None, failure: str | None) -> None:
        self.result, self.failure = result, failure


class InProcessExecutor:
    """Runs every step at once, in this process, on the client it is for.

    Parameters
    ----------
    clients:
        Opened clients by id (baseline clients, built from shards or hospitals).
    hospitals:
        Hospitals by id, for methods whose client is the hospital itself (built from each
        request's :attr:`~chainlearn_ray.methods.messages.RoundConfig.setup`).
    samples:
        Training samples per client, which orders the steps (default: each client's own).
    """

    def __init__(self, clients: Mapping[str, HostedClient] | None = None,
                 hospitals: Mapping[str, Hospital] | None = None,
                 samples: Mapping[str, int] | None = None) -> None:
        self.clients = dict(clients or {})
        self.hospitals = dict(hospitals or {})
        self.samples = dict(samples) if samples is not None else {
            **{h: int(x.identity()["train_samples"]) for h, x in self.hospitals.items()},
            **{c: int(x.describe()["n_samples"]) for c, x in self.clients.items()},
        }

    def _client(self, client: str, config: RoundConfig) -> HostedClient:
        if client in self.clients:
            return self.clients[client]
        if config.setup is not None and client in self.hospitals:
            return config.setup.build(self.hospitals[client])  # type: ignore[no-any-return]
        raise StepFailed(f"no client {client!r} in this process")

    def order(self, clients: Sequence[str], config: RoundConfig) -> list[str]:
        """Largest shard first (timed steps: as given), as on Ray."""
        return start_order(clients, self.samples, config)

    def start(self, client: str, config: RoundConfig) -> _Done:
        """Run the step now, with the client's torch threads."""
        try:
            hosted = self._client(client, config)
            with torch_threads(hosted.threads):
                return _Done(hosted.step(config), None)
        except ChainlearnError as exc:
            logger.warning("%s: %s failed: %s", client, config.phase, exc)
            return _Done(None, type(exc).__name__)

    def wait(self, handles: Sequence[Any], timeout: float | None) -> Any | None:
        """The first handle (every step is done when it is started)."""
        return handles[0] if handles else None

    def result(self, handle: Any) -> ClientResult:
        """The step's result, or :class:`StepFailed`."""
        if handle.result is None:
            raise StepFailed(handle.failure or "failed")
        return handle.result  # type: ignore[no-any-return]

    def await_up(self, clients: Sequence[str], timeout: float) -> dict[str, str]:
        """Everything here is up."""
        return {}

    def abandon(self, client: str) -> None:
        """Nothing runs on after it returned."""

    def measuring(self) -> bool:
        """No step is ever left running."""
        return False

    def started_ahead(self, round_: int) -> set[str]:
        """Nothing starts ahead in one process."""
        return set()

    def ahead(self, config: RoundConfig, attending: Sequence[str],
              current: Sequence[str]) -> NoAhead:
        """One process runs one step at a time: the next round waits for its turn."""
        return NoAhead()
