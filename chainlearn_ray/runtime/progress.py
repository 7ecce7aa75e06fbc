"""Live progress of a run: what the driver and the chain do, as plain events.

The driver (inside the coordinator actor) reports each round's start, each hospital's step
and drop, and every chain operation to a :class:`ProgressBoard` actor without waiting for it;
the process that drives the run drains the board while it waits for the round and hands each
:class:`RunEvent` to its ``events`` callback. Nothing here draws anything: ``chainlearn run``
turns the events into a live display (:mod:`chainlearn_ray.commands.live`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray

#: Chain operations of a method's port that are reported as chain steps.
CHAIN_STEPS = {
    "register": "registering a hospital", "start_round": "opening the round",
    "prepare_update": "preparing a submission", "submit": "relaying a submission",
    "round_weight": "reading a weight", "record_ensemble": "recording the ensemble",
}


@dataclass(frozen=True)
class RunEvent:
    """One thing that happened in a run.

    ``kind``: ``round_started`` (``hospitals``: how many attend), ``step`` (a hospital's
    primary step of the round came back: ``hospital``, ``phase``), ``dropped`` (``hospital``,
    ``status``), ``restarted`` (``hospital``: its process died, its step starts again),
    ``chain`` (``step``: what the chain is doing).
    """

    kind: str
    round: int
    data: dict[str, Any] = field(default_factory=dict)


Events = Callable[[RunEvent], None]


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Holds events until the driving process takes them."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    def post(self, event: RunEvent) -> None:
        """Add one event."""
        self.events.append(event)

    def drain(self) -> list[RunEvent]:
        """Every event since the last drain, in order."""
        out, self.events = self.events, []
        return out


def poster(board: Any) -> Callable[[str, int, dict[str, Any]], None]:
    """A driver observer that posts to ``board`` without waiting (Ray keeps one caller's
    calls to an actor in order)."""
    def observe(kind: str, round_: int, data: dict[str, Any]) -> None:
        board.post.remote(RunEvent(kind, round_, data))

    return observe


class ObservedPort:
    """A method's chain port that reports each chain operation before doing it."""

    def __init__(self, port: Any, observe: Callable[[str, int, dict[str, Any]], None]) -> None:
        self._port, self._observe = port, observe
        self.round = 0

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._port, name)
        step = CHAIN_STEPS.get(name)
        if step is None or not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self._observe("chain", self.round, {"step": step})
            return target(*args, **kwargs)

        return call


def await_with_events(ref: Any, board: Any, events: Events | None,
                      poll: float = 0.25) -> Any:
    """``ray.get(ref)``, handing the board's events to ``events`` while waiting."""
    if board is None or events is None:
        return ray.get(ref)
    while True:
        ready, _ = ray.wait([ref], timeout=poll)
        for event in ray.get(board.drain.remote()):
            events(event)
        if ready:
            return ray.get(ref)
