"""The baseline methods (FedAvg, FedProx, FedMD, Centralized) with their clients in HospitalActors.

The one :class:`~chainlearn_ray.runtime.driver.Driver` runs them, each client step inside the
actor that already holds the hospital's shard (:class:`~chainlearn_ray.runtime.actor_executor.
ActorExecutor`). Only parameters, logits and test probabilities cross the wire; each broadcast is
put into the object store once and every actor receives the reference. Baseline clients live in
their own slot of the actor, next to (and never touching) the hospital's Ours model.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import ray

from chainlearn_ray.errors import DataError, HospitalFailure
from chainlearn_ray.experiment.methods import BASELINES, make_method
from chainlearn_ray.experiment.privacy_config import settings_fields
from chainlearn_ray.hospital.spec import TrainShard
from chainlearn_ray.methods.base import FederatedMethod
from chainlearn_ray.methods.centralized import CENTRAL_ID, Centralized
from chainlearn_ray.methods.fedmd import FedMD, split_public
from chainlearn_ray.methods.hosting import BaselineSetup, initial_state
from chainlearn_ray.methods.messages import TrainSettings
from chainlearn_ray.results.rows import RunKey
from chainlearn_ray.runtime.actor_executor import ActorExecutor
from chainlearn_ray.runtime.driver import Driver

if TYPE_CHECKING:
    from chainlearn_ray.experiment.study import StudyConfig
    from chainlearn_ray.runtime.federation import Federation

logger = logging.getLogger(__name__)

__all__ = ["BASELINES", "make_method", "run_baseline"]

@dataclass(frozen=True)
class _Member:
    """One baseline client: its id, the hospital whose actor hosts it, how it is built and
    the shared data it is built from (an object-store reference)."""

    client_id: str
    host_id: str
    setup: BaselineSetup
    data: dict[str, Any]


def _members(fed: Federation, method: FederatedMethod, study: StudyConfig,
             base: BaselineSetup, held: list[Any]) -> list[_Member]:
    """Who participates, and how each client is built (references appended to ``held``)."""
    data, part = fed.data, fed.part
    specs = sorted(fed.specs, key=lambda s: s.index)
    if isinstance(method, Centralized):
        union = np.concatenate([np.asarray(part.indices[s.index]) for s in specs])
        held.append(ray.put(TrainShard(data.train.images[union], data.train.labels[union])))
        return [_Member(CENTRAL_ID, specs[0].hospital_id, base, {"pooled": held[-1]})]
    shared: dict[str, Any] = {}
    keep: dict[str, np.ndarray | None] = {s.hospital_id: None for s in specs}
    if isinstance(method, FedMD):
        public, _ = split_public(data.train.labels, study.fedmd_public_fraction, fed.cfg.seed)
        held.append(ray.put(np.ascontiguousarray(data.train.images[public])))
        shared["public"] = held[-1]
        for s in specs:
            rows = np.flatnonzero(~np.isin(np.asarray(part.indices[s.index]), public))
            if rows.size == 0:
                raise DataError(f"FedMD: the public set takes all of {s.hospital_id}'s shard; "
                                "lower study.fedmd_public_fraction or raise data.min_shard")
            keep[s.hospital_id] = rows
    return [_Member(s.hospital_id, s.hospital_id, replace(base, keep=keep[s.hospital_id]),
                    shared) for s in specs]


def run_baseline(fed: Federation, method: str, study: StudyConfig, key: RunKey, *,
                 timings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run one baseline with its clients inside the federation's hospital actors.

    Each hospital gets a fresh model in a separate slot of its actor (Ours' models and state
    are untouched) and trains on the shard the actor already holds; FedMD's public set (drawn
    from the pooled training set with the run seed) is removed from every shard; Centralized
    trains one model on the union of all shards in the first hospital's actor.

    Parameters
    ----------
    fed:
        An open :class:`~chainlearn_ray.runtime.federation.Federation`.
    method:
        One of :data:`BASELINES` (``"fedavg"``, ``"fedprox"``, ``"fedmd"``, ``"centralized"``).
    study:
        The baselines' settings (FedProx μ, FedMD public fraction / T / digest epochs and lr).
    key:
        Identifying columns; its ``method`` is replaced by ``method``.
    timings:
        When given, receives ``setup_seconds`` (fresh clients built in the actors) and
        ``round_seconds`` (wall seconds of each round, evaluation included).

    Returns
    -------
    list[dict[str, Any]]
        Tidy rows, as :func:`~chainlearn_ray.runtime.in_process.run_sequential` makes them:
        the training budget, each participant's ``shard_size`` and ``model_params`` (round 0),
        the predictor's test accuracy / macro-F1 / confidence / ECE per round, and the traffic
        of every hospital per round (real serialised bytes).
    """
    cfg = fed.cfg
    fm = make_method(method, study)
    n_rounds, epochs = fm.schedule(cfg.train.rounds, cfg.train.epochs)
    base = BaselineSetup(
        method=fm, settings=TrainSettings(epochs=epochs, batch_size=cfg.train.batch_size,
                                          lr=cfg.train.lr, seed=cfg.seed, threads=None,
                                          **settings_fields(cfg)),
        arch_by_tier={label: t.arch for label, t in cfg.tiers.items()},
        size=cfg.data.resize or cfg.data.size, rgb=cfg.data.rgb, normalize=cfg.data.normalize,
    )
    held: list[Any] = []  # object refs the actors still read from
    members = _members(fed, fm, study, base, held)
    run_key = replace(key, method=fm.name)
    clock = timings if timings is not None else {}
    started = time.perf_counter()
    hosts = {m.client_id: fed.hosts[m.host_id] for m in members}
    try:
        facts = _gather([hosts[m.client_id].open_client.remote(m.client_id, m.host_id, m.setup,
                                                               **m.data)
                         for m in members], fm.name)
        clock["setup_seconds"] = time.perf_counter() - started
        clock["round_seconds"] = []
        fm.initialize(initial_state(fm, facts[0], base.arch_by_tier, fed.data.n_classes,
                                    pretrained=cfg.train.pretrained, seed=cfg.seed,
                                    private=base.settings.private_models))
        fm.bind_test(fed.data.test.labels, fed.data.n_classes)
        rows = fm.setup_rows(run_key, n_rounds, epochs, facts)
        executor = ActorExecutor(hosts, {}, {f["client_id"]: int(f["n_samples"]) for f in facts})
        driver = Driver(fm, executor, [f["client_id"] for f in facts])
        for r in range(1, n_rounds + 1):
            outcome = driver.run_round(r)
            rows.extend(fm.round_rows(run_key, outcome))
            clock["round_seconds"].append(outcome.round_seconds)
            logger.info("%s round %d/%d: %.2fs", fm.name, r, n_rounds, outcome.round_seconds)
        rows.extend(fm.summary(run_key))
        return rows
    finally:
        _close(hosts)
        held.clear()


def _gather(refs: list[Any], method: str) -> list[Any]:
    try:
        return list(ray.get(refs))
    except ray.exceptions.RayActorError as exc:
        raise HospitalFailure(f"{method}: a hospital actor died during the baseline, and its "
                              f"baseline client died with it; rerun the baseline ({exc})") from exc


def _close(hosts: dict[str, Any]) -> None:
    refs = [actor.close_client.remote(client) for client, actor in hosts.items()]
    try:
        ray.get(refs, timeout=60)
    except Exception:  # the baseline's own error matters more than cleanup's
        logger.debug("closing baseline clients failed", exc_info=True)
