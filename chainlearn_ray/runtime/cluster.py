"""Connecting to Ray and validating a run's resources before any actor exists."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import Any

import ray

from chainlearn_ray.config import RunConfig
from chainlearn_ray.errors import ResourceError
from chainlearn_ray.planner import plan_resources
from chainlearn_ray.resources import ResourcePlan, TierResources, auto_packing

logger = logging.getLogger(__name__)


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None,
               num_gpus: int | None = None) -> bool:
    """Start local Ray or join ``address`` (``"auto"`` = a running ``ray start`` cluster).

    Returns True when this call started Ray (and the caller should shut it down).
    """
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": True,
        "configure_logging": True,
    }
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
    except ConnectionError as exc:
        raise ResourceError(
            f"cannot reach a Ray cluster at {address!r}: {exc}. Start one with `ray start --head`"
            " or drop --address to run on local Ray"
        ) from None
    except Exception as exc:
        if "timed out during startup" not in str(exc):
            raise
        raise ResourceError(
            "local Ray did not start in time (its node start-up limit is fixed); the machine is "
            "probably busy: retry when it is less loaded, or start Ray once with "
            "`ray start --head` and pass --address auto"
        ) from exc
    return True


def _plan(cfg: RunConfig, packing: dict[str, int], cluster: dict[str, float],
          nodes: list[dict[str, float]]) -> ResourcePlan:
    packing = dict(packing)
    # an actor hosting ``per`` hospitals asks for ``per`` times one hospital's resources
    per_tier = {}
    for label, t in cfg.tiers.items():
        # a tier with fewer hospitals than ``per`` packs only those it has
        per = max(1, min(packing.get(label, 1), int(cfg.hospitals.get(label, 0))))
        packing[label] = per
        per_tier[label] = TierResources(
            num_cpus=round(t.num_cpus * per, 4), num_gpus=round(t.num_gpus * per, 4),
            gpu_memory_gb=t.gpu_memory_gb * per if t.gpu_memory_gb else None,
            custom={name: round(v * per, 4) for name, v in t.resources.items()},
        )
    counts = {label: -(-int(n) // packing.get(label, 1)) for label, n in cfg.hospitals.items()}
    plan = plan_resources(
        counts, per_tier, cluster,
        coordinator_cpus=cfg.runtime.coordinator_cpus, device=cfg.runtime.device,
        gpu_memory_gb=cfg.runtime.gpu_memory_gb, fit_cpus=cfg.runtime.fit_cpus, nodes=nodes,
    )
    return dataclasses.replace(plan, per_actor=dict(packing))


def plan_for(cfg: RunConfig) -> ResourcePlan:
    """The validated resource plan of ``cfg`` on the connected cluster (raises ResourceError).

    With ``hospitals_per_actor: auto`` every hospital has its own actor process while the
    cluster has a CPU for each. Beyond that, on one node with CPU-only hospitals and no custom
    resources, hospitals of all tiers share one process per CPU, balanced by training cost;
    otherwise hospitals of a tier share processes (see :func:`auto_packing`).
    """
    cluster = dict(ray.cluster_resources())
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    cpus = float(cluster.get("CPU", 0.0))
    per = cfg.runtime.hospitals_per_actor
    if per != "auto":
        return _plan(cfg, {label: int(per) for label in cfg.hospitals}, cluster, nodes)
    single = _plan(cfg, {label: 1 for label in cfg.hospitals}, cluster, nodes)
    slots = max(1, int(cpus))
    cpu_only = all(p.num_gpus == 0 and not p.custom for p in single.tiers.values() if p.count)
    if cfg.n_hospitals > slots and len(nodes) == 1 and cpu_only:
        each = math.floor((cpus - single.coordinator_cpus) / slots * 1e4) / 1e4
        if each > 0:
            return dataclasses.replace(single, mixed_processes=slots, mixed_cpus=each,
                                       concurrency=slots)
    return _plan(cfg, auto_packing(cfg.hospitals, cpus), cluster, nodes)


def poc_concurrency(cluster_cpus: float) -> int:
    """How many PoC benchmarks may run at once without disturbing each other's clocks.

    On one node, no more than its physical cores (logical Ray CPUs may be oversubscribed);
    on a multi-node cluster, the cluster's CPUs.
    """
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if len(alive) <= 1:
        return max(1, min(int(cluster_cpus), os.cpu_count() or 1))
    return max(1, int(cluster_cpus))
