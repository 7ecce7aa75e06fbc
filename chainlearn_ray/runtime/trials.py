"""How much of the cluster each sweep trial reserves: per-cell configs, bundles, concurrency."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import ray

from chainlearn_ray.errors import ResourceError
from chainlearn_ray.experiment.config import RunConfig, replace
from chainlearn_ray.experiment.grid import Cell
from chainlearn_ray.experiment.sweep_plan import SweepPlan
from chainlearn_ray.planning.resources import UNIT
from chainlearn_ray.runtime.cluster import plan_for


def _floor(value: float) -> float:
    return max(1, math.floor(value * UNIT)) / UNIT if value > 0 else 0.0


def with_packing(cfg: RunConfig, room: float) -> RunConfig:
    """``cfg`` with a whole number of hospitals per actor process for a trial's CPU ``room``.

    ``hospitals_per_actor: auto`` packs against the whole cluster, which a trial does not own:
    a trial gets one process per hospital while it has a CPU per tier for each, else the
    largest tier's hospitals share ``⌈count / (CPUs per tier)⌉``-hospital processes. A number
    given in the config is kept.
    """
    per = cfg.runtime.hospitals_per_actor
    if per != "auto":
        return cfg
    counts = [int(n) for n in cfg.hospitals.values() if int(n) > 0]
    slots = max(1, math.floor(room / max(1, len(counts)) + 1e-9))
    packed = max(1, math.ceil(max(counts, default=1) / slots))
    return replace(cfg, runtime=dataclasses.replace(cfg.runtime, hospitals_per_actor=packed))


def fit_cell(cfg: RunConfig, budget_cpus: float, trial_cpus: float
             ) -> tuple[RunConfig, list[dict[str, float]]]:
    """Scale a cell's CPUs into a trial's budget; returns the config and its bundles.

    The trial's own process takes ``trial_cpus``; the coordinator and hospital actors share the
    rest (their ``num_cpus`` scaled down by one factor when they ask for more). The config
    carries the scaled values, so the plan made inside the trial asks for exactly what the
    bundles hold: the trial process's bundle, then one bundle pooling every actor.

    Raises
    ------
    ResourceError
        When the budget cannot hold the trial process and the actors.
    """
    room = budget_cpus - trial_cpus
    if room <= 0:
        raise ResourceError(f"a trial may use {budget_cpus:g} CPUs, less than its own process's "
                            f"{trial_cpus:g}: lower sweep.trial_cpus or --max-concurrent")
    cfg = with_packing(cfg, room)
    first = plan_for(cfg)
    requested = first.total_demand().get("CPU", 0.0) / first.cpu_scale
    scale = min(1.0, room / requested) if requested > 0 else 1.0
    if scale < 1.0:
        tiers = {label: dataclasses.replace(t, num_cpus=_floor(t.num_cpus * scale))
                 for label, t in cfg.tiers.items()}
        runtime = dataclasses.replace(
            cfg.runtime, coordinator_cpus=_floor(cfg.runtime.coordinator_cpus * scale))
        cfg = replace(cfg, tiers=tiers, runtime=runtime)
    pooled = _pooled(plan_for(cfg))
    bundles = [{"CPU": trial_cpus}, pooled]
    total = trial_cpus + pooled.get("CPU", 0.0)
    if total > budget_cpus + 1e-6:
        raise ResourceError(
            f"cell {cfg.data.dataset} seed {cfg.seed}: its actors and the trial need {total:g} "
            f"CPUs but a trial may use {budget_cpus:g}: lower --max-concurrent, or run fewer "
            "hospitals per cell")
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if nodes and not any(all(float(n.get(k, 0.0)) + 1e-6 >= v for k, v in pooled.items())
                         for n in nodes):
        raise ResourceError(
            f"the actors of one trial ({cfg.n_hospitals} hospitals + coordinator) need {pooled} "
            "on one node, and no node has that much: lower the tiers' num_cpus / num_gpus or "
            "use fewer hospitals per cell")
    return cfg, bundles


def _pooled(plan: Any) -> dict[str, float]:
    """One bundle holding every actor of a trial.

    Actors created inside a trial are captured by its placement group, and Ray puts each into
    whichever bundle has room; with one bundle per actor a small actor can take a large one's
    bundle and leave the large one waiting forever, so the actors share one pooled bundle.
    """
    pooled = {k: v for k, v in plan.total_demand().items() if v > 0}
    gpus = pooled.get("GPU", 0.0)
    if gpus > 1 and not float(gpus).is_integer():
        pooled["GPU"] = float(math.ceil(gpus))
    return pooled


def _demand(cfg: RunConfig, trial_cpus: float, cpus: float) -> dict[str, float]:
    plan = plan_for(with_packing(cfg, cpus - trial_cpus))
    need = dict(plan.total_demand())
    need["CPU"] = need.get("CPU", 0.0) / plan.cpu_scale + trial_cpus
    return need


def plan_trials(plan: SweepPlan, cells: list[Cell], max_concurrent: int | None
                ) -> tuple[int, dict[str, RunConfig], dict[str, list[dict[str, float]]]]:
    """Concurrency and per-trial configs and bundles on the connected cluster.

    Default concurrency: as many trials as fit the cluster at their requested resources (at
    least 1; one trial on a small machine then time-shares its CPUs). A given
    ``max_concurrent`` splits the CPUs evenly; GPUs and custom resources must fit as asked.
    """
    cluster = {k: float(v) for k, v in ray.cluster_resources().items()}
    cpus = cluster.get("CPU", 0.0)
    trial_cpus = plan.grid.trial_cpus
    if not cells:
        return max_concurrent or 1, {}, {}
    demands = [_demand(c.config, trial_cpus, cpus) for c in cells]
    limits: dict[str, int] = {}
    for key in {k for d in demands for k in d}:
        most = max(d.get(key, 0.0) for d in demands)
        if most > 0:
            limits[key] = math.floor(cluster.get(key, 0.0) / most + 1e-9)
    # GPUs and custom resources bound the concurrency; more trials than cells never run
    hard = min([v for k, v in limits.items() if k != "CPU"], default=len(cells))
    if max_concurrent is not None:
        max_concurrent = min(max_concurrent, len(cells))
    if hard < 1:
        raise ResourceError("one trial needs more GPUs or custom resources than the cluster has "
                            f"(needs {demands[0]}, cluster {cluster}): add nodes or lower "
                            "the tiers' num_gpus / resources")
    if max_concurrent is None:
        max_concurrent = max(1, min(limits.get("CPU", 1), hard, len(cells)))
    elif max_concurrent > hard:
        raise ResourceError(f"--max-concurrent {max_concurrent}: only {hard} trials fit the "
                            "cluster's GPUs / custom resources at once; lower it")
    budget = cpus / max_concurrent
    configs: dict[str, RunConfig] = {}
    bundles: dict[str, list[dict[str, float]]] = {}
    for cell in cells:
        configs[cell.name], bundles[cell.name] = fit_cell(cell.config, budget, trial_cpus)
    return max_concurrent, configs, bundles
