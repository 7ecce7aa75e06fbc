"""Validate a simulation's actor resources against a cluster before any actor is created.

:func:`plan_resources` turns per-tier demands
(:class:`~chainlearn_ray.planning.resources.TierResources`) into a
:class:`~chainlearn_ray.planning.resources.ResourcePlan`: GPU sharing groups, CPU time-sharing,
custom resources, per-node fit and per-GPU memory, or a :class:`ResourceError` that says what to
lower.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

from chainlearn_ray.errors import ConfigError, ResourceError
from chainlearn_ray.experiment.config import DEVICES
from chainlearn_ray.planning.resources import (
    EPS,
    UNIT,
    GpuGroup,
    ResourcePlan,
    TierPlan,
    TierResources,
    check_quantity,
    fmt_quantity,
    from_units,
    to_units,
)
from chainlearn_ray.protocol.tiers import TIERS

logger = logging.getLogger(__name__)


def _tier_order(names: Sequence[str]) -> list[str]:
    known = [t.label for t in TIERS if t.label in names]
    return known + sorted(n for n in names if n not in known)


def _pack_gpus(
    plans: Mapping[str, TierPlan], order: Sequence[str]
) -> tuple[GpuGroup, ...]:
    """Best-fit-decreasing packing of GPU shares (the way Ray fills fractional GPUs)."""
    rank = {t: i for i, t in enumerate(order)}
    gpu_tiers = sorted((t for t in order if plans[t].num_gpus > 0 and plans[t].count),
                       key=lambda t: (-to_units(plans[t].num_gpus), rank[t]))
    whole: list[tuple[int, Counter[str], int]] = []
    bins: list[tuple[list[int], Counter[str]]] = []
    for tier in gpu_tiers:
        units = to_units(plans[tier].num_gpus)
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
    groups += [GpuGroup(1, dict(m), from_units(UNIT - f[0]), memory(m)) for f, m in bins]
    return tuple(groups)


def _worst_gpu_memory(plans: Mapping[str, TierPlan], order: Sequence[str]) -> tuple[float, dict]:
    """Largest memory Ray could put on one GPU: a bounded knapsack over fractional shares."""
    best = np.full(UNIT + 1, -np.inf)
    best[0] = 0.0
    picks: list[tuple[str, int, np.ndarray]] = []
    for tier in order:
        p = plans[tier]
        units = to_units(p.num_gpus)
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
            if counts[tier] and to_units(amount):
                demand[key] += counts[tier] * to_units(amount)
                users.setdefault(key, []).append(f"{tier} {counts[tier]}×{fmt_quantity(amount)}")
    for key, units in demand.items():
        have = to_units(float(available.get(key, 0.0)))
        needs = " + ".join(users[key])
        if have == 0:
            raise ResourceError(
                f"custom resource {key!r} is requested ({needs}) but no node of the cluster "
                f"advertises it: start nodes with `ray start --resources='{{\"{key}\": "
                f"{math.ceil(from_units(units))}}}'` (the cluster/*.yaml worker types advertise "
                f"tier resources), or remove {key!r} from those tiers' resources"
            )
        if units > have:
            raise ResourceError(
                f"custom resource {key!r}: hospitals need {fmt_quantity(from_units(units))} "
                f"({needs}) but the cluster has {fmt_quantity(from_units(have))}: add nodes "
                f"advertising {key!r}, run fewer of those hospitals, or lower their {key!r} amount"
            )


def _fit_cpus(
    requested: Mapping[str, int], counts: Mapping[str, int], coordinator: int, cluster: int,
    fit: bool,
) -> tuple[dict[str, int], int, float]:
    """Scale CPU units uniformly so the sum fits; returns (per tier, coordinator, scale)."""
    demand = coordinator + sum(counts[t] * u for t, u in requested.items())
    if demand <= cluster:
        return dict(requested), coordinator, 1.0
    parts = " + ".join(f"{t} {counts[t]}×{fmt_quantity(from_units(u))}"
                       for t, u in requested.items() if counts[t] and u)
    summary = (f"the actors need {fmt_quantity(from_units(demand))} CPUs ({parts} + coordinator "
               f"{fmt_quantity(from_units(coordinator))}) but the cluster has "
               f"{fmt_quantity(from_units(cluster))}")
    if cluster == 0:
        raise ResourceError(f"{summary}: connect to a cluster with CPUs (see `ray status`)")
    scale = cluster / demand
    if not fit:
        lowered = ", ".join(f"{t} num_cpus <= {fmt_quantity(from_units(u * cluster // demand))}"
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
            all(float(n.get(k, 0.0)) + EPS >= v for k, v in need.items()) for n in nodes
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
            parts.append(f"{p.tier} {p.count}×{fmt_quantity(p.num_gpus)} -> {alone} GPUs")
    need = sum(g.gpus for g in groups)
    users = sum(p.count for p in plans.values() if p.num_gpus)
    k = math.ceil(users / have) if have else 0
    share = (f"set num_gpus of every GPU tier to 1/{k} = {fmt_quantity(from_units(UNIT // k))} "
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
        if budget is not None and p.num_gpus >= 1 and budget > p.num_gpus * per_gpu + EPS:
            raise ResourceError(
                f"one {p.tier} hospital needs {fmt_quantity(budget)} GB of GPU memory but holds "
                f"{fmt_quantity(p.num_gpus)} GPU(s) of {fmt_quantity(per_gpu)} GB: raise {p.tier} "
                f"num_gpus to {math.ceil(budget / per_gpu)} or lower its budget"
            )
    worst, combo = _worst_gpu_memory(plans, order)
    if worst <= per_gpu + EPS:
        return
    held = " + ".join(f"{n} {t} ({n}×{fmt_quantity(plans[t].gpu_memory_gb or 0)} GB)"
                      for t, n in combo.items())
    fixes = []
    for tier in combo:
        budget = plans[tier].gpu_memory_gb or 0.0
        k = math.floor(per_gpu / budget + EPS)
        if k >= 2:
            fixes.append(f"{tier} num_gpus to 1/{k} = {fmt_quantity(from_units(UNIT // k))} "
                         f"(at most {k} per GPU)")
        else:
            fixes.append(f"{tier} num_gpus to {max(1, math.ceil(budget / per_gpu))} (whole GPUs)")
    raise ResourceError(
        f"GPU memory: Ray packs GPU shares by fraction only, so one GPU can receive {held} = "
        f"{fmt_quantity(worst)} GB > {fmt_quantity(per_gpu)} GB per GPU: raise "
        f"{'; '.join(fixes)}, or lower those tiers' gpu_memory_gb"
    )


def _concurrency(plans: Mapping[str, TierPlan], coordinator: int, cluster: int) -> int:
    """Hospitals that can train at once at their requested CPUs (smallest demands first)."""
    demands = sorted(to_units(p.requested_cpus) for p in plans.values() for _ in range(p.count))
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
    check_quantity("coordinator_cpus", coordinator_cpus)
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
    cluster_gpus = math.floor(float(available.get("GPU", 0.0)) + EPS)
    gpu_units = {t: to_units(r.num_gpus) for t, r in res.items()}
    asking = [t for t in order if counts[t] and gpu_units[t]]
    if device == "cpu":
        gpu_units = dict.fromkeys(order, 0)
        if asking:
            warnings.append(f"device cpu: ignoring the GPU shares of {', '.join(asking)}")
    else:
        cpu_only = [t for t in order if counts[t] and not gpu_units[t]]
        if (asking or (device == "cuda" and cpu_only)) and cluster_gpus == 0:
            shares = ", ".join(f"{t} {fmt_quantity(res[t].num_gpus)} GPU each" for t in asking)
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
        {t: to_units(r.num_cpus) for t, r in res.items()}, counts, to_units(coordinator_cpus),
        to_units(cluster_cpus), fit_cpus,
    )
    if scale < 1:
        warnings.append(
            f"CPU demand exceeds the cluster's {fmt_quantity(cluster_cpus)} CPUs: every num_cpus "
            f"scaled by {scale:.4f}, hospitals time-share cores (fit_cpus=False fails instead)"
        )
    plans = {
        t: TierPlan(t, counts[t], from_units(cpus[t]), from_units(gpu_units[t]),
                    MappingProxyType({k: from_units(to_units(v)) for k, v in r.custom.items()}),
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
    concurrency = _concurrency(plans, to_units(coordinator_cpus), to_units(cluster_cpus))
    plan = ResourcePlan(
        tiers=MappingProxyType(plans), coordinator_cpus=from_units(coord), cpu_scale=scale,
        gpu_groups=groups, concurrency=concurrency, warnings=tuple(warnings),
        cluster_cpus=cluster_cpus, cluster_gpus=cluster_gpus, device=device,
        gpu_memory_gb=gpu_memory_gb,
    )
    for message in warnings:
        logger.info("resource plan: %s", message)
    return plan
