"""Proof of Capacity: the benchmark, its hash, the signed PoC statement and tier thresholds.

The benchmark (SPEC.md §2) trains a small CNN on a fixed random batch: ``warmup`` untimed SGD
steps, then ``steps`` (K) timed ones at batch ``batch_size`` (B), the device synchronised before
each clock read; throughput = K·B / seconds, and :func:`classify` turns it into a tier. A
hospital's simulated hardware (:mod:`chainlearn_ray.learning.hardware`) paces the benchmark.
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.protocol.tiers import MEDIUM_BELOW, WEAK_BELOW, Tier

if TYPE_CHECKING:

    pass

logger = logging.getLogger(__name__)



def benchmark_hash(throughput: float, steps: int, batch_size: int, tier: Tier | str) -> bytes:
    """SHA-256 of the PoC result, exactly as SPEC.md §2 defines the preimage.

    Preimage: throughput as an 8-byte big-endian IEEE-754 double, ``steps`` (K) as a 4-byte
    big-endian unsigned int, ``batch_size`` (B) as a 4-byte big-endian unsigned int, then the
    tier name (``"Weak"``, ``"Medium"``, ``"Strong"``) in UTF-8.

    Returns
    -------
    bytes
        32 bytes, usable as the contract's ``bytes32 benchmarkHash``.
    """
    if not 0 <= steps < 2**32 or not 0 <= batch_size < 2**32:
        raise ConfigError("PoC steps and batch size must fit in an unsigned 32-bit integer")
    name = Tier.parse(tier).display
    preimage = struct.pack(">dII", float(throughput), steps, batch_size) + name.encode("utf-8")
    return hashlib.sha256(preimage).digest()


# --------------------------------------------------------------------------- tiers


def classify(throughput: float, weak_below: float = WEAK_BELOW,
             medium_below: float = MEDIUM_BELOW) -> Tier:
    """Tier of a PoC throughput: ``< weak_below`` Weak, ``< medium_below`` Medium, else Strong.

    Raises
    ------
    ConfigError
        Thresholds not ``0 < weak_below <= medium_below``, or a NaN throughput.
    """
    if not 0 < weak_below <= medium_below:
        raise ConfigError(f"PoC thresholds need 0 < weak_below <= medium_below, got "
                          f"{weak_below}, {medium_below}")
    if math.isnan(throughput):
        raise ConfigError("PoC throughput is NaN")
    if throughput < weak_below:
        return Tier.WEAK
    if throughput < medium_below:
        return Tier.MEDIUM
    return Tier.STRONG


# --------------------------------------------------------------------------- benchmark


@dataclass(frozen=True)
class PoCResult:
    """Outcome of one PoC benchmark.

    Attributes
    ----------
    throughput:
        ``steps · batch_size / seconds`` (samples/s).
    steps, batch_size:
        K and B.
    seconds:
        Duration of the timed steps as the hospital's clock reports it (wall time, or the
        virtual clock in ``"virtual"`` mode).
    tier:
        :func:`classify` of the throughput under the thresholds used.
    bench_hash:
        :func:`benchmark_hash` of (throughput, K, B, tier).
    compute_seconds:
        Time the timed steps really computed (excludes throttle sleeps).
    """

    throughput: float
    steps: int
    batch_size: int
    seconds: float
    tier: Tier
    bench_hash: bytes
    compute_seconds: float
