"""The verifier's side of a Proof of Capacity under a challenge: which steps to spot-check, the
result digest, and the tier the verifier's own timing supports.

A hospital answers a fresh on-chain challenge by running the K-step benchmark seeded by it
(:mod:`chainlearn_ray.learning.challenge`) and returns each step's value and their digest. The
verifier checks the digest against the values, recomputes all of them or a seeded random
sample (:func:`spot_check_steps`), and classifies the tier from the seconds *it* measured for
the exchange (:func:`verified_throughput`): a hospital may take longer (look slower), never
less than its hardware needs, so it can never look faster.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from chainlearn_ray.errors import ChainlearnError, ConfigError
from chainlearn_ray.protocol.poc import benchmark_hash, classify
from chainlearn_ray.protocol.tiers import Tier

#: Relative tolerance of a recomputed step value (float sums differ with thread counts).
STEP_RTOL = 1e-4


class ChallengeAnswerError(ChainlearnError):
    """A hospital's answer to a PoC challenge does not check out (digest or recomputed steps);
    it is not registered. The hospital must answer a new challenge honestly."""


def steps_digest(challenge: bytes, values: Sequence[float]) -> bytes:
    """SHA-256 of the challenge followed by every step value as an 8-byte big-endian double."""
    if len(challenge) != 32:
        raise ConfigError("a PoC challenge must be exactly 32 bytes")
    packed = b"".join(struct.pack(">d", float(v)) for v in values)
    return hashlib.sha256(bytes(challenge) + packed).digest()


def spot_check_steps(challenge: bytes, steps: int, count: int | None) -> list[int]:
    """The steps the verifier recomputes: all of them (``count`` ``None`` or ``>= steps``), or
    ``count`` distinct steps drawn from a generator seeded by the challenge and known only once
    the answer is in (sorted)."""
    if steps < 1:
        raise ConfigError(f"a PoC needs steps >= 1, got {steps}")
    if count is None or count >= steps:
        return list(range(steps))
    if count < 1:
        raise ConfigError(f"poc.spot_checks must be >= 1 (or unset for all steps), got {count}")
    import numpy as np

    seed = int.from_bytes(hashlib.sha256(b"spot-check" + bytes(challenge)).digest()[:8], "big")
    picked = np.random.default_rng(seed).choice(steps, size=count, replace=False)
    return sorted(int(i) for i in picked)


def check_answer(challenge: bytes, values: Sequence[float], digest: bytes,
                 recomputed: dict[int, float], rtol: float = STEP_RTOL) -> None:
    """Raise :class:`ChallengeAnswerError` unless ``digest`` is the digest of ``values`` and
    every recomputed step agrees with the value the hospital sent (relative ``rtol``)."""
    if bytes(digest) != steps_digest(challenge, values):
        raise ChallengeAnswerError("the PoC result digest does not match the step values sent")
    for step, value in sorted(recomputed.items()):
        if not 0 <= step < len(values):
            raise ChallengeAnswerError(f"the PoC answer has no step {step}")
        sent = float(values[step])
        if not math.isclose(sent, value, rel_tol=rtol, abs_tol=1e-9):
            raise ChallengeAnswerError(
                f"PoC step {step}: sent {sent!r}, recomputed {value!r}: the benchmark was not "
                "run as challenged")


def verified_throughput(steps: int, batch_size: int, verifier_seconds: float) -> float:
    """Samples per second from the verifier's own timing of the exchange (K·B / seconds)."""
    if not (math.isfinite(verifier_seconds) and verifier_seconds > 0):
        raise ChallengeAnswerError(f"the verifier timed {verifier_seconds!r} s: not a duration")
    return steps * batch_size / float(verifier_seconds)


@dataclass(frozen=True)
class VerifiedCapacity:
    """What the verifier attests: the throughput it measured, the tier that supports, the
    tier registered (the claim, lowered to the measured tier) and its benchmark hash."""

    throughput: float
    measured: Tier
    tier: Tier
    bench_hash: bytes
    claimed: Tier

    @property
    def corrected(self) -> bool:
        """The claim was above what the verifier measured."""
        return self.claimed > self.measured


def verify_capacity(claimed: Tier | str, steps: int, batch_size: int, verifier_seconds: float,
                    weak_below: float, medium_below: float) -> VerifiedCapacity:
    """The tier a hospital registers with under the verifier's timing: its claim when the
    measurement supports it, else the measured tier (a claim can go down, never up)."""
    throughput = verified_throughput(steps, batch_size, verifier_seconds)
    measured = classify(throughput, weak_below, medium_below)
    claim = Tier.parse(claimed)
    tier = min(claim, measured)
    return VerifiedCapacity(throughput, measured, tier,
                            benchmark_hash(throughput, steps, batch_size, tier), claim)
