"""Proof of Capacity: benchmark hash, the signed PoC statement, benchmark and hardware profiles.

The benchmark (SPEC.md §2) trains a small CNN on a fixed random batch: ``warmup`` untimed SGD
steps, then ``steps`` (K) timed ones at batch ``batch_size`` (B), the device synchronised before
each clock read; throughput = K·B / seconds, and :func:`classify` turns it into a tier.

Hardware profiles make simulated hospitals on one machine really differ. A
:class:`HardwareProfile` names the torch threads, the device and the PoC throughput the
simulated hardware delivers (``target_throughput``, samples/s). :meth:`Throttle.calibrate` runs
the benchmark once unthrottled under the profile's threads and device and derives the
slow-down factor ``slowdown = max(1, unthrottled / target)``. The throttle then acts as follows.

* **PoC: a throughput cap.** The benchmark's clock may not run ahead of the target: after every
  timed step the simulated elapsed time is ``max(compute, samples / target)``, so a machine
  faster than the target measures the target (to within sleep granularity), and a machine that
  is slower than its target measures its own, lower, speed. Pacing against the target itself
  rather than ``slowdown × compute`` keeps the measurement stable on a loaded machine whose
  speed drifts between calibration and benchmark.
* **Training: a slow-down factor.** Every training step of :func:`chainlearn_ray.training.train`
  is charged ``slowdown × compute`` seconds, so a Weak hospital trains ``slowdown`` times slower
  than the bare machine, whatever its model.

Two clock modes (``HardwareProfile.mode``):

* ``"sleep"``: the throttle really sleeps the difference after each step (oversleeping is
  carried over), so wall time and measured throughput really drop.
* ``"virtual"``: nothing sleeps; the PoC's reported seconds and the training's
  ``simulated_seconds`` follow the same virtual clock, for fast simulations.

Both modes report ``simulated_seconds``; in sleep mode it matches the wall time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from eth_abi import encode as abi_encode
from eth_utils import keccak

from chainlearn_ray.config import MEDIUM_BELOW, THROTTLE_MODES, WEAK_BELOW
from chainlearn_ray.errors import ChainlearnError, ConfigError, ResourceError
from chainlearn_ray.rng import seeded
from chainlearn_ray.tiers import Tier

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)


ThrottleMode = Literal["sleep", "virtual"]


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


def poc_digest(
    hospital: str, tier: Tier | str | int, bench_hash: bytes, chain_id: int, contract: str
) -> bytes:
    """The 32-byte statement a hospital signs to register.

    ``keccak256(abi.encode(address contract, uint256 chainId, address hospital,
    uint8 capacity, bytes32 benchmarkHash))`` — binding the deployment, the chain, the
    hospital, its tier and its benchmark, so a signature cannot be replayed elsewhere.
    The contract recomputes it and checks an EIP-191 signature over it
    (``MessageHashUtils.toEthSignedMessageHash(digest)``).
    """
    from chainlearn_ray.chain.signing import address_bytes

    if len(bench_hash) != 32:
        raise ConfigError("benchmark hash must be exactly 32 bytes")
    if not 0 <= int(chain_id) < 2**256:
        raise ConfigError(f"chain id {chain_id} is not a uint256")
    try:
        contract_raw, hospital_raw = address_bytes(contract), address_bytes(hospital)
    except ChainlearnError as exc:
        raise ConfigError(str(exc)) from None
    encoded = abi_encode(["address", "uint256", "address", "uint8", "bytes32"],
                         [contract_raw, int(chain_id), hospital_raw, int(Tier.parse(tier)),
                          bytes(bench_hash)])
    return bytes(keccak(encoded))


def sign_poc(
    private_key: bytes | str,
    tier: Tier | str | int,
    bench_hash: bytes,
    chain_id: int,
    contract: str,
) -> bytes:
    """Sign the PoC statement (EIP-191 ``personal_sign`` over :func:`poc_digest`).

    Returns the 65-byte ``r ‖ s ‖ v`` signature (low-s, as eth-account produces).
    """
    from chainlearn_ray.chain.signing import key_address, sign_digest

    digest = poc_digest(key_address(private_key), tier, bench_hash, chain_id, contract)
    return sign_digest(digest, private_key)


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


# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class HardwareProfile:
    """The simulated hardware of a hospital.

    Attributes
    ----------
    name:
        Profile name, usually the tier label (``"weak"``, ``"medium"``, ``"strong"``).
    threads:
        torch intra-op threads for the benchmark and training.
    target_throughput:
        PoC samples/s the simulated hardware delivers; ``None`` runs at the machine's speed.
    device:
        ``"cpu"``, ``"cuda"`` or ``"cuda:<i>"``.
    mode:
        ``"virtual"`` (scaled clock, nothing sleeps) or ``"sleep"`` (really slowed down).
    """

    name: str
    threads: int = 1
    target_throughput: float | None = None
    device: str = "cpu"
    mode: ThrottleMode = "virtual"

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ConfigError(f"profile {self.name!r}: threads must be >= 1, got {self.threads}")
        target = self.target_throughput
        if target is not None and not (math.isfinite(target) and target > 0):
            raise ConfigError(f"profile {self.name!r}: target_throughput must be a positive "
                              f"number or None, got {target}")
        if self.mode not in THROTTLE_MODES:
            raise ConfigError(f"profile {self.name!r}: mode must be sleep or virtual, "
                              f"got {self.mode!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"profile {self.name!r}: device must be cpu or cuda[:i], "
                              f"got {self.device!r}")


#: The torch thread count each OS thread has applied (see :func:`pin_torch_threads`).
_APPLIED = threading.local()


def pin_torch_threads(threads: int) -> None:
    """Apply ``torch.set_num_threads(threads)`` in the calling OS thread too.

    The count is process-wide, but OpenMP keeps it per thread: a thread that never applied it
    (an actor's second task thread, say) computes with the library default, which differs in
    speed and in the order of floating-point sums. Applying it once per thread makes every
    thread of a process compute alike.
    """
    import torch

    if getattr(_APPLIED, "threads", None) != threads or torch.get_num_threads() != threads:
        torch.set_num_threads(int(threads))
        _APPLIED.threads = int(threads)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)`` (``None``: unchanged), then restore."""
    import torch

    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    pin_torch_threads(int(threads))
    try:
        yield
    finally:
        if before != threads:
            pin_torch_threads(before)


def synchronize(device: str) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


class Pacer:
    """Per-run clock of a throttle: charges each step and sleeps in ``"sleep"`` mode.

    Parameters
    ----------
    slowdown:
        Factor applied to compute time (training).
    cap:
        Throughput cap in samples/s (PoC), or ``None``.
    mode:
        ``"sleep"`` or ``"virtual"``.
    """

    def __init__(self, slowdown: float = 1.0, cap: float | None = None,
                 mode: ThrottleMode = "virtual") -> None:
        self.slowdown = float(slowdown)
        self.cap = cap
        self.mode = mode
        self.compute_seconds = 0.0
        self.slept_seconds = 0.0
        self.samples = 0

    @property
    def simulated_seconds(self) -> float:
        """Elapsed time of the simulated hardware so far."""
        charged = self.slowdown * self.compute_seconds
        if self.cap is not None:
            charged = max(charged, self.samples / self.cap)
        return charged

    def step(self, compute_seconds: float, samples: int) -> None:
        """Charge one step that computed for ``compute_seconds`` on ``samples`` samples."""
        self.compute_seconds += compute_seconds
        self.samples += samples
        if self.mode != "sleep":
            return
        owed = self.simulated_seconds - self.compute_seconds - self.slept_seconds
        if owed > 1e-4:
            t0 = time.perf_counter()
            time.sleep(owed)
            self.slept_seconds += time.perf_counter() - t0


@dataclass(frozen=True)
class Throttle:
    """A calibrated hardware profile: how much slower than this machine the hospital runs.

    Attributes
    ----------
    profile:
        The simulated hardware.
    slowdown:
        ``max(1, unthrottled / target)`` (1 without a target).
    unthrottled_throughput:
        The machine's PoC throughput measured under the profile's threads and device, if
        calibrated.
    """

    profile: HardwareProfile
    slowdown: float = 1.0
    unthrottled_throughput: float | None = field(default=None)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.slowdown) and self.slowdown >= 1.0):
            raise ConfigError(f"throttle slowdown must be a finite number >= 1, got "
                              f"{self.slowdown}")

    @property
    def mode(self) -> ThrottleMode:
        """The profile's clock mode."""
        return self.profile.mode

    @property
    def threads(self) -> int:
        """The profile's torch threads."""
        return self.profile.threads

    @classmethod
    def from_profile(cls, profile: HardwareProfile, unthrottled_throughput: float) -> Throttle:
        """Throttle for ``profile`` on a machine whose unthrottled PoC speed is known."""
        if not unthrottled_throughput > 0:
            raise ConfigError(f"unthrottled throughput must be positive, got "
                              f"{unthrottled_throughput}")
        target = profile.target_throughput
        slowdown = 1.0 if target is None else max(1.0, unthrottled_throughput / target)
        if target is not None and unthrottled_throughput < target:
            logger.warning(
                "profile %s: this machine delivers %.1f samples/s, below the target %.1f; the "
                "hospital runs unthrottled and measures the machine's own speed",
                profile.name, unthrottled_throughput, target)
        return cls(profile, slowdown, float(unthrottled_throughput))

    @classmethod
    def from_slowdown(cls, profile: HardwareProfile, slowdown: float) -> Throttle:
        """Throttle with a known slow-down factor (e.g. restored from a checkpoint)."""
        return cls(profile, float(slowdown))

    @classmethod
    def calibrate(cls, profile: HardwareProfile, *, steps: int = 50, warmup: int = 5,
                  batch_size: int = 16, seed: int = 0) -> Throttle:
        """Measure this machine's unthrottled PoC speed under ``profile`` and derive the throttle.

        Without a target nothing is measured and the throttle is a no-op (``slowdown`` 1).
        """
        if profile.target_throughput is None:
            return cls(profile, 1.0)
        bare = run_benchmark(steps=steps, warmup=warmup, batch_size=batch_size,
                             device=profile.device, seed=seed, threads=profile.threads)
        logger.debug("profile %s: unthrottled PoC %.1f samples/s", profile.name, bare.throughput)
        return cls.from_profile(profile, bare.throughput)

    def training_pacer(self) -> Pacer:
        """Clock for a training run: ``slowdown × compute``."""
        return Pacer(self.slowdown, None, self.mode)

    def benchmark_pacer(self) -> Pacer:
        """Clock for the PoC: capped at the profile's target (``slowdown × compute`` without)."""
        target = self.profile.target_throughput
        return Pacer(1.0 if target is not None else self.slowdown, target, self.mode)


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


def _poc_network() -> nn.Module:
    """The PoC's small CNN: two conv-ReLU-pool blocks and a linear layer, 3×32×32 → 10."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    )


def run_benchmark(
    *,
    steps: int = 50,
    warmup: int = 5,
    batch_size: int = 16,
    device: str = "cpu",
    seed: int = 0,
    throttle: Throttle | None = None,
    weak_below: float = WEAK_BELOW,
    medium_below: float = MEDIUM_BELOW,
    threads: int | None = None,
) -> PoCResult:
    """Run the Proof-of-Capacity benchmark.

    A small CNN (:func:`_poc_network`, seeded) and a fixed random batch of ``batch_size``
    3×32×32 images with 10-class labels, both in channels-last memory format; ``warmup``
    untimed SGD steps (lr 0.01), then ``steps`` timed ones, synchronising the device before
    every clock read.

    Parameters
    ----------
    steps, warmup, batch_size:
        K timed steps, warm-up steps, batch B.
    device:
        torch device.
    seed:
        Seeds the network and the batch.
    throttle:
        Hardware throttle: caps the throughput at the profile's target (see module docs); its
        profile's threads are used.
    weak_below, medium_below:
        Tier thresholds in samples/s.
    threads:
        torch threads when no throttle is given (``None``: unchanged).

    Returns
    -------
    PoCResult
    """
    if steps < 1 or warmup < 0 or batch_size < 1:
        raise ConfigError(f"PoC needs steps >= 1, warmup >= 0, batch_size >= 1; got {steps}, "
                          f"{warmup}, {batch_size}")
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ResourceError(f"PoC device {device!r} asked for, but CUDA is not available: "
                            "use device 'cpu' or run on a GPU node")
    pacer = throttle.benchmark_pacer() if throttle is not None else None
    rng_devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with seeded(seed, rng_devices):  # the timed steps below draw nothing
        gen = torch.Generator().manual_seed(seed)
        # channels-last, as local training runs: a third faster on CPU than the default format
        net = _poc_network().to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        x = torch.randn(batch_size, 3, 32, 32, generator=gen).to(
            device, memory_format=torch.channels_last)
        y = torch.randint(0, 10, (batch_size,), generator=gen).to(device)
    with torch_threads(throttle.threads if throttle is not None else threads):
        loss_fn = torch.nn.CrossEntropyLoss()

        params = list(net.parameters())

        def one_step() -> None:  # plain SGD, lr 0.01 (torch.optim would import TorchDynamo)
            net.zero_grad(set_to_none=True)
            loss_fn(net(x), y).backward()
            with torch.no_grad():
                for p in params:
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-0.01)

        for _ in range(warmup):
            one_step()
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            t0 = time.perf_counter()
            one_step()
            if pacer is not None:
                synchronize(device)
                pacer.step(time.perf_counter() - t0, batch_size)
        synchronize(device)
        wall = time.perf_counter() - start
    compute = pacer.compute_seconds if pacer is not None else wall
    seconds = pacer.simulated_seconds if pacer is not None and pacer.mode == "virtual" else wall
    throughput = steps * batch_size / seconds
    tier = classify(throughput, weak_below, medium_below)
    return PoCResult(throughput, steps, batch_size, seconds, tier,
                     benchmark_hash(throughput, steps, batch_size, tier), compute)

