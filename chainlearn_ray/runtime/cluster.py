"""Connecting to Ray and validating a run's resources before any actor exists."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import ray

from chainlearn_ray.config import RunConfig
from chainlearn_ray.errors import ResourceError
from chainlearn_ray.resources import ResourcePlan, TierResources, auto_packing, plan_resources

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
    return True


def packing_for(cfg: RunConfig) -> dict[str, int]:
    """Hospitals per actor process, per tier, on the connected cluster."""
    per = cfg.runtime.hospitals_per_actor
    if per == "auto":
        return auto_packing(cfg.hospitals, float(ray.cluster_resources().get("CPU", 1.0)))
    return {label: int(per) for label in cfg.hospitals}


def plan_for(cfg: RunConfig) -> ResourcePlan:
    """The validated resource plan of ``cfg`` on the connected cluster (raises ResourceError)."""
    packing = packing_for(cfg)
    # an actor hosting ``per`` hospitals asks for ``per`` times one hospital's resources
    per_tier = {}
    for label, t in cfg.tiers.items():
        per = packing.get(label, 1)
        per_tier[label] = TierResources(
            num_cpus=round(t.num_cpus * per, 4), num_gpus=round(t.num_gpus * per, 4),
            gpu_memory_gb=t.gpu_memory_gb * per if t.gpu_memory_gb else None,
            custom={name: round(v * per, 4) for name, v in t.resources.items()},
        )
    counts = {label: -(-int(n) // packing.get(label, 1)) for label, n in cfg.hospitals.items()}
    plan = plan_resources(
        counts, per_tier, ray.cluster_resources(),
        coordinator_cpus=cfg.runtime.coordinator_cpus, device=cfg.runtime.device,
        gpu_memory_gb=cfg.runtime.gpu_memory_gb, fit_cpus=cfg.runtime.fit_cpus,
        nodes=[n["Resources"] for n in ray.nodes() if n.get("Alive")],
    )
    return dataclasses.replace(plan, per_actor=packing)


def poc_concurrency(cluster_cpus: float) -> int:
    """How many PoC benchmarks may run at once without disturbing each other's clocks.

    On one node, no more than its physical cores (logical Ray CPUs may be oversubscribed);
    on a multi-node cluster, the cluster's CPUs.
    """
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if len(alive) <= 1:
        return max(1, min(int(cluster_cpus), os.cpu_count() or 1))
    return max(1, int(cluster_cpus))
