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
from collections.abc import Iterator, Sequence
from typing import Any

import ray

from chainlearn_ray.config import RunConfig
from chainlearn_ray.errors import ResourceError
from chainlearn_ray.planner import plan_resources
from chainlearn_ray.resources import ResourcePlan, TierResources, auto_packing

logger = logging.getLogger(__name__)


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
    of them. An import that failed is left for the caller's own import to raise.

    Returns True when this call started Ray (and the caller should shut it down).
    """
    missing = [m for m in preload if m not in sys.modules]
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


def _start_ray(address: str | None, num_cpus: int | None, num_gpus: int | None) -> bool:
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
            with _lean_local_node():
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


@contextlib.contextmanager
def _lean_local_node() -> Iterator[None]:
    """Start a local node without the two head processes a single-machine run never uses.

    - The API server: with ``include_dashboard=False`` Ray still starts it, loading only its
      usage-statistics module, and ``ray.init`` waits for it to come up (about 1.3 s here).
      Ray runs on when that process fails to start; this makes it not start.
    - The autoscaler monitor: a local node has nothing to scale (``ray start --no-monitor``).

    Both are Ray internals: if they are not where this expects them, the node starts in full.
    Anyone who wants the dashboard starts Ray with it (``ray start --head``) and joins it with
    ``--address auto``.
    """
    if os.environ.get("CHAINLEARN_FULL_RAY_START") == "1":
        yield
        return
    try:
        from ray._private import parameter, services

        params_init = parameter.RayParams.__init__
        start_api_server = services.start_api_server
    except (ImportError, AttributeError):
        yield
        return

    def lean_params(self: Any, *args: Any, **kwargs: Any) -> None:
        params_init(self, *args, **kwargs)
        self.no_monitor = True

    def no_api_server(include_dashboard: bool | None, *args: Any, **kwargs: Any) -> Any:
        if include_dashboard:
            return start_api_server(include_dashboard, *args, **kwargs)
        return "", None  # what Ray itself returns when the server did not start

    parameter.RayParams.__init__ = lean_params  # type: ignore[method-assign]
    services.start_api_server = no_api_server
    try:
        yield
    finally:
        parameter.RayParams.__init__ = params_init  # type: ignore[method-assign]
        services.start_api_server = start_api_server


def stop_ray() -> None:
    """``ray.shutdown()``, without its one-second wait on the autoscaler monitor.

    On a node this process started, ``ray.shutdown`` stops the GCS before the autoscaler
    monitor; the monitor then answers SIGTERM by trying to report to that GCS and is only
    killed after a one-second grace period. A local single-node cluster keeps nothing in the
    monitor, so it is killed first. Connected to a cluster started elsewhere (``ray start``),
    this is plain ``ray.shutdown()``: only this driver disconnects.
    """
    if not ray.is_initialized():
        return
    try:  # Ray's node bookkeeping is internal: any change there falls back to plain shutdown
        from ray._private import ray_constants
        from ray._private import worker as ray_worker

        node = ray_worker._global_node
        monitors: list[Any] = (
            node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []) if node else [])
        for info in monitors:
            if info.process.poll() is None:
                info.process.kill()
                info.process.wait(timeout=5)
    except Exception:
        logger.debug("could not stop the autoscaler monitor first", exc_info=True)
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
