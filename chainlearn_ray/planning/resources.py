"""Plan Ray actor resources (CPUs, GPU fractions, custom keys) before any actor is created."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from chainlearn_ray.errors import ConfigError

logger = logging.getLogger(__name__)

UNIT = 10_000
"""Ray accounts resources in fixed point: fractional quantities are multiples of 1 / UNIT."""

EPS = 1e-6


def to_units(value: float) -> int:
    """Quantity in Ray's fixed-point units, rounded down (tolerating float noise)."""
    return math.floor(value * UNIT + EPS)


def from_units(units: int) -> float:
    """Quantity from fixed-point units."""
    return float(units // UNIT) if units % UNIT == 0 else units / UNIT


def fmt_quantity(value: float) -> str:
    """Compact number for messages and tables."""
    return f"{value:.4f}".rstrip("0").rstrip(".") or "0"


def check_quantity(what: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{what} is {value!r}: it must be a finite number >= 0")
    if value > 0 and to_units(value) == 0:
        raise ConfigError(f"{what} is {value!r}: Ray's smallest quantity is {1 / UNIT}")


@dataclass(frozen=True)
class TierResources:
    """What one hospital of a tier asks Ray for.

    Parameters
    ----------
    num_cpus:
        CPU cores per hospital (fractions allowed).
    num_gpus:
        GPUs per hospital: a fraction in ``[0, 1]`` (``1/k`` lets ``k`` hospitals share one
        GPU) or a whole number of GPUs.
    gpu_memory_gb:
        GPU memory one hospital may use, checked against the per-GPU memory; ``None`` if unknown.
    custom:
        Custom Ray resources per hospital, e.g. ``{"tier_strong": 1}`` to pin hospitals to
        nodes that advertise that resource.
    """

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    gpu_memory_gb: float | None = None
    custom: Mapping[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_quantity("num_cpus", self.num_cpus)
        check_quantity("num_gpus", self.num_gpus)
        if self.num_gpus > 1 and not float(self.num_gpus).is_integer():
            raise ConfigError(
                f"num_gpus is {self.num_gpus}: use a fraction in (0, 1] (0.25 lets 4 hospitals "
                "share a GPU) or a whole number of GPUs"
            )
        if self.gpu_memory_gb is not None and not (
            math.isfinite(self.gpu_memory_gb) and self.gpu_memory_gb > 0
        ):
            raise ConfigError(f"gpu_memory_gb is {self.gpu_memory_gb!r}: use a positive number")
        custom: dict[str, float] = {}
        for key, amount in dict(self.custom).items():
            if not isinstance(key, str) or not key or key in ("CPU", "GPU"):
                raise ConfigError(
                    f"custom resource name {key!r} is not allowed: use num_cpus / num_gpus for "
                    "CPU and GPU, and a non-empty name for anything else"
                )
            check_quantity(f"custom resource {key!r}", float(amount))
            custom[key] = float(amount)
        object.__setattr__(self, "custom", MappingProxyType(custom))


@dataclass(frozen=True)
class TierPlan:
    """Final resources of one tier's hospitals (after device choice and CPU fitting)."""

    tier: str
    count: int
    num_cpus: float
    num_gpus: float
    custom: Mapping[str, float]
    requested_cpus: float
    requested_gpus: float
    gpu_memory_gb: float | None

    @property
    def device(self) -> str:
        """``"cuda"`` when the hospital holds a GPU share, else ``"cpu"``."""
        return "cuda" if self.num_gpus > 0 else "cpu"

    @property
    def hospitals_per_gpu(self) -> int | None:
        """How many hospitals of this tier fit on one GPU (``None`` when not fractional)."""
        units = to_units(self.num_gpus)
        return UNIT // units if 0 < units < UNIT else None


@dataclass(frozen=True)
class GpuGroup:
    """One GPU (or a set of GPUs held by one hospital) of the expected packing."""

    gpus: int
    members: Mapping[str, int]
    used: float
    memory_gb: float | None

    @property
    def tiers(self) -> tuple[str, ...]:
        """Tiers whose hospitals share this GPU."""
        return tuple(self.members)

    def describe(self) -> str:
        """``"strong×2 + weak×2"`` style summary of the members."""
        return " + ".join(f"{tier}×{n}" for tier, n in self.members.items())


@dataclass(frozen=True)
class ResourcePlan:
    """Validated resources of every actor of one simulation (from
    :func:`chainlearn_ray.planning.planner.plan_resources`)."""

    tiers: Mapping[str, TierPlan]
    coordinator_cpus: float
    cpu_scale: float
    gpu_groups: tuple[GpuGroup, ...]
    concurrency: int
    warnings: tuple[str, ...]
    cluster_cpus: float
    cluster_gpus: int
    device: str
    gpu_memory_gb: float | None
    #: Tier label -> hospitals hosted by each actor process of that tier (1 when not packed).
    per_actor: Mapping[str, int] = field(default_factory=dict)
    #: When > 0: CPU-only hospitals of every tier share this many processes (mixed packing),
    #: each asking for ``mixed_cpus`` CPUs; ``tiers`` then describes one hospital each.
    mixed_processes: int = 0
    mixed_cpus: float = 0.0
    #: Hospitals each mixed process trains at once, on threads (1: one after another).
    mixed_threads: int = 1

    @property
    def hospitals(self) -> int:
        """Total number of hospital actors (processes)."""
        if self.mixed_processes:
            return self.mixed_processes
        return sum(t.count for t in self.tiers.values())

    @property
    def gpus_used(self) -> int:
        """Physical GPUs the expected packing occupies."""
        return sum(g.gpus for g in self.gpu_groups)

    @property
    def shared_gpu_tiers(self) -> tuple[tuple[str, ...], ...]:
        """Distinct sets of two or more tiers that share a GPU in the expected packing."""
        seen = dict.fromkeys(g.tiers for g in self.gpu_groups if len(g.tiers) > 1)
        return tuple(seen)

    def ray_options(self, tier: str) -> dict[str, Any]:
        """Keyword arguments for ``HospitalActor.options(...)`` of one tier's hospitals."""
        if tier not in self.tiers:
            raise ConfigError(f"no resources planned for tier {tier!r}: known {list(self.tiers)}")
        plan = self.tiers[tier]
        return {
            "num_cpus": plan.num_cpus,
            "num_gpus": plan.num_gpus,
            "resources": dict(plan.custom),
        }

    def coordinator_options(self) -> dict[str, Any]:
        """Keyword arguments for ``CoordinatorActor.options(...)``."""
        return {"num_cpus": self.coordinator_cpus, "num_gpus": 0}

    def bundles(self) -> list[dict[str, float]]:
        """One resource bundle per actor (coordinator first), e.g. for a placement group."""
        out: list[dict[str, float]] = [{"CPU": self.coordinator_cpus}]
        if self.mixed_processes:
            return out + [{"CPU": self.mixed_cpus} for _ in range(self.mixed_processes)]
        for plan in self.tiers.values():
            bundle = {"CPU": plan.num_cpus, "GPU": plan.num_gpus, **plan.custom}
            bundle = {k: v for k, v in bundle.items() if v > 0}
            out.extend(dict(bundle) for _ in range(plan.count))
        return [b if b else {"CPU": 1 / UNIT} for b in out]

    def total_demand(self) -> dict[str, float]:
        """Sum of every actor's demand per resource (what must fit the cluster)."""
        units: Counter[str] = Counter({"CPU": to_units(self.coordinator_cpus)})
        if self.mixed_processes:
            units["CPU"] += self.mixed_processes * to_units(self.mixed_cpus)
            return {k: from_units(v) for k, v in units.items()}
        for plan in self.tiers.values():
            units["CPU"] += plan.count * to_units(plan.num_cpus)
            units["GPU"] += plan.count * to_units(plan.num_gpus)
            for key, amount in plan.custom.items():
                units[key] += plan.count * to_units(amount)
        return {k: from_units(v) for k, v in units.items()}

    def render(self) -> str:
        """Human-readable plan: tier table, GPU sharing, concurrency and warnings."""
        head = ("tier", "hospitals", "CPUs each", "GPU each", "per GPU", "GPU GB each", "custom")
        rows = [head]
        for p in self.tiers.values():
            custom = ", ".join(f"{k}={fmt_quantity(v)}" for k, v in p.custom.items()) or "-"
            per_gpu = p.hospitals_per_gpu
            budget = fmt_quantity(p.gpu_memory_gb) if p.gpu_memory_gb and p.num_gpus else "-"
            rows.append((p.tier, str(p.count), fmt_quantity(p.num_cpus), fmt_quantity(p.num_gpus),
                         str(per_gpu) if per_gpu else "-", budget, custom))
        rows.append(("coordinator", "1", fmt_quantity(self.coordinator_cpus), "0", "-", "-", "-"))
        packed = {t: k for t, k in self.per_actor.items() if k > 1}
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        hospitals = sum(t.count for t in self.tiers.values())
        actors = (f"{hospitals} hospitals in {self.hospitals} actor "
                  f"process{'es' if self.hospitals > 1 else ''}"
                  if self.mixed_processes else f"{self.hospitals} hospital actors")
        lines = [
            f"Resource plan: {actors} + 1 coordinator on a cluster with "
            f"{fmt_quantity(self.cluster_cpus)} CPUs and {self.cluster_gpus} GPUs "
            f"(device {self.device})"
        ]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                  for r in rows]
        if self.mixed_processes:
            procs = ("1 actor process" if self.mixed_processes == 1
                     else f"{self.mixed_processes} actor processes")
            threads = (f", each training {self.mixed_threads} at once on threads"
                       if self.mixed_threads > 1 else "")
            lines.append(f"Hospitals share {procs} of {fmt_quantity(self.mixed_cpus)} CPUs each"
                         f"{threads} (balanced by training cost; CPUs above: each hospital's "
                         "share)")
        elif packed:
            lines.append("Hospitals per actor process (resources above are per process): "
                         + ", ".join(f"{t} {k}" for t, k in packed.items()))
        if self.cpu_scale < 1:
            lines.append(f"CPU time-sharing: every num_cpus scaled by {self.cpu_scale:.4f}")
        if self.gpu_groups:
            layout = Counter((g.gpus, g.describe(), g.memory_gb) for g in self.gpu_groups)
            lines.append(f"GPUs used: {self.gpus_used} of {self.cluster_gpus}")
            for (gpus, members, mem), n in layout.items():
                size = f"{gpus} GPUs" if gpus > 1 else "GPU"
                extra = f", {fmt_quantity(mem)} GB" if mem is not None else ""
                lines.append(f"  {n} × {size}: {members}{extra}")
            for tiers in self.shared_gpu_tiers:
                lines.append(f"  shared GPUs: {' + '.join(tiers)}")
        else:
            lines.append(f"GPUs used: 0 of {self.cluster_gpus} (all hospitals on CPU)")
        lines.append(f"Hospitals training at once: {self.concurrency} of "
                     f"{hospitals if self.mixed_processes else self.hospitals}")
        if self.warnings:
            lines.append("Warnings:")
            lines.extend(f"  - {w}" for w in self.warnings)
        return "\n".join(lines)


def auto_packing(counts: Mapping[str, int], cpus: float) -> dict[str, int]:
    """Hospitals per actor process, per tier, for ``hospitals_per_actor: auto``.

    One process per hospital while the cluster has a CPU for each; beyond that, hospitals of a
    tier share processes so that there are about as many processes as CPUs (at least one per
    tier). Every hospital keeps its own key, shard, model and profile; what is saved is one
    Python + torch runtime per extra process, which on a small machine is most of the cost.
    """
    total = sum(int(n) for n in counts.values())
    slots = max(1, int(cpus))
    if total <= slots:
        return {t: 1 for t in counts}
    out: dict[str, int] = {}
    for tier, n in counts.items():
        n = int(n)
        if n <= 0:
            out[tier] = 1
            continue
        procs = min(n, max(1, round(slots * n / total)))
        out[tier] = -(-n // procs)
    return out


#: Approximate multiply-accumulates per 28 px sample (millions), for balancing packed actors.
_ARCH_MACS: dict[str, float] = {
    "mobilenet_v3_small": 0.9, "efficientnet_b0": 6.1, "resnet50": 64.0,
}


#: Architectures whose training draws from torch's global generator (dropout, stochastic
#: depth). A test holds this equal to ``models.draws_global_rng`` of each built model.
_DRAWS_RNG: frozenset[str] = frozenset({"mobilenet_v3_small", "efficientnet_b0"})


def arch_draws_rng(arch: str) -> bool:
    """Whether training ``arch`` draws random numbers: hospitals of such models cannot train
    at once on threads of one process (they would share torch's global generator)."""
    return arch.partition(":")[0] in _DRAWS_RNG


def arch_cost(arch: str) -> float:
    """Relative training cost of one sample of ``arch`` (only ratios matter)."""
    name, _, width = arch.partition(":")
    if name == "tiny_cnn":
        w = int(width) if width.isdigit() else 16
        return 7056e-6 * (w * w + w)
    return _ARCH_MACS.get(name, 1.0)


def balance(costs: Mapping[str, float], processes: int) -> list[list[str]]:
    """Split items into ``processes`` groups of near-equal total cost (longest first).

    Deterministic: ties break on the item name. Groups keep the items' natural order.
    """
    if processes < 1:
        raise ConfigError("need at least one process")
    loads = [0.0] * min(processes, max(1, len(costs)))
    groups: list[list[str]] = [[] for _ in loads]
    for name in sorted(costs, key=lambda k: (-costs[k], k)):
        i = min(range(len(loads)), key=lambda j: (loads[j], j))
        loads[i] += costs[name]
        groups[i].append(name)
    order = {name: i for i, name in enumerate(sorted(costs))}
    return [sorted(g, key=order.__getitem__) for g in groups if g]


def launcher_capacity(config: Mapping[str, Any]) -> dict[str, float]:
    """Most resources a Ray cluster-launcher config can bring up: head plus every worker type.

    Use it as ``available`` for :func:`chainlearn_ray.planning.planner.plan_resources` on an
    autoscaling cluster whose workers are not up yet (e.g. the head's
    ``~/ray_bootstrap_config.yaml``).
    Each worker type counts
    ``min(its max_workers, the global max_workers)`` nodes, so the result is an upper bound
    when the global ``max_workers`` is below the sum of the types' ``max_workers``.

    Parameters
    ----------
    config:
        The cluster YAML as a mapping (``available_node_types``, ``head_node_type``,
        ``max_workers``).
    """
    try:
        types = config["available_node_types"]
        head = config["head_node_type"]
        total = {k: float(v) for k, v in types[head]["resources"].items()}
    except (KeyError, TypeError) as err:
        raise ConfigError(f"not a multi-node-type cluster config (missing {err})") from None
    limit = int(config.get("max_workers", 2))
    for name, node in types.items():
        if name == head:
            continue
        count = min(int(node.get("max_workers", limit)), limit)
        for key, amount in node.get("resources", {}).items():
            total[key] = total.get(key, 0.0) + count * float(amount)
    return total
