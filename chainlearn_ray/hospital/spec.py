"""Plain data a simulated hospital is built from and reports: spec, shard, splits, behaviour,
round report, and its deterministic key and seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from eth_hash.auto import keccak

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.learning.cost import CostModel
from chainlearn_ray.learning.privacy import DPSettings
from chainlearn_ray.protocol.tiers import Tier


@dataclass(frozen=True)
class HospitalSpec:
    """Everything that identifies and configures one hospital (plain data, crosses Ray).

    Attributes
    ----------
    hospital_id:
        Stable id used in results (``"h00"``, ``"h01"``, ...).
    index:
        Position of the hospital in the run (selects its shard and derives its key).
    hardware_tier:
        Tier of the simulated hardware (selects the hardware profile).
    arch_by_tier:
        Model architecture for each tier label; the model follows the tier the PoC measured,
        because the contract only accepts the model type of the registered tier.
    target_throughput, threads, throttle, device:
        The hardware profile (see :class:`chainlearn_ray.learning.hardware.HardwareProfile`).
    cost_model:
        Prices the hospital's simulated time (the cost-model clock); ``None``: the measured
        clock, calibrated by the hospital's first PoC.
    dp, dp_epochs:
        Its DP-SGD target (``None``: no DP) and the epochs of the whole run its noise is
        calibrated over.
    private_models:
        Models are made DP-compatible (Opacus' fix: BatchNorm → GroupNorm), as in every
        hospital of a run where any trains privately.
    """

    hospital_id: str
    index: int
    hardware_tier: Tier
    arch_by_tier: dict[str, str]
    seed: int
    n_classes: int
    in_channels: int
    target_throughput: float | None = None
    threads: int = 1
    throttle: str = "virtual"
    cost_model: CostModel | None = None
    device: str = "cpu"
    batch_size: int = 32
    lr: float = 1e-3
    pretrained: str | None = None
    checkpoint_dir: str | None = None
    faults: tuple[str, ...] = ()
    dp: DPSettings | None = None
    dp_epochs: int = 0
    private_models: bool = False


@dataclass(frozen=True)
class TrainShard:
    """A hospital's own training images (uint8, MedMNIST layout) and labels."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class EvalSplits:
    """The splits every hospital evaluates on (metric split and test split) and the transform."""

    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    size: int = 28
    rgb: bool = False
    normalize: str = "dataset"

    def to_tensor(self, images: np.ndarray) -> Any:
        """``images`` through this run's transform (a copy: object-store arrays are read-only)."""
        from chainlearn_ray.data.transforms import to_tensor

        return to_tensor(np.array(images), size=self.size, rgb=self.rgb,
                         normalize=self.normalize)  # type: ignore[arg-type]

    def inputs(self) -> tuple[Any, Any]:
        """Metric-split and test-split input tensors, built once per process and shared by
        every hospital that holds this object (hospitals packed into one actor)."""
        cached = self.__dict__.get("_inputs")
        if cached is None:
            cached = (self.to_tensor(self.x_val), self.to_tensor(self.x_test))
            object.__setattr__(self, "_inputs", cached)
        return cached


@dataclass(frozen=True)
class Behaviour:
    """How a hospital behaves in one study variant; the defaults are an honest hospital.

    Attributes
    ----------
    arch_by_tier:
        Replaces the spec's tier -> architecture map (the No PoC ablation trains one family).
    claimed_tier:
        Tier it claims at registration, with a benchmark hash made for that claim (``None``:
        the tier its benchmark measured). The coordinator may correct the claim.
    data_fraction:
        Fraction of its shard it trains on (a seeded subset; the spoofer's 10 %).
    total_epochs:
        Epochs it trains over the whole run (``None``: what each round asks); once spent it
        keeps submitting its model untrained (the lazy hospital).
    reported:
        ``(confidence, ece)`` fixed-point values it reports in its signed submission instead
        of the measured ones (inflated metrics).
    reported_throughput:
        Samples/s it reports for its PoC, with a benchmark hash made for that figure, instead
        of what its hardware measured (capacity spoofing by throughput).
    poc_delay:
        Seconds it holds back its answer to a verifier's challenge (it can look slower).
    copies:
        Hospital id whose submission it copies instead of training (the free-rider).
    """

    arch_by_tier: dict[str, str] | None = None
    claimed_tier: str | None = None
    data_fraction: float = 1.0
    total_epochs: int | None = None
    reported: tuple[int, int] | None = None
    reported_throughput: float | None = None
    poc_delay: float = 0.0
    copies: str | None = None

    def __post_init__(self) -> None:
        if self.reported_throughput is not None and not self.reported_throughput > 0:
            raise ConfigError(f"reported_throughput must be > 0, got {self.reported_throughput}")
        if not self.poc_delay >= 0:
            raise ConfigError(f"poc_delay must be >= 0 seconds, got {self.poc_delay}")
        if self.claimed_tier is not None:
            Tier.parse(self.claimed_tier)
        if not 0.0 < self.data_fraction <= 1.0:
            raise ConfigError(f"data_fraction must be in (0, 1], got {self.data_fraction}")
        if self.total_epochs is not None and self.total_epochs < 0:
            raise ConfigError(f"total_epochs must be >= 0, got {self.total_epochs}")
        if self.reported is not None and not all(0 <= int(v) <= 10_000 for v in self.reported):
            raise ConfigError(f"reported metrics must lie in [0, 10000], got {self.reported}")

    @property
    def honest(self) -> bool:
        """Nothing differs from an honest hospital."""
        return self == Behaviour()


def shard_positions(n: int, fraction: float, seed: int, index: int) -> np.ndarray:
    """Positions (into a shard of ``n`` samples) a hospital trains on under ``fraction``.

    The whole shard for 1.0, else a seeded subset of ``max(1, floor(fraction * n))`` positions,
    sorted (a capacity spoofer's smaller training set); the driver uses the same function to
    report the shard's class counts.
    """
    positions = np.arange(int(n))
    if fraction >= 1.0:
        return positions
    keep = max(1, math.floor(fraction * len(positions)))
    rng = np.random.default_rng([int(seed), int(index), 0x5900F])
    return np.sort(rng.choice(positions, size=min(keep, len(positions)), replace=False))


@dataclass(frozen=True)
class RoundReport:
    """What a hospital returns after training in one round (plain data)."""

    hospital_id: str
    round: int
    model_hash: bytes
    confidence_fixed: int
    ece_fixed: int
    confidence: float
    ece: float
    val_accuracy: float
    test_probs: np.ndarray
    samples: int
    wall_seconds: float
    compute_seconds: float
    simulated_seconds: float
    final_loss: float
    extra: dict[str, Any] = field(default_factory=dict)
    #: Validation balanced accuracy in fixed point (the score of a ``balanced_accuracy``
    #: deployment; a behaviour's ``reported`` score replaces it as it replaces confidence).
    balanced_accuracy_fixed: int = 0


def derive_private_key(seed: int, index: int) -> bytes:
    """Deterministic secp256k1 key of hospital ``index`` in a run with ``seed``.

    Derived inside the hospital process, so the key never crosses Ray.
    """
    material = int(seed).to_bytes(8, "big") + index.to_bytes(4, "big")
    return keccak(b"chainlearn-hospital-key" + material)


def hospital_seed(seed: int, index: int, round_: int) -> int:
    """Training seed of one hospital in one round (distinct, reproducible)."""
    material = int(seed).to_bytes(8, "big") + index.to_bytes(4, "big") + round_.to_bytes(4, "big")
    return int.from_bytes(keccak(material)[:4], "big")
