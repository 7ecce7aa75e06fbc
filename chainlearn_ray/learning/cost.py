"""The cost model of the virtual clock: simulated seconds from the work done, not from wall time.

A hospital's simulated training time is

    samples processed × seconds per sample of its architecture at its input size on the
    reference machine × the hardware slowdown of its tier,

and the hardware slowdown of a tier is ``reference PoC throughput / tier's target_throughput``
(below 1 for simulated hardware faster than the reference machine). The PoC benchmark of a
profile with target ``t`` lasts ``K·B / t`` simulated seconds, so it reports ``t`` exactly and
the tier it measures is a function of the configuration. Every quantity here is a number of
the configuration, so the same configuration and seed give the same simulated times on any
machine, however busy.

The per-sample costs are training costs (forward, backward and Adam step) at batch 32, one
torch thread, for images of :data:`REFERENCE_SIDE` pixels a side. Rules for what a table does
not list (both fitted to measurements on the reference machine, see
``benchmarks/bench_cost_model.py``):

* **Input size.** An entry ``"<arch>@<side>"`` prices square ``side`` px inputs exactly; else
  the 28 px cost is scaled by :func:`size_factor`, ``(2 + pixels / 28²) / 3``: two thirds of
  it is per-layer work that barely grows with the image at these sizes, one third grows with
  the pixel count. (Plain pixel-count scaling overestimated MobileNetV3-Small, ResNet-50 and
  the tiny CNN 2.3x at 56 px and 2.3-3.6x at 112 px; this rule stays within ~35 %.)
* **Tiny CNN width.** ``tiny_cnn:<w>`` is priced from ``tiny_cnn`` (width 16) as
  ``tiny_cnn × (1 + (w² + w) / 272) / 2``: half of the width-16 cost does not depend on the
  width, half grows with the convolutions' multiply-accumulates, ``w² + w`` (within ~15 % at
  widths 4, 8, 16 and 32).

Input channels (grey or RGB) change only the stem and are not priced.
:mod:`chainlearn_ray.learning.calibration` measures a table on this machine and caches it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chainlearn_ray.errors import ConfigError

#: Image side (pixels) the per-sample costs of a table are given for.
REFERENCE_SIDE = 28
#: Reserved key of a flat cost table: the reference machine's PoC throughput (samples/s).
POC_KEY = "poc_throughput"
#: Separates an architecture from an image side in a table key (``"resnet50@224"``).
SIDE_SEP = "@"
#: Width of ``tiny_cnn`` without a suffix (``learning.models.TINY_DEFAULT_WIDTH``).
_TINY_WIDTH = 16


def _positive(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not (math.isfinite(number) and number > 0):
        raise ConfigError(f"{what} must be a positive number, got {value!r}")
    return number


def size_factor(height: int, width: int) -> float:
    """Cost of a ``height × width`` input relative to 28 × 28: ``(2 + pixels / 28²) / 3``."""
    if height < 1 or width < 1:
        raise ConfigError(f"input size must be positive, got {height}x{width}")
    return (2.0 + (height * width) / (REFERENCE_SIDE * REFERENCE_SIDE)) / 3.0


def cost_key(arch: str, side: int = REFERENCE_SIDE) -> str:
    """Table key of ``arch`` at square ``side`` px inputs (the bare name at 28 px)."""
    return arch if side == REFERENCE_SIDE else f"{arch}{SIDE_SEP}{int(side)}"


@dataclass(frozen=True)
class CostModel:
    """Per-sample training costs of the reference machine, and its PoC throughput.

    Attributes
    ----------
    seconds_per_sample:
        Architecture name (as in ``tiers.<tier>.arch``) -> seconds to train on one sample of
        :data:`REFERENCE_SIDE` px on the reference machine; ``"<arch>@<side>"`` keys price
        other square sizes exactly.
    poc_throughput:
        The reference machine's unthrottled PoC throughput (samples/s): a tier whose
        ``target_throughput`` equals it trains at the table's speed.
    source:
        Where the table came from: ``"builtin"``, ``"config"`` or ``"calibrated"``.
    machine:
        For a calibrated table, the machine it was measured on (host, CPU, torch, threads).
    """

    seconds_per_sample: Mapping[str, float]
    poc_throughput: float
    source: str = "config"
    machine: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.seconds_per_sample, Mapping) or not self.seconds_per_sample:
            raise ConfigError("a cost model needs seconds per sample for at least one "
                              "architecture, e.g. {tiny_cnn: 0.0002}")
        table = {str(k): _positive(v, f"cost of {k!r} (seconds per sample)")
                 for k, v in self.seconds_per_sample.items()}
        object.__setattr__(self, "seconds_per_sample", table)
        object.__setattr__(self, "poc_throughput",
                           _positive(self.poc_throughput, f"cost model {POC_KEY}"))

    # ------------------------------------------------------------------ lookups
    def base_cost(self, arch: str) -> float:
        """Seconds per sample of ``arch`` at :data:`REFERENCE_SIDE` px (see the module rules)."""
        table = self.seconds_per_sample
        if arch in table:
            return table[arch]
        name, _, suffix = arch.partition(":")
        if name == "tiny_cnn" and "tiny_cnn" in table and (not suffix or suffix.isdigit()):
            width = int(suffix) if suffix else _TINY_WIDTH
            macs = (width * width + width) / (_TINY_WIDTH * _TINY_WIDTH + _TINY_WIDTH)
            return table["tiny_cnn"] * (1.0 + macs) / 2.0
        raise ConfigError(
            f"the cost model has no per-sample cost for architecture {arch!r} (it prices "
            f"{', '.join(sorted(table))}): add it, e.g. runtime.cost_model: {{{arch}: 0.001}}, "
            "use runtime.cost_model: calibrate, or run with runtime.clock: measured")

    def per_sample(self, arch: str, height: int = REFERENCE_SIDE,
                   width: int = REFERENCE_SIDE) -> float:
        """Seconds per training sample of ``arch`` at ``height × width`` px on the reference
        machine: its ``"<arch>@<side>"`` entry, else the 28 px cost × :func:`size_factor`."""
        if height == width and height != REFERENCE_SIDE:
            exact = self.seconds_per_sample.get(cost_key(arch, height))
            if exact is not None:
                return exact
        return self.base_cost(arch) * size_factor(height, width)

    def slowdown(self, target_throughput: float | None) -> float:
        """Hardware slowdown of a tier: reference PoC throughput / the tier's target (1 without
        a target: the reference machine itself)."""
        if target_throughput is None:
            return 1.0
        return self.poc_throughput / _positive(target_throughput, "target_throughput")

    def poc_throughput_of(self, target_throughput: float | None) -> float:
        """The PoC throughput a profile reports: its target, else the reference machine's."""
        return self.poc_throughput if target_throughput is None else float(target_throughput)

    def training_seconds(self, arch: str, samples: int, target_throughput: float | None, *,
                         height: int = REFERENCE_SIDE, width: int = REFERENCE_SIDE) -> float:
        """Simulated seconds of training on ``samples`` samples on hardware of the target."""
        return samples * self.per_sample(arch, height, width) * self.slowdown(target_throughput)

    # ------------------------------------------------------------------ records
    def table(self) -> dict[str, float]:
        """The flat table (``runtime.cost_model`` form): architectures and :data:`POC_KEY`."""
        return {**dict(sorted(self.seconds_per_sample.items())), POC_KEY: self.poc_throughput}

    def record(self) -> dict[str, Any]:
        """What a run manifest records: source, reference side, PoC throughput, table, machine."""
        out: dict[str, Any] = {
            "source": self.source,
            "reference_side": REFERENCE_SIDE,
            "poc_throughput": self.poc_throughput,
            "seconds_per_sample": dict(sorted(self.seconds_per_sample.items())),
        }
        if self.machine:
            out["machine"] = dict(self.machine)
        return out

    @classmethod
    def from_table(cls, table: Mapping[str, Any], base: CostModel | None = None,
                   source: str = "config") -> CostModel:
        """A cost model from a flat table (architectures and optional :data:`POC_KEY`), its
        entries laid over ``base``'s."""
        if not isinstance(table, Mapping):
            raise ConfigError(f"a cost table must map architecture names to seconds per "
                              f"sample, got {type(table).__name__}")
        costs = dict(base.seconds_per_sample) if base is not None else {}
        poc = base.poc_throughput if base is not None else None
        for key, value in table.items():
            if key == POC_KEY:
                poc = value
            else:
                costs[str(key)] = value
        if poc is None:
            raise ConfigError(f"a cost table without a base model needs {POC_KEY} (the "
                              "reference machine's PoC samples/s)")
        return cls(costs, poc, source)
