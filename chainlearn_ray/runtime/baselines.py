"""The baseline methods (FedAvg, FedProx, FedMD, Centralized) with their clients in HospitalActors.

The driver runs the same verbs as :func:`chainlearn_ray.methods.local_driver.run_sequential`
(``configure_round`` / ``client_step`` / ``aggregate`` per phase), but each client step runs
inside the actor that already holds the hospital's shard. Only parameters, logits and test
probabilities cross the wire; each broadcast is put into the object store once and every actor
receives the reference. Baseline clients live in their own slot of the actor, next to (and
never touching) the hospital's Ours model.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import ray
import torch

from chainlearn_ray.errors import ConfigError, DataError, HospitalFailure
from chainlearn_ray.hospital.site import Hospital, TrainShard
from chainlearn_ray.learning.models import build_model, count_parameters
from chainlearn_ray.learning.training import predict_proba
from chainlearn_ray.methods.centralized import CENTRAL_ID, Centralized
from chainlearn_ray.methods.evaluation import headline_metrics
from chainlearn_ray.methods.fed import Client, ClientResult, FederatedMethod, TrainSettings
from chainlearn_ray.methods.fedavg import FedAvg, FedProx
from chainlearn_ray.methods.fedmd import FedMD, split_public
from chainlearn_ray.methods.local_driver import ensemble_rows, setup_rows
from chainlearn_ray.methods.names import CENTRALIZED, FEDAVG, FEDMD, FEDPROX
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.results.rows import RunKey

if TYPE_CHECKING:
    from chainlearn_ray.experiment.study import StudyConfig
    from chainlearn_ray.runtime.simulation import Federation

logger = logging.getLogger(__name__)

#: Baseline method names :func:`run_baseline` accepts.
BASELINES: tuple[str, ...] = (FEDAVG, FEDPROX, FEDMD, CENTRALIZED)


def make_method(method: str, study: StudyConfig) -> FederatedMethod:
    """A fresh method object for ``method`` with the study's settings.

    Parameters
    ----------
    method:
        One of :data:`BASELINES`.
    study:
        Supplies FedProx's μ and FedMD's public fraction, temperature and digest settings.
    """
    if method == FEDAVG:
        return FedAvg()
    if method == FEDPROX:
        return FedProx(mu=study.fedprox_mu)
    if method == FEDMD:
        return FedMD(public_fraction=study.fedmd_public_fraction,
                     temperature=study.fedmd_temperature,
                     digest_epochs=study.fedmd_digest_epochs, digest_lr=study.fedmd_digest_lr)
    if method == CENTRALIZED:
        return Centralized()
    raise ConfigError(f"unknown baseline {method!r}: use one of {', '.join(BASELINES)}")


@dataclass(frozen=True)
class BaselineSetup:
    """What an actor needs to build one baseline client (plain data, crosses Ray).

    Attributes
    ----------
    method:
        A client-side copy of the method (no server state).
    settings:
        Local training settings (epochs per round as the method schedules them).
    arch_by_tier:
        Tier label -> architecture; the method picks the client's (:meth:`arch_for`).
    keep:
        Positions of the hospital's shard the client trains on (FedMD: the shard without the
        public set); ``None``: the whole shard.
    size, rgb, normalize:
        The run's image transform (for the public or pooled images the actor receives).
    """

    method: FederatedMethod
    settings: TrainSettings
    arch_by_tier: Mapping[str, str]
    keep: np.ndarray | None = None
    size: int = 28
    rgb: bool = False
    normalize: str = "dataset"

    def to_tensor(self, images: np.ndarray) -> torch.Tensor:
        """``images`` through the run's transform (a copy: object-store arrays are read-only)."""
        from chainlearn_ray.data.transforms import to_tensor

        return to_tensor(np.array(images), size=self.size, rgb=self.rgb,
                         normalize=self.normalize)  # type: ignore[arg-type]


class BaselineClient:
    """Actor side of one baseline participant: its method copy, data view, fresh model.

    Built by :meth:`create` inside a HospitalActor; the hospital's own model is never used.
    """

    def __init__(self, method: FederatedMethod, client: Client, settings: TrainSettings,
                 x_test: torch.Tensor, threads: int = 1) -> None:
        self.method, self.client, self.settings, self.x_test = method, client, settings, x_test
        #: torch threads of the host hospital, which this client computes with
        self.threads = int(threads)

    @property
    def client_id(self) -> str:
        """Participant id (the hospital id, or ``"central"`` for the pooled trainer)."""
        return self.client.hospital_id

    @classmethod
    def create(cls, host: Hospital, setup: BaselineSetup, public: np.ndarray | None = None,
               pooled: TrainShard | None = None) -> BaselineClient:
        """A fresh client of ``host`` (or, with ``pooled``, of the pooled data).

        Parameters
        ----------
        host:
            The hospital whose shard, device, hardware throttle and test inputs it uses.
        setup:
            Method copy, settings, architectures and the rows of the shard to train on.
        public:
            FedMD's public images (uint8).
        pooled:
            Centralized's union of every shard (uint8 images and labels, hospital order).
        """
        method = setup.method
        if pooled is not None:
            x = setup.to_tensor(pooled.x)
            y = torch.tensor(np.asarray(pooled.y).reshape(-1), dtype=torch.long)
            tier, throttle = Tier.STRONG, None  # the pooled trainer is no simulated hospital
        else:
            # the whole shard, whatever study variant (attack behaviour) the hospital is in
            x = getattr(host, "_x_shard", host.x_train)
            y = getattr(host, "_y_shard", host.y_train).reshape(-1)
            if setup.keep is not None:
                rows = torch.tensor(np.asarray(setup.keep, dtype=np.int64))  # a read-only view
                x, y = x[rows], y[rows]
            tier = Tier(host.tier if host.tier is not None else host.spec.hardware_tier)
            throttle = host.throttle
        members = method.participants([Client(host.spec.hospital_id, host.spec.index, tier,
                                              x, y, throttle=throttle)])
        if len(members) != 1:
            raise ConfigError(f"{method.name}: one actor-side client per setup, got "
                              f"{len(members)}")
        client = members[0]
        settings = replace(setup.settings, device=host.spec.device)
        client.model = build_model(
            method.arch_for(client.tier, setup.arch_by_tier), host.spec.n_classes,
            int(client.x.shape[1]), pretrained=host.spec.pretrained,
            seed=settings.seed + client.index,
        )
        if isinstance(method, FedMD):
            if public is None:
                raise ConfigError("FedMD needs the public images")
            method.attach_public(setup.to_tensor(public))
        return cls(method, client, settings, host.x_test, host.spec.threads)

    def describe(self) -> dict[str, Any]:
        """Id, tier, shard size, parameter count and input channels of this client."""
        return {"client_id": self.client_id, "tier": self.client.tier.label,
                "n_samples": self.client.n_samples,
                "model_params": count_parameters(self.client.require_model()),
                "in_channels": int(self.client.x.shape[1])}

    def step(self, config: Any) -> ClientResult:
        """The method's client step for one phase."""
        return self.method.client_step(self.client, config, self.settings)

    def predict_test(self, state: Mapping[str, torch.Tensor] | None = None) -> np.ndarray:
        """Test probabilities of the client's model, or of ``state`` loaded into a copy of it
        (a server-side global model, as :meth:`FedAvg.predict` does)."""
        model = self.client.require_model()
        if state is not None:
            model = copy.deepcopy(model)
            model.load_state_dict(state)
        return predict_proba(model, self.x_test, device=self.settings.device)


@dataclass(frozen=True)
class _Member:
    client_id: str
    host_id: str
    actor: Any


def _members(fed: Federation, method: FederatedMethod, study: StudyConfig, base: BaselineSetup,
             held: list[Any]) -> tuple[list[_Member], list[Any]]:
    """Who participates, and the set-up call of each (references appended to ``held``)."""
    data, part = fed.data, fed.part
    specs = sorted(fed.specs, key=lambda s: s.index)
    if isinstance(method, Centralized):
        union = np.concatenate([np.asarray(part.indices[s.index]) for s in specs])
        held.append(ray.put(TrainShard(data.train.images[union], data.train.labels[union])))
        host = specs[0].hospital_id
        member = _Member(CENTRAL_ID, host, fed.hosts[host])
        return [member], [member.actor.baseline_setup.remote(host, base, pooled=held[-1])]
    public_ref = None
    keep: dict[str, np.ndarray | None] = {s.hospital_id: None for s in specs}
    if isinstance(method, FedMD):
        public, _ = split_public(data.train.labels, study.fedmd_public_fraction, fed.cfg.seed)
        held.append(ray.put(np.ascontiguousarray(data.train.images[public])))
        public_ref = held[-1]
        for s in specs:
            rows = np.flatnonzero(~np.isin(np.asarray(part.indices[s.index]), public))
            if rows.size == 0:
                raise DataError(f"FedMD: the public set takes all of {s.hospital_id}'s shard; "
                                "lower study.fedmd_public_fraction or raise data.min_shard")
            keep[s.hospital_id] = rows
    members = [_Member(s.hospital_id, s.hospital_id, fed.hosts[s.hospital_id]) for s in specs]
    calls = [m.actor.baseline_setup.remote(m.host_id, replace(base, keep=keep[m.host_id]),
                                           public=public_ref) for m in members]
    return members, calls


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
        An open :class:`~chainlearn_ray.runtime.simulation.Federation`.
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
        Tidy rows as :func:`~chainlearn_ray.methods.local_driver.run_sequential` makes them:
        the training budget, each participant's ``shard_size`` and ``model_params`` (round 0),
        the predictor's test accuracy / macro-F1 / confidence / ECE per round, and the traffic
        of every hospital per round (real serialised bytes).
    """
    cfg = fed.cfg
    fm = make_method(method, study)
    n_rounds, epochs = fm.schedule(cfg.train.rounds, cfg.train.epochs)
    base = BaselineSetup(
        method=fm, settings=TrainSettings(epochs=epochs, batch_size=cfg.train.batch_size,
                                          lr=cfg.train.lr, seed=cfg.seed, threads=None),
        arch_by_tier={label: t.arch for label, t in cfg.tiers.items()},
        size=cfg.data.resize or cfg.data.size, rgb=cfg.data.rgb, normalize=cfg.data.normalize,
    )
    held: list[Any] = []  # object refs the actors still read from
    members, calls = _members(fed, fm, study, base, held)
    run_key = replace(key, method=fm.name)
    clock = timings if timings is not None else {}
    started = time.perf_counter()
    try:
        facts = _gather(calls, fm.name)
        clock["setup_seconds"] = time.perf_counter() - started
        clock["round_seconds"] = []
        if fm.needs_initial_state:
            init = build_model(fm.arch_for(Tier.parse(facts[0]["tier"]), base.arch_by_tier),
                               fed.data.n_classes, int(facts[0]["in_channels"]),
                               pretrained=cfg.train.pretrained, seed=cfg.seed)
            fm.initialize(init.state_dict())
        rows = setup_rows(run_key, fm.name, n_rounds, epochs, [
            (f["client_id"], f["tier"], f["n_samples"], f["model_params"]) for f in facts])
        y_test = np.asarray(fed.data.test.labels).reshape(-1)
        for r in range(1, n_rounds + 1):
            started = time.perf_counter()
            for phase in fm.phases:
                config_ref = ray.put(fm.configure_round(r, phase))
                results = _gather([m.actor.baseline_step.remote(m.client_id, config_ref)
                                   for m in members], fm.name)
                fm.aggregate(r, phase, results)
            probs = _predict(fm, members)
            metrics = headline_metrics(probs, y_test, fed.data.n_classes)
            rows.extend(ensemble_rows(run_key, fm.name, r, metrics))
            clock["round_seconds"].append(time.perf_counter() - started)
            logger.info("%s round %d/%d: accuracy %.3f (%.2fs)", fm.name, r, n_rounds,
                        metrics["accuracy"], clock["round_seconds"][-1])
        rows.extend(fm.summary(run_key))
        return rows
    finally:
        _close(members)
        held.clear()


def _predict(fm: FederatedMethod, members: Sequence[_Member]) -> np.ndarray:
    if fm.server_predicts:
        state = getattr(fm, "global_state", None)
        if state is None:
            raise ConfigError(f"{fm.name}: no global model to predict with")
        first = members[0]
        return np.asarray(_gather([first.actor.baseline_predict.remote(
            first.client_id, ray.put(state))], fm.name)[0])
    probs = _gather([m.actor.baseline_predict.remote(m.client_id) for m in members], fm.name)
    return fm.predict_from_members(probs)


def _gather(refs: list[Any], method: str) -> list[Any]:
    try:
        return list(ray.get(refs))
    except ray.exceptions.RayActorError as exc:
        raise HospitalFailure(f"{method}: a hospital actor died during the baseline, and its "
                              f"baseline client died with it; rerun the baseline ({exc})") from exc


def _close(members: Sequence[_Member]) -> None:
    refs = [m.actor.baseline_close.remote(m.client_id) for m in members]
    try:
        ray.get(refs, timeout=60)
    except Exception:  # the baseline's own error matters more than cleanup's
        logger.debug("closing baseline clients failed", exc_info=True)
