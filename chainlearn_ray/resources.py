"""Plan Ray actor resources (CPUs, GPU fractions, custom keys) before any actor is created."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from chainlearn_ray.config import DEVICES
from chainlearn_ray.errors import ConfigError, ResourceError
from chainlearn_ray.tiers import TIERS

logger = logging.getLogger(__name__)

UNIT = 10_000
"""Ray accounts resources in fixed point: fractional quantities are multiples of 1 / UNIT."""

_EPS = 1e-6


def _units(value: float) -> int:
    """Quantity in Ray's fixed-point units, rounded down (tolerating float noise)."""
    return math.floor(value * UNIT + _EPS)


def _value(units: int) -> float:
    """Quantity from fixed-point units."""
    return float(units // UNIT) if units % UNIT == 0 else units / UNIT


def _fmt(value: float) -> str:
    """Compact number for messages and tables."""
    return f"{value:.4f}".rstrip("0").rstrip(".") or "0"


def _check_quantity(what: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{what} is {value!r}: it must be a finite number >= 0")
    if value > 0 and _units(value) == 0:
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
        _check_quantity("num_cpus", self.num_cpus)
        _check_quantity("num_gpus", self.num_gpus)
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
            _check_quantity(f"custom resource {key!r}", float(amount))
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
        units = _units(self.num_gpus)
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
    """Validated resources of every actor of one simulation; see :func:`plan_resources`."""

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
        units: Counter[str] = Counter({"CPU": _units(self.coordinator_cpus)})
        if self.mixed_processes:
            units["CPU"] += self.mixed_processes * _units(self.mixed_cpus)
            return {k: _value(v) for k, v in units.items()}
        for plan in self.tiers.values():
            units["CPU"] += plan.count * _units(plan.num_cpus)
            units["GPU"] += plan.count * _units(plan.num_gpus)
            for key, amount in plan.custom.items():
                units[key] += plan.count * _units(amount)
        return {k: _value(v) for k, v in units.items()}

    def render(self) -> str:
        """Human-readable plan: tier table, GPU sharing, concurrency and warnings."""
        head = ("tier", "hospitals", "CPUs each", "GPU each", "per GPU", "GPU GB each", "custom")
        rows = [head]
        for p in self.tiers.values():
            custom = ", ".join(f"{k}={_fmt(v)}" for k, v in p.custom.items()) or "-"
            per_gpu = p.hospitals_per_gpu
            budget = _fmt(p.gpu_memory_gb) if p.gpu_memory_gb and p.num_gpus else "-"
            rows.append((p.tier, str(p.count), _fmt(p.num_cpus), _fmt(p.num_gpus),
                         str(per_gpu) if per_gpu else "-", budget, custom))
        rows.append(("coordinator", "1", _fmt(self.coordinator_cpus), "0", "-", "-", "-"))
        packed = {t: k for t, k in self.per_actor.items() if k > 1}
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [
            f"Resource plan: {self.hospitals} hospital actors + 1 coordinator on a cluster with "
            f"{_fmt(self.cluster_cpus)} CPUs and {self.cluster_gpus} GPUs (device {self.device})"
        ]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                  for r in rows]
        if self.mixed_processes:
            lines.append(f"Hospitals share {self.mixed_processes} actor processes of "
                         f"{_fmt(self.mixed_cpus)} CPUs each (balanced by training cost)")
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
                extra = f", {_fmt(mem)} GB" if mem is not None else ""
                lines.append(f"  {n} × {size}: {members}{extra}")
            for tiers in self.shared_gpu_tiers:
                lines.append(f"  shared GPUs: {' + '.join(tiers)}")
        else:
            lines.append(f"GPUs used: 0 of {self.cluster_gpus} (all hospitals on CPU)")
        lines.append(f"Hospitals training at once: {self.concurrency} of {self.hospitals}")
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


def _tier_order(names: Sequence[str]) -> list[str]:
    known = [t.label for t in TIERS if t.label in names]
    return known + sorted(n for n in names if n not in known)


def _pack_gpus(
    plans: Mapping[str, TierPlan], order: Sequence[str]
) -> tuple[GpuGroup, ...]:
    """Best-fit-decreasing packing of GPU shares (the way Ray fills fractional GPUs)."""
    rank = {t: i for i, t in enumerate(order)}
    gpu_tiers = sorted((t for t in order if plans[t].num_gpus > 0 and plans[t].count),
                       key=lambda t: (-_units(plans[t].num_gpus), rank[t]))
    whole: list[tuple[int, Counter[str], int]] = []
    bins: list[tuple[list[int], Counter[str]]] = []
    for tier in gpu_tiers:
        units = _units(plans[tier].num_gpus)
        for _ in range(plans[tier].count):
            if units >= UNIT:
                whole.append((units // UNIT, Counter({tier: 1}), units))
                continue
            fits = [i for i, (free, _m) in enumerate(bins) if free[0] >= units]
            if fits:
                free, members = bins[min(fits, key=lambda i: bins[i][0][0])]
            else:
                free, members = [UNIT], Counter()
                bins.append((free, members))
            free[0] -= units
            members[tier] += 1

    def memory(members: Counter[str]) -> float | None:
        budgets = [plans[t].gpu_memory_gb for t in members]
        if any(b is None for b in budgets):
            return None
        return sum(n * (plans[t].gpu_memory_gb or 0.0) for t, n in members.items())

    groups = [GpuGroup(g, dict(m), float(g), memory(m)) for g, m, _u in whole]
    groups += [GpuGroup(1, dict(m), _value(UNIT - f[0]), memory(m)) for f, m in bins]
    return tuple(groups)


def _worst_gpu_memory(plans: Mapping[str, TierPlan], order: Sequence[str]) -> tuple[float, dict]:
    """Largest memory Ray could put on one GPU: a bounded knapsack over fractional shares."""
    best = np.full(UNIT + 1, -np.inf)
    best[0] = 0.0
    picks: list[tuple[str, int, np.ndarray]] = []
    for tier in order:
        p = plans[tier]
        units = _units(p.num_gpus)
        if not (0 < units < UNIT and p.count and p.gpu_memory_gb is not None):
            continue
        new, pick = best.copy(), np.zeros(UNIT + 1, dtype=np.int64)
        for n in range(1, min(p.count, UNIT // units) + 1):
            shifted = np.full(UNIT + 1, -np.inf)
            shifted[n * units:] = best[: UNIT + 1 - n * units] + n * p.gpu_memory_gb
            better = shifted > new
            new[better], pick[better] = shifted[better], n
        best = new
        picks.append((tier, units, pick))
    cap = int(np.argmax(best))
    combo: dict[str, int] = {}
    for tier, units, pick in reversed(picks):
        if pick[cap]:
            combo[tier] = int(pick[cap])
            cap -= combo[tier] * units
    return float(best.max()), dict(reversed(combo.items()))


def _check_custom(
    plans: Mapping[str, TierResources], counts: Mapping[str, int], available: Mapping[str, float]
) -> None:
    demand: Counter[str] = Counter()
    users: dict[str, list[str]] = {}
    for tier, res in plans.items():
        for key, amount in res.custom.items():
            if counts[tier] and _units(amount):
                demand[key] += counts[tier] * _units(amount)
                users.setdefault(key, []).append(f"{tier} {counts[tier]}×{_fmt(amount)}")
    for key, units in demand.items():
        have = _units(float(available.get(key, 0.0)))
        needs = " + ".join(users[key])
        if have == 0:
            raise ResourceError(
                f"custom resource {key!r} is requested ({needs}) but no node of the cluster "
                f"advertises it: start nodes with `ray start --resources='{{\"{key}\": "
                f"{math.ceil(_value(units))}}}'` (the cluster/*.yaml worker types advertise "
                f"tier resources), or remove {key!r} from those tiers' resources"
            )
        if units > have:
            raise ResourceError(
                f"custom resource {key!r}: hospitals need {_fmt(_value(units))} ({needs}) but "
                f"the cluster has {_fmt(_value(have))}: add nodes advertising {key!r}, run fewer "
                f"of those hospitals, or lower their {key!r} amount"
            )


def _fit_cpus(
    requested: Mapping[str, int], counts: Mapping[str, int], coordinator: int, cluster: int,
    fit: bool,
) -> tuple[dict[str, int], int, float]:
    """Scale CPU units uniformly so the sum fits; returns (per tier, coordinator, scale)."""
    demand = coordinator + sum(counts[t] * u for t, u in requested.items())
    if demand <= cluster:
        return dict(requested), coordinator, 1.0
    parts = " + ".join(f"{t} {counts[t]}×{_fmt(_value(u))}"
                       for t, u in requested.items() if counts[t] and u)
    summary = (f"the actors need {_fmt(_value(demand))} CPUs ({parts} + coordinator "
               f"{_fmt(_value(coordinator))}) but the cluster has {_fmt(_value(cluster))}")
    if cluster == 0:
        raise ResourceError(f"{summary}: connect to a cluster with CPUs (see `ray status`)")
    scale = cluster / demand
    if not fit:
        lowered = ", ".join(f"{t} num_cpus <= {_fmt(_value(u * cluster // demand))}"
                            for t, u in requested.items() if counts[t] and u)
        raise ResourceError(
            f"{summary}: lower num_cpus (e.g. {lowered}), use fewer hospitals, add nodes with "
            "CPUs, or allow time-sharing (fit_cpus=True)"
        )

    def scaled(u: int) -> int:
        return max(1, u * cluster // demand) if u else 0

    tiers = {t: scaled(u) for t, u in requested.items()}
    coord = scaled(coordinator)
    if coord + sum(counts[t] * u for t, u in tiers.items()) > cluster:
        raise ResourceError(f"{summary}, too few for {1 / UNIT} CPU each: use fewer hospitals")
    return tiers, coord, scale


def _check_nodes(plans: Mapping[str, TierPlan], nodes: Sequence[Mapping[str, float]]) -> None:
    """Each single actor must fit on one node, or Ray leaves it pending forever."""
    for p in plans.values():
        need = {"CPU": p.num_cpus, "GPU": p.num_gpus, **p.custom}
        need = {k: v for k, v in need.items() if v > 0}
        if not p.count or any(
            all(float(n.get(k, 0.0)) + _EPS >= v for k, v in need.items()) for n in nodes
        ):
            continue
        largest = {k: max(float(n.get(k, 0.0)) for n in nodes) for k in need}
        raise ResourceError(
            f"one {p.tier} hospital needs {need} but no single node has all of it (largest per "
            f"resource: {largest}): lower that tier's num_cpus/num_gpus below one node's "
            "capacity, or add nodes with those resources together"
        )


def _gpu_overflow(plans: Mapping[str, TierPlan], groups: Sequence[GpuGroup], have: int) -> str:
    parts = []
    for p in plans.values():
        if p.num_gpus and p.count:
            per = p.hospitals_per_gpu
            alone = math.ceil(p.count / per) if per else p.count * int(p.num_gpus)
            parts.append(f"{p.tier} {p.count}×{_fmt(p.num_gpus)} -> {alone} GPUs")
    need = sum(g.gpus for g in groups)
    users = sum(p.count for p in plans.values() if p.num_gpus)
    k = math.ceil(users / have) if have else 0
    share = (f"set num_gpus of every GPU tier to 1/{k} = {_fmt(_value(UNIT // k))} "
             f"({k} hospitals per GPU), " if 1 < k <= UNIT else
             "set num_gpus of every GPU tier to 1, " if k == 1 else "")
    return (
        f"the hospitals' GPU shares need {need} GPUs ({'; '.join(parts)}) but the cluster has "
        f"{have}; every actor lives for the whole run, so Ray would wait forever: {share}"
        f"use fewer hospitals, add {need - have} GPUs (more GPU nodes), or pass --device cpu"
    )


def _check_gpu_memory(
    plans: Mapping[str, TierPlan], order: Sequence[str], per_gpu: float, warnings: list[str]
) -> None:
    users = [p for p in plans.values() if p.num_gpus and p.count]
    unknown = [p.tier for p in users if p.gpu_memory_gb is None]
    if unknown:
        warnings.append(f"no gpu_memory_gb budget for tier(s) {', '.join(unknown)}: their GPU "
                        "memory is not checked")
    for p in users:
        budget = p.gpu_memory_gb
        if budget is not None and p.num_gpus >= 1 and budget > p.num_gpus * per_gpu + _EPS:
            raise ResourceError(
                f"one {p.tier} hospital needs {_fmt(budget)} GB of GPU memory but holds "
                f"{_fmt(p.num_gpus)} GPU(s) of {_fmt(per_gpu)} GB: raise {p.tier} num_gpus to "
                f"{math.ceil(budget / per_gpu)} or lower its budget"
            )
    worst, combo = _worst_gpu_memory(plans, order)
    if worst <= per_gpu + _EPS:
        return
    held = " + ".join(f"{n} {t} ({n}×{_fmt(plans[t].gpu_memory_gb or 0)} GB)"
                      for t, n in combo.items())
    fixes = []
    for tier in combo:
        budget = plans[tier].gpu_memory_gb or 0.0
        k = math.floor(per_gpu / budget + _EPS)
        if k >= 2:
            fixes.append(f"{tier} num_gpus to 1/{k} = {_fmt(_value(UNIT // k))} (at most {k} "
                         "per GPU)")
        else:
            fixes.append(f"{tier} num_gpus to {max(1, math.ceil(budget / per_gpu))} (whole GPUs)")
    raise ResourceError(
        f"GPU memory: Ray packs GPU shares by fraction only, so one GPU can receive {held} = "
        f"{_fmt(worst)} GB > {_fmt(per_gpu)} GB per GPU: raise {'; '.join(fixes)}, or lower "
        "those tiers' gpu_memory_gb"
    )


def _concurrency(plans: Mapping[str, TierPlan], coordinator: int, cluster: int) -> int:
    """Hospitals that can train at once at their requested CPUs (smallest demands first)."""
    demands = sorted(_units(p.requested_cpus) for p in plans.values() for _ in range(p.count))
    budget, running = cluster - coordinator, 0
    for units in demands:
        if units > budget:
            break
        budget -= units
        running += 1
    return max(running, 1) if demands else 0


def plan_resources(
    counts: Mapping[str, int],
    per_tier: Mapping[str, TierResources],
    available: Mapping[str, float],
    *,
    coordinator_cpus: float = 1.0,
    device: str = "auto",
    gpu_memory_gb: float | None = None,
    fit_cpus: bool = True,
    nodes: Sequence[Mapping[str, float]] | None = None,
) -> ResourcePlan:
    """Check that every actor of a run fits the cluster and decide their final resources.

    Every hospital and the coordinator live for the whole run, so the sum of their demands
    must fit the cluster at once, or Ray would leave actors pending forever without a word.

    Parameters
    ----------
    counts:
        Tier label -> number of hospitals.
    per_tier:
        Tier label -> resources one hospital of that tier asks for.
    available:
        Cluster totals as ``ray.cluster_resources()`` returns them (``"CPU"``, ``"GPU"``,
        custom keys; other keys are ignored).
    coordinator_cpus:
        CPUs of the coordinator actor.
    device:
        ``"auto"`` (tiers with a GPU share use CUDA), ``"cpu"`` (every ``num_gpus`` forced to 0)
        or ``"cuda"`` (every hospital must hold a GPU share).
    gpu_memory_gb:
        Memory of one GPU; when given, per-hospital budgets are checked against it.
    fit_cpus:
        When the CPU demand exceeds the cluster, scale every ``num_cpus`` down by one factor
        (hospitals time-share cores) instead of failing.
    nodes:
        Optional per-node resources (``node["Resources"]`` of ``ray.nodes()``): each single
        actor must then fit on one node.

    Returns
    -------
    ResourcePlan
        Per-tier ``ray_options``, coordinator options, CPU scale, GPU packing, concurrency,
        warnings and a printable ``render()``.

    Raises
    ------
    ResourceError
        The run cannot fit; the message says what to lower or add.
    ConfigError
        Invalid counts, device or a tier without resources.
    """
    if device not in DEVICES:
        raise ConfigError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    _check_quantity("coordinator_cpus", coordinator_cpus)
    if gpu_memory_gb is not None and not (math.isfinite(gpu_memory_gb) and gpu_memory_gb > 0):
        raise ConfigError(f"gpu_memory_gb is {gpu_memory_gb!r}: use a positive number of GB")
    for tier, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigError(f"hospital count of tier {tier!r} is {count!r}: use an int >= 0")
        if count and tier not in per_tier:
            raise ConfigError(f"tier {tier!r} has hospitals but no resources: add it to per_tier")
    order = _tier_order([t for t in counts if t in per_tier])
    res = {t: per_tier[t] for t in order}
    warnings: list[str] = []
    cluster_cpus = float(available.get("CPU", 0.0))
    cluster_gpus = math.floor(float(available.get("GPU", 0.0)) + _EPS)
    gpu_units = {t: _units(r.num_gpus) for t, r in res.items()}
    asking = [t for t in order if counts[t] and gpu_units[t]]
    if device == "cpu":
        gpu_units = dict.fromkeys(order, 0)
        if asking:
            warnings.append(f"device cpu: ignoring the GPU shares of {', '.join(asking)}")
    else:
        cpu_only = [t for t in order if counts[t] and not gpu_units[t]]
        if (asking or (device == "cuda" and cpu_only)) and cluster_gpus == 0:
            shares = ", ".join(f"{t} {_fmt(res[t].num_gpus)} GPU each" for t in asking)
            raise ResourceError(
                f"GPUs requested ({shares or 'device cuda'}) but the cluster has no GPU: pass "
                "--device cpu to run every hospital on CPU, or connect to a cluster with GPUs "
                "(see cluster/README.md)"
            )
        if device == "cuda" and cpu_only:
            raise ResourceError(
                f"device cuda but tier(s) {', '.join(cpu_only)} have num_gpus 0, and Ray hides "
                "every GPU from an actor without a GPU share: give them a share (e.g. "
                "num_gpus 0.25) or use --device auto"
            )
        if cluster_gpus and not asking and sum(counts.values()):
            warnings.append(f"the cluster has {cluster_gpus} GPUs but no tier asks for one: "
                            "set num_gpus per tier to use them")
    _check_custom(res, counts, available)
    cpus, coord, scale = _fit_cpus(
        {t: _units(r.num_cpus) for t, r in res.items()}, counts, _units(coordinator_cpus),
        _units(cluster_cpus), fit_cpus,
    )
    if scale < 1:
        warnings.append(
            f"CPU demand exceeds the cluster's {_fmt(cluster_cpus)} CPUs: every num_cpus "
            f"scaled by {scale:.4f}, hospitals time-share cores (fit_cpus=False fails instead)"
        )
    plans = {
        t: TierPlan(t, counts[t], _value(cpus[t]), _value(gpu_units[t]),
                    MappingProxyType({k: _value(_units(v)) for k, v in r.custom.items()}),
                    r.num_cpus, r.num_gpus, r.gpu_memory_gb)
        for t, r in res.items()
    }
    if nodes is not None:
        _check_nodes(plans, nodes)
    groups = _pack_gpus(plans, order)
    if sum(g.gpus for g in groups) > cluster_gpus:
        raise ResourceError(_gpu_overflow(plans, groups, cluster_gpus))
    if gpu_memory_gb is not None:
        _check_gpu_memory(plans, order, gpu_memory_gb, warnings)
    elif any(p.gpu_memory_gb is not None and p.num_gpus and p.count for p in plans.values()):
        warnings.append("per-hospital GPU memory budgets given but not the memory of one GPU "
                        "(gpu_memory_gb): budgets not checked")
    concurrency = _concurrency(plans, _units(coordinator_cpus), _units(cluster_cpus))
    plan = ResourcePlan(
        tiers=MappingProxyType(plans), coordinator_cpus=_value(coord), cpu_scale=scale,
        gpu_groups=groups, concurrency=concurrency, warnings=tuple(warnings),
        cluster_cpus=cluster_cpus, cluster_gpus=cluster_gpus, device=device,
        gpu_memory_gb=gpu_memory_gb,
    )
    for message in warnings:
        logger.info("resource plan: %s", message)
    return plan


def launcher_capacity(config: Mapping[str, Any]) -> dict[str, float]:
    """Most resources a Ray cluster-launcher config can bring up: head plus every worker type.

    Use it as ``available`` for :func:`plan_resources` on an autoscaling cluster whose workers
    are not up yet (e.g. the head's ``~/ray_bootstrap_config.yaml``). Each worker type counts
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
