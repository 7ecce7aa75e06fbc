"""What ``chainlearn run --dry-run`` prints: the resource plan, its memory estimate, and what
one failed process costs a round."""

from __future__ import annotations

import logging
from pathlib import Path

import ray

from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.planning.memory import (
    DataShape,
    MemoryEstimate,
    estimate_memory,
    physical_memory_bytes,
)
from chainlearn_ray.planning.resources import ResourcePlan

logger = logging.getLogger(__name__)


def dry_run_report(cfg: RunConfig, plan: ResourcePlan, address: str | None) -> str:
    """The plan, its memory estimate (with a warning when it exceeds the cluster's memory)
    and, when processes host several hospitals, what a process that dies takes with it."""
    estimate = memory_of(cfg, plan, address)
    lines = [plan.render(), estimate.render()]
    if plan.hospitals < cfg.n_hospitals:
        lines.append(
            f"Packing: {cfg.n_hospitals} hospitals share {plan.hospitals} actor "
            f"process{'es' if plan.hospitals > 1 else ''}, so a "
            "process that dies takes every hospital it hosts out of the round; they start "
            "again within the round when the round timeout leaves time. --hospitals-per-actor 1 "
            f"isolates each hospital in its own process (about {estimate.isolated_gib:.1f} GiB)")
    return "\n".join(lines)


def memory_of(cfg: RunConfig, plan: ResourcePlan, address: str | None) -> MemoryEstimate:
    """The memory estimate of ``plan`` against the cluster's memory (this machine's when Ray
    runs here)."""
    from chainlearn_ray.learning.models import build_model, count_parameters

    data = _data_shape(cfg)
    channels = data.channels if data is not None else (3 if cfg.data.rgb else 1)
    params: dict[str, int] = {}
    for label, tier in cfg.tiers.items():
        if cfg.hospitals.get(label, 0):
            model = build_model(tier.arch, 2, channels, pretrained=None, seed=0)
            params[label] = count_parameters(model)
    machine = physical_memory_bytes() if address is None else _cluster_memory()
    return estimate_memory(plan.hospitals, params, dict(cfg.hospitals), data, machine,
                           training_at_once=max(1, plan.concurrency))


def _cluster_memory() -> float | None:
    """Memory Ray schedules on the cluster's live nodes, object store included."""
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
    except Exception:  # an estimate only
        return None
    return float(sum(n["Resources"].get("memory", 0) + n["Resources"].get(
        "object_store_memory", 0) for n in nodes)) or None


def _data_shape(cfg: RunConfig) -> DataShape | None:
    """Split sizes and image shape of the configured dataset, where they can be known without
    loading it (the MedMNIST catalogue, or the header of a local file)."""
    side = cfg.data.resize or cfg.data.size
    from chainlearn_ray.data.catalog import dataset_filename, medmnist_info

    info = medmnist_info().get(cfg.data.dataset)
    if info is not None:
        n = info["n_samples"]
        channels = 3 if cfg.data.rgb else int(info["n_channels"])
        return DataShape(int(n["train"]), int(n["val"]), int(n["test"]), channels, side)
    if not cfg.data.data_dir:
        return None
    path = Path(cfg.data.data_dir) / dataset_filename(cfg.data.dataset, cfg.data.size)
    try:
        import numpy as np

        with np.load(path) as arrays:
            shapes = {k: arrays[f"{k}_images"].shape for k in ("train", "val", "test")}
    except (OSError, KeyError, ValueError):
        return None
    first = shapes["train"]
    channels = 3 if cfg.data.rgb else (int(first[3]) if len(first) == 4 else 1)
    return DataShape(shapes["train"][0], shapes["val"][0], shapes["test"][0], channels, side)

