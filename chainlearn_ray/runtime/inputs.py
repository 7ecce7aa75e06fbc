"""Large constructor data of restartable actors, handed over by name instead of by argument.

Ray re-runs an actor's constructor with its original arguments when it restarts the actor, but
it does not keep object references among those arguments alive for that (ray-project/ray#53727),
and it logs an error for every restartable actor created with one. So a hospital actor gets only
small, plain arguments: an :class:`ActorInputs` naming the run's :class:`InputStore` and its
own key. Its constructor looks the store up by name, asks it for the references and fetches the
data; a restarted actor does the same. The driver owns the objects and keeps its references for
the run; the store holds them as well, for the actors to ask for.

This module imports only Ray: the store's process loads nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray


@ray.remote(num_cpus=0, max_restarts=0)
class InputStore:
    """Object references by key, for the actors of one run (a tiny process; no restarts)."""

    def __init__(self, refs: dict[str, list[Any]]) -> None:
        self._refs = refs  # the references arrive nested in a dict, so Ray passes them as they are

    def get(self, key: str) -> list[Any]:
        """The references held under ``key`` (nested in a list: Ray does not fetch them)."""
        return self._refs[key]


@dataclass(frozen=True)
class ActorInputs:
    """Where an actor finds its constructor data: the run's store (by name) and its key."""

    store: str
    key: str

    def fetch(self) -> list[Any]:
        """The values of the references the store holds under :attr:`key`, in order."""
        store = ray.get_actor(self.store)
        return list(ray.get(ray.get(store.get.remote(self.key))))

