"""The Ray executor: places the driver's client steps on the hospital actors.

It decides only where and when a step runs: largest shard first, timed steps (benchmarks) at
most ``concurrency`` at once and never beside other work of their process, short follow-ups
beside a process's other work, the next round's steps as soon as a process is through the
current one, and a restart for a process that hangs. What a step does is the method's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from chainlearn_ray.errors import ChainlearnError
from chainlearn_ray.methods.messages import ClientResult, RoundConfig
from chainlearn_ray.runtime.executor import StepFailed
from chainlearn_ray.runtime.scheduling import EarlyStart, start_order

logger = logging.getLogger(__name__)


#: Requests whose payload is smaller travel inside the call (Ray inlines arguments up to
#: about 100 KB); larger ones (a global model) are put into the object store once.
INLINE_BYTES = 64 * 1024


def _payload_bytes(payload: Any) -> int:
    """Bytes of the arrays and tensors in ``payload`` (mappings and sequences are walked)."""
    if isinstance(payload, Mapping):
        return sum(_payload_bytes(v) for v in payload.values())
    if isinstance(payload, (list, tuple)):
        return sum(_payload_bytes(v) for v in payload)
    if hasattr(payload, "nbytes"):  # numpy arrays and torch tensors
        return int(payload.nbytes)
    return 0


class _Step:
    """A step placed (or queued) on an actor: ``ref`` is set once it is sent."""

    __slots__ = ("client", "config", "process", "ref")

    def __init__(self, client: str, config: RoundConfig, process: int) -> None:
        self.client, self.config, self.process = client, config, process
        self.ref: Any = None


class ActorExecutor:
    """Client steps on HospitalActors.

    Parameters
    ----------
    hosts:
        Client id -> the actor hosting it (hospitals packed into one process share a handle).
    slots:
        Process (``id`` of its handle) -> how many of its clients it runs at once (its threads).
    samples:
        Client id -> training samples (start order).
    concurrency:
        Timed steps running at once at most (no two benchmarks share a core).
    """

    def __init__(self, hosts: Mapping[str, Any], slots: Mapping[int, int],
                 samples: Mapping[str, int], concurrency: int = 1) -> None:
        self.hosts, self.slots, self.samples = dict(hosts), dict(slots), dict(samples)
        self.concurrency = max(1, int(concurrency))
        self._timed: dict[int, list[_Step]] = {}  # process -> its timed steps not finished
        self._deferred: dict[int, list[_Step]] = {}  # process -> steps waiting for them
        self._early: dict[tuple[int, str], _Step] = {}  # (round, client) -> started ahead
        self._puts: dict[int, tuple[RoundConfig, Any]] = {}  # id(config) -> (config, its ref)

    def processes(self, clients: Sequence[str]) -> dict[int, list[str]]:
        """``clients`` grouped by the actor process hosting them, in order of first mention."""
        groups: dict[int, list[str]] = {}
        for c in clients:
            groups.setdefault(id(self.hosts[c]), []).append(c)
        return groups

    @property
    def alongside(self) -> bool:
        """Every process can measure at once: one that is done may start other work while the
        others still measure (otherwise that work would take their cores)."""
        return sum(self.slots.get(p, 1) for p in self.processes(list(self.hosts))) \
            <= self.concurrency

    # ------------------------------------------------------------------ placing steps
    def order(self, clients: Sequence[str], config: RoundConfig) -> list[str]:
        """See :func:`~chainlearn_ray.runtime.scheduling.start_order`."""
        return start_order(clients, self.samples, config)

    def start(self, client: str, config: RoundConfig) -> _Step:
        """Send one step (or take the one started ahead of its round)."""
        early = self._early.pop((config.round, client), None)
        if early is not None:
            if early.config.phase != config.phase:
                raise ChainlearnError(f"{client} started {early.config.phase!r} of round "
                                      f"{config.round} ahead, but the round starts with "
                                      f"{config.phase!r}")
            return early
        step = _Step(client, config, id(self.hosts[client]))
        if config.timed:
            self._timed.setdefault(step.process, []).append(step)
            self._pump()
        elif self._timed.get(step.process):  # its process still measures: after that
            self._deferred.setdefault(step.process, []).append(step)
        else:
            self._send(step)
        return step

    def _send(self, step: _Step) -> None:
        actor = self.hosts[step.client]
        config = step.config
        if config.aside:  # beside the process's other work
            step.ref = actor.step_aside.remote(step.client, config)
        elif _payload_bytes(config.payload) < INLINE_BYTES:  # travels inside the call
            step.ref = actor.step.remote(step.client, config)
        else:  # one copy in the object store, however many clients receive it
            step.ref = actor.step.remote(step.client, self._put(config))

    def _put(self, config: RoundConfig) -> Any:
        """The object-store copy of ``config``; the latest two are kept (each held with its
        config, so the id is not reused meanwhile)."""
        if id(config) not in self._puts:
            while len(self._puts) >= 2:
                del self._puts[next(iter(self._puts))]
            self._puts[id(config)] = (config, ray.put(config))
        return self._puts[id(config)][1]

    def _pump(self) -> None:
        """Send queued timed steps: at most ``concurrency`` at once, and a process at most as
        many as it has threads, processes in order of their first step."""
        running = sum(s.ref is not None for steps in self._timed.values() for s in steps)
        for process, steps in self._timed.items():
            busy = sum(s.ref is not None for s in steps)
            for s in steps:
                if running >= self.concurrency or busy >= self.slots.get(process, 1):
                    break
                if s.ref is None:
                    self._send(s)
                    running, busy = running + 1, busy + 1

    def _finished(self, step: _Step) -> None:
        """Bookkeeping after a step's result was read."""
        if not step.config.timed:
            return
        steps = self._timed[step.process]
        steps.remove(step)
        if not steps:  # the process measured everything: what waited for it may run
            del self._timed[step.process]
            for deferred in self._deferred.pop(step.process, []):
                self._send(deferred)
        self._pump()

    def wait(self, handles: Sequence[Any], timeout: float | None) -> _Step | None:
        """One finished step of ``handles`` (sent ones), or ``None`` after ``timeout``."""
        sent = {s.ref: s for s in handles if s.ref is not None}
        if not sent:
            return None
        ready, _ = ray.wait(list(sent), num_returns=1, timeout=timeout)
        return sent[ready[0]] if ready else None

    def result(self, handle: Any) -> ClientResult:
        """The step's result; :class:`StepFailed` when its process died or it raised."""
        try:
            return ray.get(handle.ref)  # type: ignore[no-any-return]
        except (RayActorError, RayTaskError) as exc:
            raise StepFailed(type(exc).__name__,
                             died=isinstance(exc, RayActorError)) from exc
        finally:
            self._finished(handle)

    # ------------------------------------------------------------------ faults
    def await_up(self, clients: Sequence[str], timeout: float) -> dict[str, str]:
        """Wait until the actors of ``clients`` answer (a restarted one reloads its
        checkpoint); client -> why, for those still down after ``timeout`` seconds."""
        pending = {process: self.hosts[group[0]]
                   for process, group in self.processes(list(clients)).items()}
        last_error: dict[int, str] = {}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            refs = {actor.ping.remote(): key for key, actor in pending.items()}
            ready, _ = ray.wait(list(refs), num_returns=len(refs),
                                timeout=max(0.1, deadline - time.monotonic()))
            for ref in ready:
                try:
                    ray.get(ref)
                    pending.pop(refs[ref], None)
                except (RayActorError, RayTaskError) as exc:
                    # restarting: ask again; keep the reason in case it never comes back
                    last_error[refs[ref]] = f"{type(exc).__name__}: {str(exc)[:300]}"
            if pending:
                time.sleep(0.2)
        return {
            c: "did not come back after a restart within "
               f"{timeout:.0f}s ({last_error.get(id(self.hosts[c]), 'no answer')})"
            for c in clients if id(self.hosts[c]) in pending
        }

    def abandon(self, client: str) -> None:
        """Kill the client's actor process; Ray restarts it from its checkpoints."""
        ray.kill(self.hosts[client], no_restart=False)

    # ------------------------------------------------------------------ ahead of a round
    def measuring(self) -> bool:
        """Whether timed steps are queued or running."""
        return bool(self._timed)

    def started_ahead(self, round_: int) -> set[str]:
        """Clients whose step of ``round_`` was started ahead."""
        return {c for r, c in self._early if r == round_}

    def ahead(self, config: RoundConfig, attending: Sequence[str],
              current: Sequence[str]) -> EarlyStart:
        """The early start of ``config`` for ``attending``, process by process."""
        def launch(client: str, cfg: RoundConfig) -> None:
            step = _Step(client, cfg, id(self.hosts[client]))
            self._send(step)
            self._early[(cfg.round, client)] = step

        return EarlyStart(config, attending, current, self.processes(list(self.hosts)),
                          lambda cs: self.order(cs, config), launch,
                          hold=lambda: self.measuring() and not self.alongside)

    def forget(self) -> None:
        """Drop every step started ahead and every cached request (a new method starts)."""
        self._early.clear()
        self._puts.clear()
