"""Connecting to Ray and validating a run's resources before any actor exists."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import math
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

import ray

from chainlearn_ray.errors import ResourceError
from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.planning.planner import plan_resources
from chainlearn_ray.planning.resources import (
    ResourcePlan,
    TierResources,
    arch_draws_rng,
    auto_packing,
)

logger = logging.getLogger(__name__)


#: What Ray imports when a process first serializes anything (its serializers for pydantic
#: models and Arrow data; 0.1-0.25 s): preloaded with the caller's modules, so the driver's
#: first ``ray.put`` or actor call does not wait for them.
_SERIALIZATION_MODULES = ("pydantic", "pyarrow.json", "pyarrow.ipc")

#: side threads of :func:`ensure_ray` that may still be importing
_PRELOADING: list[threading.Thread] = []


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None,
               num_gpus: int | None = None, preload: Sequence[str] = ()) -> bool:
    """Start local Ray or join ``address`` (``"auto"`` = a running ``ray start`` cluster).

    ``preload``: modules the caller needs soon (the results writer, torch for a driver that
    averages models). They are imported on a side thread at idle priority, which starts with
    Ray's start-up (using the CPU it leaves free while this process waits for it) and goes on
    after this returns, so the caller can create its actors meanwhile. A later import of one
    of them waits for that thread (Python's import lock); :func:`finish_preload` waits for all
    of them. An import that failed is left for the caller's own import to raise. What Ray
    imports at this process's first serialization (:data:`_SERIALIZATION_MODULES`) goes first.

    Returns True when this call started Ray (and the caller should shut it down).
    """
    missing = [m for m in (*_SERIALIZATION_MODULES, *preload) if m not in sys.modules]
    if ray.is_initialized():
        _import_quietly(missing, idle=False)
        return False
    if missing:
        loader = threading.Thread(target=_import_quietly, args=(missing, True),
                                  name="chainlearn-preload", daemon=True)
        loader.start()
        _PRELOADING.append(loader)
    return _start_ray(address, num_cpus, num_gpus)


def finish_preload() -> None:
    """Wait until every module that :func:`ensure_ray` preloads is imported (or failed)."""
    while _PRELOADING:
        _PRELOADING.pop().join()


def _import_quietly(modules: Sequence[str], idle: bool) -> None:
    if idle:  # Linux sets the priority of this thread only: Ray's start-up goes first
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # the caller's own import raises it where it matters
            logger.debug("preloading %s failed", name, exc_info=True)


#: ``ray.init`` arguments of every start: no dashboard, Ray's warnings only, worker output
#: shown on the driver.
RAY_INIT_OPTIONS: dict[str, Any] = {
    "include_dashboard": False,
    "logging_level": logging.WARNING,
    "log_to_driver": True,
    "configure_logging": True,
}


def _start_ray(address: str | None, num_cpus: int | None, num_gpus: int | None) -> bool:
    """``ray.init`` with documented arguments and environment variables only.

    Ray's ``uv run`` integration stays off (``RAY_ENABLE_UV_RUN_RUNTIME_ENV=0``) unless the
    user set it: it would package the working directory for every worker. Token
    authentication is left to Ray and the user: Ray reads ``RAY_AUTH_MODE`` once, when it is
    imported, so only the user's environment can choose it (a new local node uses token
    authentication by default and says so in a warning).
    """
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    try:
        if address or os.environ.get("RAY_ADDRESS"):  # Ray joins RAY_ADDRESS when it is set
            ray.init(address=address, **RAY_INIT_OPTIONS)
        else:
            ray.init(num_cpus=num_cpus, num_gpus=num_gpus, **RAY_INIT_OPTIONS)
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


def stop_ray() -> None:
    """``ray.shutdown()`` if this process is connected: a node this process started stops
    with all its processes; connected to a cluster started elsewhere (``ray start``), only
    this driver disconnects."""
    if ray.is_initialized():
        ray.shutdown()


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
    resources, hospitals of all tiers share processes balanced by training cost (see
    :func:`mixed_layout`: one process training a hospital per CPU on threads where the
    models allow it, else one process per CPU); otherwise hospitals of a tier share processes
    (see :func:`auto_packing`).
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
        processes, threads = mixed_layout(cfg, slots)
        # the coordinator keeps what it asked for; the hospitals' processes share the rest,
        # so nothing is scaled down and nothing time-shares beyond what the layout says
        coordinator = cfg.runtime.coordinator_cpus
        if coordinator >= cpus:
            coordinator = single.coordinator_cpus
        each = math.floor((cpus - coordinator) / processes * 1e4) / 1e4
        if each > 0:
            share = round(each * processes / cfg.n_hospitals, 4)
            return dataclasses.replace(
                single, mixed_processes=processes, mixed_cpus=each, mixed_threads=threads,
                concurrency=slots, coordinator_cpus=coordinator, cpu_scale=1.0,
                tiers={label: dataclasses.replace(t, num_cpus=share)
                       for label, t in single.tiers.items()},
                warnings=tuple(w for w in single.warnings
                               if not w.startswith("CPU demand exceeds")))
    return _plan(cfg, auto_packing(cfg.hospitals, cpus), cluster, nodes)


#: Most hospitals one process trains at once on threads: beyond a few, small models contend
#: for Python's interpreter lock more than a second process's start-up costs.
MAX_THREADS_PER_PROCESS = 4


def mixed_layout(cfg: RunConfig, slots: int) -> tuple[int, int]:
    """``(processes, threads each)`` for hospitals of all tiers sharing ``slots`` CPUs.

    Every process costs a Python runtime with torch (about 2.5 CPU-seconds to start and
    300 MB), so hospitals train on threads of as few processes as keep a thread per CPU, at
    most :data:`MAX_THREADS_PER_PROCESS` each. Threads need models that draw no random numbers
    in training (:func:`~chainlearn_ray.planning.resources.arch_draws_rng`: those would take turns
    on torch's one global generator) and one torch thread per hospital; otherwise each process
    trains one hospital at a time, one process per CPU.
    """
    used = [t for label, t in cfg.tiers.items() if int(cfg.hospitals.get(label, 0))]
    if any(arch_draws_rng(t.arch) or t.threads != 1 for t in used):
        return slots, 1
    processes = -(-slots // MAX_THREADS_PER_PROCESS)
    return processes, -(-slots // processes)


def poc_concurrency(cluster_cpus: float) -> int:
    """How many PoC benchmarks may run at once without disturbing each other's clocks.

    On one node, no more than its physical cores (logical Ray CPUs may be oversubscribed);
    on a multi-node cluster, the cluster's CPUs.
    """
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if len(alive) <= 1:
        return max(1, min(int(cluster_cpus), os.cpu_count() or 1))
    return max(1, int(cluster_cpus))
