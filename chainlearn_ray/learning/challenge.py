"""The Proof-of-Capacity benchmark under a verifier's challenge: K independent SGD steps of the
PoC's small CNN, every input drawn from the challenge, so no answer can be computed before the
challenge exists.

Step ``j`` starts from the network initialised from the challenge, takes one SGD step on batch
``j`` (drawn from the challenge and ``j``) and records the loss on that batch after the update.
Steps do not depend on each other, so a verifier recomputes any of them alone
(:func:`recompute_steps`); :mod:`chainlearn_ray.protocol.verifier` digests, spot-checks and
classifies.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.learning.benchmark import _poc_network
from chainlearn_ray.learning.rng import seeded
from chainlearn_ray.learning.threads import torch_threads
from chainlearn_ray.protocol.verifier import steps_digest

if TYPE_CHECKING:
    from chainlearn_ray.learning.hardware import Throttle


def _seed(challenge: bytes, step: int) -> int:
    return int.from_bytes(hashlib.sha256(bytes(challenge) + step.to_bytes(4, "big")).digest()[:8],
                          "big") & (2**63 - 1)


class _Bench:
    """The challenge's initial network and loss; :meth:`step` runs one step."""

    def __init__(self, challenge: bytes, batch_size: int) -> None:
        import torch

        if len(challenge) != 32 or batch_size < 1:
            raise ConfigError("a PoC challenge is 32 bytes and its batch size >= 1")
        self.challenge, self.batch_size = bytes(challenge), batch_size
        with seeded(_seed(challenge, 2**32 - 1), []):  # the caller's generators stay as they are
            self.net = _poc_network()
        self.initial = {k: v.clone() for k, v in self.net.state_dict().items()}
        self.loss = torch.nn.CrossEntropyLoss()

    def step(self, j: int) -> float:
        import torch

        gen = torch.Generator().manual_seed(_seed(self.challenge, j))
        x = torch.randn(self.batch_size, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (self.batch_size,), generator=gen)
        self.net.load_state_dict(self.initial)
        opt = torch.optim.SGD(self.net.parameters(), lr=0.01)
        opt.zero_grad(set_to_none=True)
        self.loss(self.net(x), y).backward()
        opt.step()
        with torch.no_grad():
            return float(self.loss(self.net(x), y))


@dataclass(frozen=True)
class ChallengeRun:
    """A hospital's run of the challenged benchmark.

    ``values`` and ``digest`` are its answer; ``hardware_seconds`` is how long its simulated
    hardware took for the K steps (the clock the verifier reads in virtual mode, not a field
    the hospital writes); ``compute_seconds`` what this machine really computed.
    """

    values: tuple[float, ...]
    digest: bytes
    hardware_seconds: float
    compute_seconds: float


def run_challenge(challenge: bytes, steps: int, batch_size: int, *,
                  throttle: Throttle | None = None, threads: int | None = None) -> ChallengeRun:
    """Run the K = ``steps`` challenged steps at batch ``batch_size`` on this hospital's
    hardware (``throttle`` paces and clocks it; without one, wall time)."""
    if steps < 1:
        raise ConfigError(f"poc.steps must be >= 1, got {steps}")
    pacer = throttle.benchmark_pacer() if throttle is not None else None
    with torch_threads(throttle.threads if throttle is not None else threads):
        bench = _Bench(challenge, batch_size)
        values = []
        start = time.perf_counter()
        for j in range(steps):
            t0 = time.perf_counter()
            values.append(bench.step(j))
            if pacer is not None:
                pacer.step(time.perf_counter() - t0, batch_size)
        wall = time.perf_counter() - start
    clocked = pacer is not None and (pacer.mode == "virtual" or pacer.priced)
    seconds = pacer.simulated_seconds if pacer is not None and clocked else wall
    compute = pacer.compute_seconds if pacer is not None else wall
    return ChallengeRun(tuple(values), steps_digest(challenge, values), seconds, compute)


def recompute_steps(challenge: bytes, batch_size: int, steps: Iterable[int],
                    threads: int | None = 1) -> dict[int, float]:
    """The verifier's recomputation of the challenged steps ``steps``."""
    with torch_threads(threads):
        bench = _Bench(challenge, batch_size)
        return {int(j): bench.step(int(j)) for j in steps}
