"""Connecting to Ray and validating a run's resources before any actor exists."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import inspect
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
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
from chainlearn_ray.runtime import raylet_watch

logger = logging.getLogger(__name__)


#: What Ray imports when a process first serializes anything (its serializers for pydantic
#: models and Arrow data; 0.1-0.25 s): preloaded with the caller's modules, so the driver's
#: first ``ray.put`` or actor call does not wait for them.
_SERIALIZATION_MODULES = ("ray._common.pydantic_compat", "pyarrow.json", "pyarrow.ipc")

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


def _start_ray(address: str | None, num_cpus: int | None, num_gpus: int | None) -> bool:
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": True,
        "configure_logging": True,
    }
    try:
        if address or os.environ.get("RAY_ADDRESS"):  # Ray joins RAY_ADDRESS when it is set
            ray.init(address=address, **kwargs)
        else:
            with _lean_local_node() as system_config:
                ray.init(num_cpus=num_cpus, num_gpus=num_gpus, **system_config, **kwargs)
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


#: Socket connections inside the node (the raylet to its object store, workers to the raylet)
#: retry every 20 ms instead of every second, for the same 10 s in all. The raylet's first
#: connection to its own object store races the thread that creates it and, when it loses,
#: used to sleep a whole second (about one start in three here).
_FAST_CONNECT = {"raylet_client_connect_timeout_milliseconds": 20,
                 "raylet_client_num_connect_attempts": 500}


#: Ray's own switch for task events: a report interval of 0 turns them off.
_NO_TASK_EVENTS = {"RAY_task_events_report_interval_ms": "0"}


@contextlib.contextmanager
def _lean_local_node() -> Iterator[dict[str, Any]]:
    """Start a local node without what a single-machine run never uses or waits for.

    - The API server: with ``include_dashboard=False`` Ray still starts it, loading only its
      usage-statistics module, and ``ray.init`` waits for it to come up (about 1.3 s here).
      Ray runs on when that process fails to start; this makes it not start.
    - The autoscaler monitor: a local node has nothing to scale (``ray start --no-monitor``).
    - The raylet's wait for its agents' ports (about 1 s, both agents importing on a busy
      machine) before it starts any worker. Without ``ray[default]`` the dashboard agent
      reports "no port" for all three of its services; those answers are written before the
      raylet starts, and the runtime-env agent gets a port chosen up front. Both agents still
      start, beside the workers instead of before them.
    - The dashboard agent of a minimal install (no ``ray[default]``): it tries each of its
      modules, all failing for a missing package (1-1.5 CPU-seconds during the actors'
      start), then only watches the raylet. :mod:`~chainlearn_ray.runtime.raylet_watch`
      takes its place and does just that (on Linux). With ``ray[default]`` the agent runs as
      usual.
    - The runtime-env agent's start (about 0.8 CPU-seconds), until something needs it: only a
      task or actor with a runtime environment does, and no run of this package has one.
      :mod:`~chainlearn_ray.runtime.raylet_watch` holds its port and becomes the agent at
      the first connection (on Linux).
    - The dashboard agent (where it runs) and the log monitor run on idle CPU time (Linux's
      SCHED_IDLE; nice 19 where that is not allowed). Ray starts them at the driver's priority
      and its workers at 15, so on a busy machine their imports (2-3 CPU-seconds with the
      runtime-env agent's) went ahead of the actors' start-up, which is what the run waits
      for; at nice 19 they still took a third of a core from it. A runtime-env agent started
      on demand runs at normal priority: someone waits for it.
    - The one-second reconnect sleeps inside the node (:data:`_FAST_CONNECT`).
    - Task events (:data:`_NO_TASK_EVENTS`): every process buffers a record of each task's
      states and sends it to the GCS each second, for the dashboard, the state API and
      ``ray.timeline``. A lean node runs no dashboard, and the driver's shutdown waited about
      0.25 s for that last send in every run (now it mostly takes 0.01-0.02 s). A value the
      user set for the variable stays.

    Yields the extra ``ray.init`` keyword arguments. These are Ray internals: whatever is not
    where this expects it starts as Ray starts it. Anyone who wants the dashboard starts Ray
    with it (``ray start --head``) and joins it with ``--address auto``.
    """
    if os.environ.get("CHAINLEARN_FULL_RAY_START") == "1":
        yield {}
        return
    try:
        from ray._private import parameter, ray_constants, services, utils

        raylet_module = importlib.import_module("ray._raylet")  # compiled; its stub lacks these
        persist_port = raylet_module.persist_port
        agent_port_files = tuple(getattr(raylet_module, name) for name in (
            "METRICS_AGENT_PORT_NAME", "METRICS_EXPORT_PORT_NAME",
            "DASHBOARD_AGENT_LISTEN_PORT_NAME"))
        agents = {ray_constants.PROCESS_TYPE_DASHBOARD_AGENT,
                  ray_constants.PROCESS_TYPE_RUNTIME_ENV_AGENT}
        python_command = "_build_python_executable_command_memory_profileable"
        original = {name: getattr(services, name) for name in (
            "start_api_server", "start_raylet", "start_log_monitor", python_command)}
        params_init = parameter.RayParams.__init__
        raylet_signature = inspect.signature(original["start_raylet"])
        dependency_error = utils.get_dashboard_dependency_error
        missing = _missing_dashboard_dependency()
        minimal = missing is not None or dependency_error() is not None
    except (ImportError, AttributeError, TypeError, ValueError):
        yield {}
        return
    idle = _idle_command_prefix()
    linux = sys.platform.startswith("linux")  # where the stand-ins of raylet_watch run

    def lean_params(self: Any, *args: Any, **kwargs: Any) -> None:
        params_init(self, *args, **kwargs)
        self.no_monitor = True

    def dashboard_dependency_error() -> ImportError | None:
        return missing or dependency_error()

    def start_api_server(include_dashboard: bool | None, *args: Any, **kwargs: Any) -> Any:
        if include_dashboard:
            return original["start_api_server"](include_dashboard, *args, **kwargs)
        return "", None  # what Ray itself returns when the server did not start

    def start_raylet(*args: Any, **kwargs: Any) -> Any:
        call = raylet_signature.bind(*args, **kwargs)
        given = call.arguments
        try:
            if minimal and not given.get("metrics_agent_port") and not given.get(
                    "metrics_export_port"):
                # what the dashboard agent of a minimal Ray reports for each service
                for name in agent_port_files:
                    persist_port(given["session_dir"], given["node_id"], name, -1)
                given.update(metrics_agent_port=-1, metrics_export_port=-1)
                if not given.get("runtime_env_agent_port"):
                    given["runtime_env_agent_port"] = _free_port()
        except Exception:  # anything unexpected: the raylet waits for its agents as usual
            logger.debug("starting the raylet with its agents' ports unknown", exc_info=True)
            call = raylet_signature.bind(*args, **kwargs)
        return original["start_raylet"](*call.args, **call.kwargs)

    def agent_command(component: str, *args: Any, **kwargs: Any) -> Any:
        if minimal and linux and component == ray_constants.PROCESS_TYPE_DASHBOARD_AGENT:
            # the agent's own arguments follow, unused
            return [sys.executable, "-S", raylet_watch.__file__]
        command = original[python_command](component, *args, **kwargs)
        if linux and component == ray_constants.PROCESS_TYPE_RUNTIME_ENV_AGENT:
            # Ray appends the agent's program and arguments; it starts when first asked for
            return [sys.executable, "-S", raylet_watch.__file__, "--on-demand", *command]
        return [*idle, *command] if idle and component in agents else command

    def start_log_monitor(*args: Any, **kwargs: Any) -> Any:
        info = original["start_log_monitor"](*args, **kwargs)
        _run_idle(info.process.pid)
        return info

    patches = [(parameter.RayParams, "__init__", lean_params),
               (utils, "get_dashboard_dependency_error", dashboard_dependency_error),
               *((services, name, f) for name, f in (
                   ("start_api_server", start_api_server), ("start_raylet", start_raylet),
                   ("start_log_monitor", start_log_monitor), (python_command, agent_command)))]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, f in patches:
        setattr(owner, name, f)
    # Ray's processes read it from their environment (each inherits it from the one starting
    # it); as a system-config entry the driver's own core worker did not honour it here
    unset = [k for k in _NO_TASK_EVENTS if k not in os.environ]
    os.environ.update({k: _NO_TASK_EVENTS[k] for k in unset})
    try:
        yield {"_system_config": dict(_FAST_CONNECT)}
    finally:
        for owner, name, f in saved:
            setattr(owner, name, f)
        for k in unset:
            os.environ.pop(k, None)


def _idle_command_prefix() -> list[str]:
    """A command prefix that runs a program on CPU time nothing else wants: ``chrt --idle 0``
    (Linux's SCHED_IDLE) where it works here, else the lowest priority (``nice -n 19``), else
    nothing. Tried once on ``true``: a prefix that failed would keep an agent from starting."""
    for prefix in (["chrt", "--idle", "0"], ["nice", "-n", "19"]):
        program = shutil.which(prefix[0])
        if program is None:
            continue
        command = [program, *prefix[1:]]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if subprocess.run([*command, "true"], capture_output=True, timeout=10).returncode == 0:
                return command
    return []


def _run_idle(pid: int) -> None:
    """Put a running process on idle CPU time (SCHED_IDLE, else nice 19) if the OS lets us."""
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, pid, 19)


#: Top-level packages Ray's dashboard needs (``ray.dashboard.optional_deps``).
_DASHBOARD_PACKAGES = ("aiohttp", "aiohttp_cors", "grpc", "opencensus", "opentelemetry",
                       "prometheus_client", "pydantic")


def _missing_dashboard_dependency() -> ImportError | None:
    """Which dashboard package is not installed, found without importing any of them.

    Ray finds out by importing them all (aiohttp among them: 0.2-0.4 s of the driver's CPU
    during ``ray.init``); None means all are there, and then Ray's own check decides.
    """
    for name in _DASHBOARD_PACKAGES:
        if importlib.util.find_spec(name) is None:
            return ModuleNotFoundError(f"No module named {name!r}", name=name)
    return None


def _free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick for an ephemeral bind)."""
    with socket.socket() as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


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
