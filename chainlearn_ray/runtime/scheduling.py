"""Scheduling rules the executors share: the order clients start in, and the next round's early
start. Neither changes a result; both decide only who waits for a core, and when.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chainlearn_ray.methods.messages import RoundConfig

logger = logging.getLogger(__name__)


def start_order(clients: Sequence[str], samples: Mapping[str, int],
                config: RoundConfig) -> list[str]:
    """``clients`` in the order their steps start, which is also the order the server accepts
    their results in.

    A timed step (a benchmark) keeps the given order. Any other step starts largest shard
    first: a process runs its steps in the order they arrive, so with the longest ones first
    the last to finish on each of its threads are the shortest, and its threads idle least at
    the end of a round. Results are accepted (Ours: relayed) in this order whatever order the
    steps finish in, so acceptance follows the steps as they finish instead of piling up
    behind a small hospital early in the list. Equal shards keep the given order.
    """
    if config.timed:
        return list(clients)
    return sorted(clients, key=lambda c: -samples.get(c, 0))


class NoAhead:
    """Nothing starts early (the next round is unknown, or its configuration depends on this
    one)."""

    def start_ready(self, through: Callable[[str], bool]) -> None:
        """Nothing to start."""


class EarlyStart:
    """The next round's first step, started process by process while this round ends.

    A process's calls start in the order they arrive (one at a time, or on its threads as they
    come free), so a client's next step would queue behind everything its process still has
    to do in this round; it is only sent once every client the process hosts is *through*
    this round (its last result is in and it did not fail), so it never delays a step of this
    round. Nothing else moves: the next round still opens after this one closes, and its
    results are accepted as always (seeds depend on client and round only).

    Parameters
    ----------
    config:
        The next round's first configuration (:meth:`~chainlearn_ray.methods.base.
        FederatedMethod.configure_ahead`).
    attending, current:
        Who takes part in the next round, and in this one.
    groups:
        Process -> the clients it hosts (every client of the run).
    order:
        Start order of a process's next steps (:func:`start_order`).
    launch:
        Starts one client's step now.
    hold:
        While true, nothing starts (timed steps are measuring on cores it would take).
    """

    def __init__(self, config: RoundConfig, attending: Sequence[str], current: Sequence[str],
                 groups: Mapping[Any, Sequence[str]],
                 order: Callable[[list[str]], list[str]],
                 launch: Callable[[str, RoundConfig], Any],
                 hold: Callable[[], bool] = lambda: False) -> None:
        self.config, self._order, self._launch, self._hold = config, order, launch, hold
        nxt, now = set(attending), set(current)
        self.waiting = {
            process: ([c for c in members if c in now], [c for c in members if c in nxt])
            for process, members in groups.items() if nxt.intersection(members)
        }

    def start_ready(self, through: Callable[[str], bool]) -> None:
        """Start the next round in every process whose clients are all through this one."""
        if self._hold():
            return
        for process, (now, nxt) in list(self.waiting.items()):
            if all(through(c) for c in now):
                del self.waiting[process]
                for c in self._order(nxt):
                    self._launch(c, self.config)
