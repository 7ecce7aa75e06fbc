"""torch's global random generator, shared safely by hospitals that train on threads.

A process hosting several hospitals may train them at once on threads (see
``ResourcePlan.mixed_threads``). torch has one global generator per process, and every seeded
draw of this package (model initialisation, the PoC network, dropout and stochastic depth
during training) seeds it, draws and restores it. Two threads doing that at once would draw
from each other's streams, so all of them go through :func:`seeded`, which holds
:data:`GLOBAL_RNG` for the whole block. Training of a model whose layers draw nothing
(``models.draws_global_rng``) takes no lock at all and runs truly in parallel.

Every result is the same as when the hospitals run one after another.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

#: Held by every block that seeds or draws from torch's global generator (re-entrant).
GLOBAL_RNG = threading.RLock()


@contextlib.contextmanager
def seeded(seed: int | None, devices: Sequence[int] = ()) -> Iterator[None]:
    """Run the block under ``torch.manual_seed(seed)``, restoring the generators afterwards
    (the CPU one and those of the CUDA ``devices``), with no other thread drawing meanwhile.

    ``seed=None`` draws from the global generator as it stands, still exclusively.
    """
    import torch

    with GLOBAL_RNG:
        if seed is None:
            yield
            return
        with torch.random.fork_rng(devices=list(devices)):
            torch.manual_seed(int(seed))
            yield


def reseed(seed: int) -> None:
    """``torch.manual_seed(seed)`` while no other thread draws."""
    import torch

    with GLOBAL_RNG:
        torch.manual_seed(int(seed))
