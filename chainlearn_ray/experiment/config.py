"""Run configuration: frozen dataclasses, YAML loading and validation (the home of defaults)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Final, TypeVar

from chainlearn_ray.errors import ChainlearnError, ConfigError
from chainlearn_ray.experiment.privacy_config import check_dp
from chainlearn_ray.learning.cost import POC_KEY, CostModel
from chainlearn_ray.learning.hardware import CLOCKS, THROTTLE_MODES
from chainlearn_ray.learning.privacy import DPSettings
from chainlearn_ray.protocol.tiers import MEDIUM_BELOW, TIERS, WEAK_BELOW, Tier
from chainlearn_ray.protocol.weights import WEIGHT_SCORES

T = TypeVar("T")

#: Named non-IID levels (Dirichlet concentration α); SPEC.md §2.
#: Default PoC tier thresholds (samples/s): below 100 Weak, below 300 Medium.
#: Seeds of the published study.
PAPER_SEEDS: tuple[int, ...] = (42, 142, 242, 342, 442)
#: Per-round attendance of the Ours-Dropout scenario.
CHAIN_BACKENDS = ("embedded", "anvil", "rpc")
SPLIT_MODES = ("official", "reference_halved")
DEVICES = ("auto", "cpu", "cuda")

#: The virtual clock's reference table: seconds to train on one 28 px sample (forward, backward
#: and Adam step at batch 32, one torch thread, CPU time) on the reference machine, a 2-core
#: Intel Xeon VM with torch 2.14: the best of five runs of ``python
#: benchmarks/bench_cost_model.py`` (the machine was shared; single runs varied by up to 1.5x).
#: Other sizes scale by pixel count; ``tiny_cnn:<w>`` is ``tiny_cnn × (1 + (w² + w) / 272) / 2``
#: (see :mod:`chainlearn_ray.learning.cost`).
REFERENCE_SECONDS_PER_SAMPLE: dict[str, float] = {
    "tiny_cnn": 2.5e-4,
    "mobilenet_v3_small": 1.9e-3,
    "efficientnet_b0": 6.5e-3,
    "resnet50": 1.9e-2,
}
#: PoC throughput of the same reference machine (samples/s; K 50, B 16, one thread, CPU time;
#: the best of the same runs). A tier's hardware slowdown on the cost-model clock is this over
#: its ``target_throughput``.
REFERENCE_POC_THROUGHPUT: float = 5000.0


@dataclass(frozen=True)
class TierConfig:
    """What a hospital of one tier runs on and trains.

    Attributes
    ----------
    arch:
        Model architecture (``chainlearn_ray.learning.models`` registry name, e.g. ``"resnet50"`` or
        ``"tiny_cnn:16"``).
    num_cpus, num_gpus:
        Ray resources of each hospital actor of this tier (``num_gpus`` may be a fraction 1/k).
    resources:
        Extra Ray custom resources per actor, e.g. ``{"tier_strong": 1}``.
    target_throughput:
        Proof-of-Capacity samples/s the simulated hardware delivers (``None``: the reference
        machine's speed on the cost clock, this machine's on the measured clock). Its ratio to
        the reference (or this machine's) PoC throughput slows training to match.
    gpu_memory_gb:
        GPU memory budget of one hospital (checked against ``runtime.gpu_memory_gb``).
    threads:
        torch threads of the actor process.
    attendance:
        Probability that a hospital of this tier attends a round.
    dp:
        Differential privacy of this tier's hospitals, replacing ``train.dp`` (ε ``inf``: none).
    """

    arch: str
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    resources: Mapping[str, float] = field(default_factory=dict)
    target_throughput: float | None = None
    gpu_memory_gb: float | None = None
    threads: int = 1
    attendance: float = 1.0
    dp: DPSettings | None = None


DEFAULT_TIERS: dict[str, TierConfig] = {
    "weak": TierConfig(arch="mobilenet_v3_small", target_throughput=50.0),
    "medium": TierConfig(arch="efficientnet_b0", target_throughput=200.0),
    "strong": TierConfig(arch="resnet50", target_throughput=600.0),
}


@dataclass(frozen=True)
class DataConfig:
    """Dataset, image size, split mode and the non-IID partition."""

    dataset: str = "pneumoniamnist"
    data_dir: str | None = None
    size: int = 28
    resize: int | None = None
    split: str = "official"
    alpha: float = 1.0
    min_shard: int = 32
    partition_strategy: str = "auto"
    download: bool = True
    normalize: str = "dataset"
    rgb: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """Local training budget and optimiser (SPEC.md §2 reference defaults, fewer rounds).

    ``dp``: DP-SGD target ``{epsilon, delta, max_grad_norm}`` of every hospital (defaults in
    :mod:`~chainlearn_ray.experiment.privacy_config`); ``None``: no DP.
    """

    rounds: int = 3
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    pretrained: str | None = None
    dp: DPSettings | None = None


@dataclass(frozen=True)
class PoCConfig:
    """Proof-of-Capacity benchmark and tier thresholds (samples/s)."""

    steps: int = 50
    warmup: int = 5
    batch_size: int = 16
    weak_below: float = WEAK_BELOW
    medium_below: float = MEDIUM_BELOW


@dataclass(frozen=True)
class ChainConfig:
    """Which chain the coordinator talks to."""

    backend: str = "embedded"
    rpc_url: str | None = None
    contract: str | None = None
    #: What the weight formula's score term holds: ``"confidence"`` (the seed protocol) or
    #: ``"balanced_accuracy"`` (validation balanced accuracy; see ``protocol.weights.WeightScore``).
    weight_score: str = "confidence"
    #: ``"seed"`` (the published protocol) or ``"trust"`` (stakes, verifier-timed PoC,
    #: commit-reveal, audits; see :mod:`chainlearn_ray.experiment.trust_settings`).
    mode: str = "seed"
    stake_wei: int = 10**15
    reward_per_round_wei: int = 3 * 10**14
    audit_tolerance: int = 1000
    slash_fraction: int = 5000
    audit_fraction: float = 0.5
    audit: bool = True
    verifier_timed: bool = True
    spot_checks: int | None = None


@dataclass(frozen=True)
class RuntimeConfig:
    """Ray placement, device, time limits and the simulated clock.

    Attributes
    ----------
    clock:
        Where simulated time comes from. ``"cost"``: a cost model of the work done (samples ×
        seconds per sample of the architecture × the tier's slowdown), the same on any machine
        and under any load. ``"measured"``: measured compute time scaled by a slowdown
        calibrated on this machine (for studies of real contention).
    cost_model:
        The cost-model clock's table: ``"builtin"`` (:data:`REFERENCE_SECONDS_PER_SAMPLE`,
        :data:`REFERENCE_POC_THROUGHPUT`), ``"calibrate"`` (measured once on this machine and
        cached) or a mapping ``{arch: seconds per 28 px sample, ..., poc_throughput: samples/s}``
        whose entries replace the built-in ones.
    throttle:
        ``"virtual"`` (nothing sleeps) or ``"sleep"`` (hospitals really sleep so their wall time
        follows the clock).
    deadline:
        Simulated seconds a hospital's round may take before it counts as late.
    """

    address: str | None = None
    device: str = "cpu"
    round_timeout: float | None = None
    deadline: float | None = None
    throttle: str = "virtual"
    clock: str = "cost"
    cost_model: str | Mapping[str, float] = "builtin"
    coordinator_cpus: float = 0.5
    fit_cpus: bool = True
    gpu_memory_gb: float | None = None
    hospitals_per_actor: int | str = "auto"
    faults: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunConfig:
    """Everything one federated run needs; build it with :func:`load_config`."""

    name: str = "run"
    seed: int = 42
    hospitals: Mapping[str, int] = field(
        default_factory=lambda: {"weak": 1, "medium": 1, "strong": 1}
    )
    tiers: Mapping[str, TierConfig] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    poc: PoCConfig = field(default_factory=PoCConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    @property
    def n_hospitals(self) -> int:
        """Total number of hospitals."""
        return sum(self.hospitals.values())

    def hospital_tiers(self) -> list[Tier]:
        """The configured hardware tier of each hospital, in id order (weak first)."""
        out: list[Tier] = []
        for tier in TIERS:
            out.extend([tier] * int(self.hospitals.get(tier.label, 0)))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON friendly)."""
        return _to_plain(self)


def _to_plain(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def replace(cfg: RunConfig, **sections: Any) -> RunConfig:
    """A validated copy of ``cfg`` with whole fields or sections replaced."""
    new = dataclasses.replace(cfg, **sections)
    validate(new)
    return new


def builtin_cost_model() -> CostModel:
    """The reference table of the cost-model clock (:data:`REFERENCE_SECONDS_PER_SAMPLE`)."""
    return CostModel(REFERENCE_SECONDS_PER_SAMPLE, REFERENCE_POC_THROUGHPUT, "builtin")


def configured_cost_model(cost: Any) -> CostModel:
    """The cost model of a ``builtin`` or mapping ``runtime.cost_model`` (``calibrate``: see
    :func:`chainlearn_ray.experiment.clock.cost_model_of`)."""
    if isinstance(cost, str) and cost == "builtin":
        return builtin_cost_model()
    if isinstance(cost, Mapping):
        try:
            return CostModel.from_table(cost, builtin_cost_model(), "config")
        except ConfigError as exc:
            raise ConfigError(f"runtime.cost_model: {exc}") from None
    raise ConfigError(
        f"runtime.cost_model must be builtin (the reference table, the same on every machine), "
        f"calibrate (measure this machine once and cache it) or a mapping of architecture -> "
        f"seconds per 28 px training sample (optionally {POC_KEY}: samples/s), got {cost!r}")


_KINDS: Final = {"int": "a whole number", "float": "a number", "str": "text",
                 "bool": "true or false"}


def _accepts(value: Any, kind: str) -> bool:
    """Whether ``value`` is of the annotation part ``kind`` (int, float, str, bool, None)."""
    if kind == "None":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    return True  # containers and other types are checked where they are used


def check_types(section: Any, where: str) -> None:
    """Raise :class:`ConfigError` for a field whose value is not of its annotated type (YAML's
    ``rounds: "three"`` or ``rounds: 2.7``), naming the setting and what it takes."""
    for f in fields(section):
        value = getattr(section, f.name)
        if is_dataclass(value):
            check_types(value, f"{where}{f.name}.")
            continue
        kinds = [k.strip() for k in str(f.type).split("|")]
        unchecked = any(k not in (*_KINDS, "None") for k in kinds)
        if unchecked or any(_accepts(value, k) for k in kinds):
            continue
        wanted = " or ".join(_KINDS.get(k, "null") for k in kinds)
        raise ConfigError(f"{where}{f.name} must be {wanted}, got {value!r}")


def check_arch(arch: str, where: str) -> None:
    """Raise :class:`ConfigError` unless ``arch`` names a known architecture."""
    from chainlearn_ray.learning.models import parse_arch

    try:
        parse_arch(arch)
    except ChainlearnError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def validate(cfg: RunConfig) -> None:
    """Raise :class:`ConfigError` on any invalid or inconsistent value."""
    check_types(cfg, "")
    for label, tier_cfg in cfg.tiers.items():
        check_types(tier_cfg, f"tiers.{label}.")
        check_arch(tier_cfg.arch, f"tiers.{label}.arch")
    if cfg.n_hospitals < 1:
        raise ConfigError("at least one hospital is needed (e.g. --hospitals 3)")
    if any(v < 0 for v in cfg.hospitals.values()):
        raise ConfigError("hospital counts per tier cannot be negative")
    for label, tier in cfg.tiers.items():
        if tier.num_cpus < 0 or tier.num_gpus < 0:
            raise ConfigError(f"tiers.{label}: num_cpus and num_gpus cannot be negative")
        if tier.num_gpus > 1 and tier.num_gpus != int(tier.num_gpus):
            raise ConfigError(f"tiers.{label}.num_gpus above 1 must be a whole number")
        if tier.target_throughput is not None and tier.target_throughput <= 0:
            raise ConfigError(f"tiers.{label}.target_throughput must be positive or null")
        if not 0.0 <= tier.attendance <= 1.0:
            raise ConfigError(f"tiers.{label}.attendance must be within [0, 1]")
        if tier.threads < 1:
            raise ConfigError(f"tiers.{label}.threads must be at least 1")
    d, t, p = cfg.data, cfg.train, cfg.poc
    if d.size not in (28, 64, 128, 224):
        raise ConfigError(f"data.size must be 28, 64, 128 or 224 (got {d.size})")
    if d.split not in SPLIT_MODES:
        raise ConfigError(f"data.split must be one of {SPLIT_MODES}, got {d.split!r}")
    if d.resize is not None and d.resize < 8:
        raise ConfigError("data.resize must be an image side in pixels (e.g. 224) or null")
    if d.partition_strategy not in ("resample", "top_up", "auto"):
        raise ConfigError("data.partition_strategy must be resample, top_up or auto")
    if d.min_shard < 1:
        raise ConfigError("data.min_shard must be at least 1")
    if d.normalize not in ("dataset", "imagenet", "none"):
        raise ConfigError("data.normalize must be dataset, imagenet or none")
    if t.rounds < 1 or t.epochs < 1 or t.batch_size < 1 or t.lr <= 0:
        raise ConfigError("train.rounds, epochs and batch_size must be >= 1 and lr > 0")
    if p.steps < 1 or p.warmup < 0 or p.batch_size < 1:
        raise ConfigError("poc.steps and poc.batch_size must be >= 1, poc.warmup >= 0")
    if not 0 < p.weak_below <= p.medium_below:
        raise ConfigError("poc thresholds need 0 < weak_below <= medium_below")
    if cfg.chain.backend not in CHAIN_BACKENDS:
        raise ConfigError(f"chain.backend must be one of {CHAIN_BACKENDS}")
    if cfg.chain.weight_score not in WEIGHT_SCORES:
        raise ConfigError(f"chain.weight_score must be one of {', '.join(WEIGHT_SCORES)}, got "
                          f"{cfg.chain.weight_score!r}")
    if cfg.chain.backend == "rpc" and not cfg.chain.rpc_url:
        raise ConfigError("chain backend rpc needs --rpc-url (e.g. http://127.0.0.1:8545)")
    from chainlearn_ray.experiment.trust_settings import validate_trust

    validate_trust(cfg.chain)
    if cfg.chain.mode == "trust" and cfg.chain.weight_score != "confidence":
        raise ConfigError("chain.weight_score balanced_accuracy runs in seed mode only (trust "
                          "mode's audit recomputes confidence): drop one of the two settings")
    r = cfg.runtime
    if r.device not in DEVICES:
        raise ConfigError(f"runtime.device must be one of {DEVICES}")
    if r.throttle not in THROTTLE_MODES:
        raise ConfigError(f"runtime.throttle must be one of {THROTTLE_MODES}")
    if r.clock not in CLOCKS:
        raise ConfigError(
            f"runtime.clock must be cost (simulated time from a per-sample cost model: the same "
            f"on every machine, e.g. --clock cost) or measured (scaled measured compute time, "
            f"for studies of real contention), got {r.clock!r}")
    if not (isinstance(r.cost_model, str) and r.cost_model == "calibrate"):
        cost = configured_cost_model(r.cost_model)
        if r.clock == "cost":
            for label, tier in cfg.tiers.items():
                try:
                    cost.base_cost(tier.arch)
                except ConfigError as exc:
                    raise ConfigError(f"tiers.{label}.arch: {exc}") from None
    if r.hospitals_per_actor != "auto" and not (
        isinstance(r.hospitals_per_actor, int) and r.hospitals_per_actor >= 1
    ):
        raise ConfigError(
            f"runtime.hospitals_per_actor must be 'auto' or a whole number >= 1, got "
            f"{r.hospitals_per_actor!r}"
        )
    for fault in r.faults:
        _target, at, rest = fault.partition("@")
        when, colon, kind = rest.partition(":")
        if not (at and colon and when.isdigit() and kind in ("crash", "raise", "hang")):
            raise ConfigError(f"fault {fault!r} must look like h01@2:crash (crash, raise or hang)")
    for name in ("round_timeout", "deadline"):
        value = getattr(r, name)
        if value is not None and value <= 0:
            raise ConfigError(f"runtime.{name} must be positive (seconds) or null")
    check_dp(cfg)
