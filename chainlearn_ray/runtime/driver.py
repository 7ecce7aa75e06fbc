"""The one round loop: any method's verbs, with its client steps placed by an executor.

:class:`Driver` runs a method's set-up (round 0) and rounds the same way for every method (Ours
and its variants, FedAvg, FedProx, FedMD, Centralized): configure each phase, start the client
steps in the executor's order, review each result as it arrives (asking follow-ups), accept the
final results in start order, aggregate, then score the predictor. Where the steps run is the
:class:`Executor`'s business: Ray actors (:class:`~chainlearn_ray.runtime.actor_executor.
ActorExecutor`) or this process (:class:`~chainlearn_ray.runtime.in_process.
InProcessExecutor`). Nothing here imports Ray.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from chainlearn_ray.errors import ChainlearnError, HospitalFailure
from chainlearn_ray.methods.base import FederatedMethod
from chainlearn_ray.methods.messages import ClientResult, RoundConfig
from chainlearn_ray.protocol.rounds import FAILED, REJECTED, TIMED_OUT, RoundOutcome
from chainlearn_ray.runtime.executor import Ahead, Executor, StepFailed
from chainlearn_ray.runtime.scheduling import NoAhead

logger = logging.getLogger(__name__)

__all__ = ["Driver", "ServerClock"]

#: Seconds a follow-up (a signature) may take once every primary step of a phase is back.
FOLLOW_UP_TIMEOUT = 60.0


class ServerClock:
    """Wall and CPU time of the server's own work in one round (Ours: its chain work):
    ``with clock:`` adds a span; ``last`` is the latest span's wall time, ``overlap`` what the
    driver counted as done while clients were still running their steps."""

    def __init__(self) -> None:
        self.wall = self.cpu = self.overlap = self.last = 0.0

    def __enter__(self) -> None:
        self._t0, self._c0 = time.perf_counter(), time.process_time()

    def __exit__(self, *exc: object) -> None:
        self.last = time.perf_counter() - self._t0
        self.wall += self.last
        self.cpu += time.process_time() - self._c0


@dataclasses.dataclass
class _Phase:
    """One phase in flight."""

    handles: dict[Any, tuple[str, RoundConfig]]  # handle -> (client, its request)
    running: set[str]  # clients whose primary step is not back
    queue: list[str]  # clients not accepted yet, in start order
    finals: dict[str, ClientResult] = dataclasses.field(default_factory=dict)


class Driver:
    """Runs one method over a fixed set of clients.

    Parameters
    ----------
    method:
        The method (its server side lives here).
    executor:
        Where the client steps run.
    clients:
        Every client of the run, in id order.
    round_timeout:
        Seconds a round's primary steps may take (``None``: no limit); a client still running
        then is timed out and its process restarted.
    restart_timeout:
        Seconds to wait, at the start of a round, for a restarted process to answer.
    """

    def __init__(self, method: FederatedMethod, executor: Executor, clients: Sequence[str], *,
                 round_timeout: float | None = None, restart_timeout: float = 60.0) -> None:
        self.method, self.executor, self.clients = method, executor, list(clients)
        self.round_timeout, self.restart_timeout = round_timeout, restart_timeout
        self._out: set[str] = set()
        self._restarted: set[str] = set()  # restarted within the current round
        #: Told of each round's start, each client's primary step and each drop (kind, round,
        #: facts), for live progress; ``None``: nobody watches.
        self.observer: Callable[[str, int, dict[str, Any]], None] | None = None

    def plan(self, rounds: int) -> dict[int, list[str]]:
        """Round -> who attends it (the method decides), for rounds ``1..rounds``."""
        return {r: self.method.attending(r, self.clients) for r in range(1, rounds + 1)}

    def setup(self, next_attending: Sequence[str] | None = None) -> None:
        """The method's set-up phases (round 0); ``next_attending``: who attends round 1,
        whose first step may then start while the set-up ends."""
        self._round(0, self.clients, next_attending)

    def run_round(self, round_: int, attending: Sequence[str] | None = None,
                  next_attending: Sequence[str] | None = None) -> RoundOutcome:
        """One round with ``attending`` (default: whom the method picks).

        ``next_attending``: who attends round ``round_ + 1``, whose first step may start as
        soon as its process is through this round (when the method's configuration allows);
        that round must then be run with the same clients.
        """
        members = self.method.attending(round_, self.clients) if attending is None \
            else list(attending)
        outcome = self._round(round_, members, next_attending)
        assert outcome is not None
        return outcome

    # ------------------------------------------------------------------ the loop
    def _round(self, round_: int, attending: list[str],
               next_attending: Sequence[str] | None) -> RoundOutcome | None:
        stray = self.executor.started_ahead(round_) - set(attending)
        if stray:  # checked before the chain or any client is touched
            raise ChainlearnError(
                f"round {round_}: {sorted(stray)} started training early but are not "
                "attending; pass the same attendance to both rounds")
        started = time.perf_counter()
        self._out, self._restarted = set(), set()
        if self.observer is not None:
            self.observer("round_started", round_, {"hospitals": len(attending)})
        clock = ServerClock()
        ahead_config = self.method.configure_ahead(round_ + 1) if next_attending else None
        ahead: Ahead = NoAhead() if ahead_config is None else self.executor.ahead(
            ahead_config, list(next_attending or ()), attending)
        busy = 0.0
        phases = self.method.phases_of(round_)
        for i, phase in enumerate(phases):
            with clock:
                config = self.method.configure_round(round_, phase)
            if i == 0 and round_ > 0:
                early = self.executor.started_ahead(round_)
                down = self.executor.await_up([c for c in attending if c not in early],
                                              max(self.restart_timeout, self.round_timeout or 0))
                for client, why in down.items():
                    logger.warning("%s is down in round %d: %s", client, round_, why)
                    self._drop(round_, client, FAILED, why)
            members = [c for c in attending if c not in self._out]
            stop_at = None if self.round_timeout is None or round_ == 0 else \
                time.monotonic() + self.round_timeout
            # only the round's last phase leaves a client through it
            results, seconds = self._phase(round_, dict.fromkeys(members, config),
                                           ahead if i == len(phases) - 1 else NoAhead(), clock,
                                           stop_at)
            busy += seconds
            with clock:
                self.method.aggregate(round_, phase, results)
        if round_ == 0:
            return None
        configs = self.method.configure_evaluate(
            round_, [c for c in attending if c not in self._out])
        scored = self._phase(round_, configs, NoAhead(), ServerClock(), None)[0] if configs \
            else []
        outcome = self.method.evaluate(round_, scored)
        return dataclasses.replace(
            outcome, round_seconds=time.perf_counter() - started, chain_seconds=clock.wall,
            train_seconds=busy, chain_overlap_seconds=clock.overlap, chain_cpu_seconds=clock.cpu,
            restarted=tuple(sorted(self._restarted)))

    def _phase(self, round_: int, configs: dict[str, RoundConfig], ahead: Ahead,
               clock: ServerClock, stop_at: float | None) -> tuple[list[ClientResult], float]:
        """Run one phase; returns the final results (in the order of ``configs``) and the
        seconds until every primary step was back."""
        if not configs:
            return [], 0.0
        order = self.executor.order(list(configs), next(iter(configs.values())))
        ph = _Phase({self.executor.start(c, configs[c]): (c, configs[c]) for c in order},
                    set(order), list(order))
        t0 = time.perf_counter()
        busy = 0.0

        def through(client: str) -> bool:
            return client in ph.finals and client not in self._out

        ahead.start_ready(through)
        while ph.handles:
            acceptable = self._acceptable(ph)
            if acceptable:
                wait: float | None = 0.0
            elif ph.running:
                wait = None if stop_at is None else max(0.0, stop_at - time.monotonic())
            else:
                wait = FOLLOW_UP_TIMEOUT
            handle = self.executor.wait(list(ph.handles), wait)
            if handle is None and not acceptable:
                self._expire(round_, ph)
                busy = busy or time.perf_counter() - t0
                continue
            with clock:
                if handle is not None:
                    self._take(round_, ph, handle, stop_at)
                if not ph.running and not busy:
                    busy = time.perf_counter() - t0
                ahead.start_ready(through)
                self._accept(ph, one=True)
            if ph.running:  # others still run: this server work is off the critical path
                clock.overlap += clock.last
        busy = busy or time.perf_counter() - t0
        ahead.start_ready(through)  # every client is settled: start the next round, then
        with clock:  # accept the rest while it runs
            self._accept(ph, one=False)
        return [ph.finals[c] for c in configs if c in ph.finals and c not in self._out], busy

    def _take(self, round_: int, ph: _Phase, handle: Any, stop_at: float | None) -> None:
        """A finished step: review its result, and ask the follow-up it calls for."""
        client, config = ph.handles.pop(handle)
        primary = client in ph.running
        ph.running.discard(client)
        try:
            result = self.executor.result(handle)
            follow_up = self.method.review(result)
        except StepFailed as exc:
            if primary and exc.died and self._restart(round_, ph, client, config, stop_at):
                return
            why = str(exc) if primary else f"{config.phase}: {exc}"
            logger.warning("%s failed in round %d: %s", client, round_, why)
            self._drop(round_, client, FAILED, why)
            return
        except HospitalFailure as exc:
            self._drop(round_, client, FAILED, str(exc))
            return
        if primary and self.observer is not None:
            self.observer("step", round_, {"hospital": client, "phase": config.phase})
        if follow_up is None:
            ph.finals[client] = result
        else:
            ph.handles[self.executor.start(client, follow_up)] = (client, follow_up)

    def _restart(self, round_: int, ph: _Phase, client: str, config: RoundConfig,
                 stop_at: float | None) -> bool:
        """A client whose process died (taking every client it hosts out of the step) starts
        its step again, once a round, when its restarted process answers before the round's
        deadline; False when it cannot."""
        if round_ == 0 or client in self._restarted:
            return False
        left = self.restart_timeout if stop_at is None else stop_at - time.monotonic()
        if left <= 0 or self.executor.await_up([client], min(left, self.restart_timeout)):
            return False
        self._restarted.add(client)
        if self.observer is not None:
            self.observer("restarted", round_, {"hospital": client})
        logger.warning("%s: its process died in round %d; restarted, running its step again",
                       client, round_)
        ph.handles[self.executor.start(client, config)] = (client, config)
        ph.running.add(client)
        return True

    def _expire(self, round_: int, ph: _Phase) -> None:
        """Nothing came back in time: time out the primary steps still running (their
        processes are restarted), or fail the follow-ups still outstanding."""
        for handle, (client, config) in list(ph.handles.items()):
            if ph.running and client in ph.running:
                logger.warning("%s exceeded the round timeout; restarting it", client)
                self.executor.abandon(client)
                self._drop(round_, client, TIMED_OUT, f"> {self.round_timeout}s")
            elif not ph.running:
                self._drop(round_, client, FAILED, f"{config.phase}: no answer within "
                                                   f"{FOLLOW_UP_TIMEOUT:.0f}s")
            else:
                continue
            del ph.handles[handle]
        ph.running.clear()

    def _acceptable(self, ph: _Phase) -> bool:
        """Whether the next client in start order can be accepted (or skipped) now."""
        if not ph.queue or self.executor.measuring():
            return False
        head = ph.queue[0]
        return head in self._out or head in ph.finals

    def _accept(self, ph: _Phase, *, one: bool) -> None:
        """Accept, in start order, the settled clients no earlier client is holding up
        (``one``: at most one, so new results are looked at between acceptances)."""
        while self._acceptable(ph):
            client = ph.queue.pop(0)
            if client in self._out:
                continue
            try:
                self.method.accept(ph.finals[client])
            except HospitalFailure as exc:  # the server refused it (a rejected submission)
                logger.warning("%s: accepting its result failed: %s", client, exc)
                self._drop(ph.finals[client].round, client, REJECTED, str(exc))
                continue
            if one:
                return

    def _drop(self, round_: int, client: str, status: str, why: str) -> None:
        if self.observer is not None:
            self.observer("dropped", round_, {"hospital": client, "status": status})
        self._out.add(client)
        self.method.dropped(round_, client, status, why)
