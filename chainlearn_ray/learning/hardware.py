"""A hospital's simulated hardware: its profile and the throttle that paces its clock.

Hardware profiles make simulated hospitals on one machine really differ. A
:class:`HardwareProfile` names the torch threads, the device and the PoC throughput the
simulated hardware delivers (``target_throughput``, samples/s). A :class:`Throttle` turns the
profile into a clock, in one of two ways (``Throttle.clock``).

* ``"cost"`` (:meth:`Throttle.from_cost_model`): simulated time is priced from the work done
  by a :class:`~chainlearn_ray.learning.cost.CostModel`, never from wall time. The slow-down
  of the profile is ``reference PoC throughput / target``; training is charged
  ``samples × seconds per sample of the architecture × slowdown``; the PoC is charged
  ``samples / target``, so it reports the target exactly. Same configuration, same times, on
  any machine and under any load.
* ``"measured"`` (:meth:`Throttle.calibrate`): the benchmark runs once unthrottled under the
  profile's threads and device and gives ``slowdown = max(1, unthrottled / target)``. The PoC
  is a throughput cap: after every timed step the simulated elapsed time is
  ``max(compute, samples / target)``, so a machine faster than the target measures the target,
  and a slower one its own, lower, speed. Every training step is charged
  ``slowdown × compute`` seconds. Times follow how busy the machine is: for studies of real
  contention.

Independently, two throttle modes (``HardwareProfile.mode``):

* ``"sleep"``: the throttle really sleeps the difference between the simulated and the
  computed time after each step (oversleeping is carried over), so wall time and measured
  throughput really drop.
* ``"virtual"``: nothing sleeps; the PoC's reported seconds and the training's
  ``simulated_seconds`` follow the clock, for fast simulations.

Both modes report ``simulated_seconds``; in sleep mode the wall time follows it (as long as
the machine is faster than the simulated hardware).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Literal

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.learning.benchmark import run_benchmark
from chainlearn_ray.learning.cost import REFERENCE_SIDE, CostModel

logger = logging.getLogger(__name__)

ThrottleMode = Literal["sleep", "virtual"]
#: Clock modes of a hardware profile.
THROTTLE_MODES = ("virtual", "sleep")
Clock = Literal["cost", "measured"]
#: Where simulated time comes from: a cost model of the work done, or measured compute time.
CLOCKS = ("cost", "measured")

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
        ``"virtual"`` (nothing sleeps) or ``"sleep"`` (really slowed down to the clock).
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


class Pacer:
    """Per-run clock of a throttle: charges each step and sleeps in ``"sleep"`` mode.

    Parameters
    ----------
    slowdown:
        Factor applied to compute time (training on the measured clock).
    cap:
        Throughput cap in samples/s (PoC), or ``None``.
    mode:
        ``"sleep"`` or ``"virtual"``.
    sample_cost:
        Simulated seconds charged per sample whatever the step computed (the cost-model clock),
        or ``None`` to charge ``slowdown × compute``.
    """

    def __init__(self, slowdown: float = 1.0, cap: float | None = None,
                 mode: ThrottleMode = "virtual", sample_cost: float | None = None) -> None:
        self.slowdown = float(slowdown)
        self.cap = cap
        self.mode = mode
        self.sample_cost = sample_cost
        self.compute_seconds = 0.0
        self.slept_seconds = 0.0
        self.samples = 0

    @property
    def priced(self) -> bool:
        """Whether the clock is priced from the work done (cost model), not from compute time."""
        return self.sample_cost is not None

    @property
    def simulated_seconds(self) -> float:
        """Elapsed time of the simulated hardware so far."""
        if self.sample_cost is not None:
            charged = self.samples * self.sample_cost
        else:
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
    """A hardware profile on a clock: how much slower than the reference the hospital runs.

    Attributes
    ----------
    profile:
        The simulated hardware.
    slowdown:
        Measured clock: ``max(1, unthrottled / target)`` (1 without a target). Cost-model
        clock: ``cost.poc_throughput / target`` (below 1 for hardware faster than the
        reference machine).
    unthrottled_throughput:
        The machine's PoC throughput measured under the profile's threads and device, if
        calibrated.
    cost:
        The cost model pricing simulated time (``None``: the measured clock).
    """

    profile: HardwareProfile
    slowdown: float = 1.0
    unthrottled_throughput: float | None = field(default=None)
    cost: CostModel | None = None

    def __post_init__(self) -> None:
        if self.cost is not None:
            if not (math.isfinite(self.slowdown) and self.slowdown > 0):
                raise ConfigError(f"throttle slowdown must be a finite positive number, got "
                                  f"{self.slowdown}")
        elif not (math.isfinite(self.slowdown) and self.slowdown >= 1.0):
            raise ConfigError(f"throttle slowdown must be a finite number >= 1, got "
                              f"{self.slowdown}")

    @property
    def mode(self) -> ThrottleMode:
        """The profile's clock mode."""
        return self.profile.mode

    @property
    def clock(self) -> Clock:
        """``"cost"`` (priced by a cost model) or ``"measured"`` (scaled compute time)."""
        return "cost" if self.cost is not None else "measured"

    @property
    def threads(self) -> int:
        """The profile's torch threads."""
        return self.profile.threads

    @classmethod
    def from_cost_model(cls, profile: HardwareProfile, cost: CostModel) -> Throttle:
        """Throttle on the cost-model clock: nothing is measured, the slowdown is
        ``cost.poc_throughput / target``."""
        return cls(profile, cost.slowdown(profile.target_throughput), None, cost)

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

    def training_pacer(self, arch: str | None = None, height: int = REFERENCE_SIDE,
                       width: int = REFERENCE_SIDE) -> Pacer:
        """Clock for a training run of model ``arch`` on ``height × width`` inputs.

        Cost-model clock: ``slowdown × cost.per_sample(arch, height, width)`` per sample.
        Measured clock: ``slowdown × compute`` (``arch`` and the size are not needed).
        """
        if self.cost is None:
            return Pacer(self.slowdown, None, self.mode)
        if arch is None:
            raise ConfigError(
                "the cost-model clock prices training by the model's architecture name, which "
                "chainlearn_ray.learning.models.build_model records on the model: build it "
                "that way, or use the measured clock (runtime.clock: measured)")
        per_sample = self.cost.per_sample(arch, height, width) * self.slowdown
        return Pacer(self.slowdown, None, self.mode, sample_cost=per_sample)

    def benchmark_pacer(self) -> Pacer:
        """Clock for the PoC: capped at the profile's target (``slowdown × compute`` without);
        on the cost-model clock exactly ``samples / target``."""
        target = self.profile.target_throughput
        if self.cost is not None:
            return Pacer(1.0, self.cost.poc_throughput_of(target), self.mode, sample_cost=0.0)
        return Pacer(1.0 if target is not None else self.slowdown, target, self.mode)
