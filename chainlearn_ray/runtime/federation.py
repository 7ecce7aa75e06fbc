"""The live actors of one run on Ray: a coordinator and the hospital actors."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import ray

from chainlearn_ray.errors import ResourceError
from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.experiment.methods import ours_for
from chainlearn_ray.experiment.trust_method import ours_trust_for
from chainlearn_ray.experiment.trust_settings import trust_config_of
from chainlearn_ray.hospital.spec import EvalSplits, HospitalSpec, TrainShard
from chainlearn_ray.methods.ours import Ours
from chainlearn_ray.planning.placement import actor_groups, hospital_specs
from chainlearn_ray.protocol.rounds import RoundOutcome
from chainlearn_ray.results.rows import RunKey
from chainlearn_ray.runtime.cluster import ensure_ray, plan_for, poc_concurrency, stop_ray
from chainlearn_ray.runtime.coordinator_actor import CoordinatorActor
from chainlearn_ray.runtime.hospital_actor import HospitalActor
from chainlearn_ray.runtime.inputs import ActorInputs, InputStore
from chainlearn_ray.runtime.progress import Events, ProgressBoard, await_with_events

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


class Federation:
    """The live actors of one run: a coordinator, the hospital actors, and their chain identity.

    Built by :func:`open_federation`; the study engine and :func:`~chainlearn_ray.runtime.
    simulation.run_simulation` drive it. ``close()`` stops every actor (and Ray, when this
    federation started it).
    """

    def __init__(self, cfg: RunConfig, run_id: str, data: Any, part: Any, plan: Any,
                 specs: list[HospitalSpec], started_ray: bool) -> None:
        self.cfg, self.run_id, self.data, self.part, self.plan = cfg, run_id, data, part, plan
        self.specs = specs
        self.started_ray = started_ray
        self.coordinator: Any = None
        self.hosts: dict[str, Any] = {}
        self.actors: list[Any] = []
        self.chain: dict[str, Any] = {}
        self.registrations: list[dict[str, Any]] = []
        self._refs: list[Any] = []  # the actors' constructor data, alive as long as the actors
        self._store: Any = None  # the store the hospital actors fetch that data from
        self._names: list[str] = []  # the names of the hospital actors and the input store
        #: Wall seconds of connecting to Ray and of starting the actors (contract included).
        self.timings: dict[str, float] = {}
        self._board: Any = None  # live progress (see watch)
        self._events: Events | None = None

    def _need_chain(self, what: str) -> None:
        if self.coordinator is None:
            raise ResourceError(f"{what} needs the chain: open the federation with chain=True")

    @property
    def hardware(self) -> dict[str, str]:
        """hospital id -> label of its simulated hardware tier."""
        return {s.hospital_id: s.hardware_tier.label for s in self.specs}

    def ours(self, **inputs: Any) -> Ours:
        """Ours with this run's settings (``inputs``: see :func:`~chainlearn_ray.experiment.
        methods.ours_for`)."""
        if self.cfg.chain.mode == "trust":  # Ours on a trust-mode deployment
            return ours_trust_for(self.cfg, self.hardware, self.data, **inputs)
        return ours_for(self.cfg, self.hardware, **inputs)

    def watch(self, events: Events) -> None:
        """Hand live progress (:class:`~chainlearn_ray.runtime.progress.RunEvent`) to
        ``events`` from the next registration on, while this process waits for the chain."""
        self._need_chain("live progress")
        self._board = ProgressBoard.remote()  # type: ignore[attr-defined]
        ray.get(self.coordinator.watch.remote(self._board))
        self._events = events

    def plan_rounds(self, method: Ours) -> dict[int, list[str]]:
        """Round -> the hospitals attending it, for every round of the config (the method's
        draw, seeded per round)."""
        return {r: method.attending(r, list(self.hosts))
                for r in range(1, self.cfg.train.rounds + 1)}

    def register(self, first_attending: list[str] | None = None, *, method: Ours | None = None,
                 verify_claims: bool = True) -> list[dict[str, Any]]:
        """Start ``method`` (default: :meth:`ours` with ``verify_claims``): every hospital runs
        its PoC and is registered with the tier it gets. A fresh method (a retrained variant)
        gets a fresh deployment and resets the hospitals first.

        ``first_attending``: who attends round 1, whose training then starts while the
        coordinator registers the hospitals on chain; round 1 must be run with them.
        """
        self._need_chain("registration")
        method = method or self.ours(verify_claims=verify_claims)
        self.chain = ray.get(self.coordinator.open.remote(
            method, redeploy=method.fresh, round_timeout=self.cfg.runtime.round_timeout))
        regs = await_with_events(self.coordinator.setup.remote(first_attending), self._board,
                                 self._events)
        hw = self.hardware
        for r in regs:
            r["hardware_tier"] = hw[r["hospital_id"]]
        self.registrations = regs
        return regs

    def resume(self, registrations: list[dict[str, Any]], method: Ours) -> list[dict[str, Any]]:
        """Take ``method`` up after its set-up as an interrupted run recorded it (the chain was
        rebuilt from that run's journal, the hospitals restored from its checkpoints)."""
        self._need_chain("resuming")
        self.chain = ray.get(self.coordinator.open.remote(
            method, round_timeout=self.cfg.runtime.round_timeout))
        self.registrations = ray.get(self.coordinator.resume.remote(registrations))
        return self.registrations

    def journal(self) -> list[str]:
        """Every signed transaction sent on the chain so far (none without a chain)."""
        if self.coordinator is None:
            return []
        return list(ray.get(self.coordinator.journal.remote()))

    def run_round(self, round_: int, attending: list[str],
                  next_attending: list[str] | None = None) -> RoundOutcome:
        """One round of the registered method with ``attending`` hospitals.

        ``next_attending``: who attends the next round, whose training may then start in each
        process as soon as that process is through this round; that round must then be run
        with the same hospitals.
        """
        self._need_chain("a round of Ours")
        return await_with_events(  # type: ignore[no-any-return]
            self.coordinator.run_round.remote(round_, attending, next_attending), self._board,
            self._events)

    def run_rounds(self, plan: dict[int, list[str]],
                   announce: Progress | None = None) -> Iterator[RoundOutcome]:
        """The rounds of ``plan`` (:meth:`plan_rounds`) in order; a process starts its next
        round's training as soon as it is through the current one."""
        for r in sorted(plan):
            if announce is not None:
                announce(f"round {r}: training {', '.join(plan[r]) or 'nobody'}")
            yield self.run_round(r, plan[r], next_attending=plan.get(r + 1))

    def summary(self, key: RunKey) -> list[dict[str, Any]]:
        """The registered method's closing rows (Ours: the traffic of every submission)."""
        self._need_chain("a summary of Ours")
        return list(ray.get(self.coordinator.summary.remote(key)))

    def receipts(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """Every transaction of the current deployment (none without a chain); ``timeout``:
        seconds to wait for a coordinator that may be busy (``GetTimeoutError`` after)."""
        if self.coordinator is None:
            return []
        return list(ray.get(self.coordinator.receipts.remote(), timeout=timeout))

    def identities(self) -> list[dict[str, Any]]:
        """Every hospital's identity as its actor reports it now."""
        firsts: dict[int, Any] = {}
        for actor in self.hosts.values():
            firsts.setdefault(id(actor), actor)
        return [i for group in ray.get([a.ping.remote() for a in firsts.values()])
                for i in group]

    def close(self) -> None:
        """Stop the coordinator and the hospital actors (and Ray, if this federation started it)."""
        if self.coordinator is not None:
            try:
                ray.get(self.coordinator.close.remote(), timeout=30)
            except Exception:  # the run's own error matters more than cleanup's
                logger.debug("coordinator close failed", exc_info=True)
        others = [a for a in (self.coordinator, self._store, self._board) if a is not None]
        for actor in [*self.actors, *others]:
            ray.kill(actor)
        names, self._names = self._names, []
        self.actors, self.coordinator, self._refs, self._store = [], None, [], None
        self._board = self._events = None
        if self.started_ray:
            stop_ray()
            self.started_ray = False
        else:  # Ray stays up: a next federation of the same run may reuse the actors' names
            _await_names_free(names)


def _empty_folder(folder: Path) -> None:
    """Make ``folder`` an empty folder (whatever an earlier run left there must not leak
    into this one's actors)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _await_names_free(names: list[str], timeout: float = 30.0) -> None:
    """Wait until no live actor holds any of ``names`` (``ray.kill`` returns before the
    actor is gone, and its name stays taken until then)."""
    deadline = time.monotonic() + timeout
    for name in names:
        while time.monotonic() < deadline:
            try:
                ray.get_actor(name)
            except ValueError:  # no live actor by that name
                break
            time.sleep(0.02)


def open_federation(cfg: RunConfig, data: Any, part: Any, run_id: str, ckpt_dir: Path,
                    say: Progress | None = None, *, chain: bool = True,
                    preload: Sequence[str] = (),
                    prepare: Callable[[Path], None] | None = None,
                    journal: list[str] | None = None) -> Federation:
    """Connect to Ray, validate resources, create the coordinator (deploying or attaching the
    contract) and the hospital actors. On any error everything started here is stopped.

    ``chain=False`` starts no coordinator and touches no chain: for methods that never use it
    (the FedAvg / FedProx / FedMD / Centralized baselines on their own). ``preload``: modules
    the caller needs soon, imported on a side thread from Ray's start on (see
    :func:`ensure_ray`). ``prepare``: called with ``ckpt_dir`` once every check has passed and
    before any actor starts, to make the folder ready (default: emptied, since checkpoints
    only restore an actor that Ray restarts within this federation). ``journal``: an
    interrupted run's signed transactions, replayed on the fresh chain (resume).
    """
    say = say or (lambda _msg: None)
    t0 = time.perf_counter()
    started_ray = ensure_ray(cfg.runtime.address, preload=preload)
    fed = Federation(cfg, run_id, data, part, None, [], started_ray)
    fed.timings["ray_seconds"] = time.perf_counter() - t0
    try:
        fed.plan = plan = plan_for(cfg)
        (prepare or _empty_folder)(Path(ckpt_dir))  # every check has passed
        say(plan.render())
        evals = EvalSplits(
            x_val=data.val.images, y_val=data.val.labels, x_test=data.test.images,
            y_test=data.test.labels, size=cfg.data.resize or cfg.data.size, rgb=cfg.data.rgb,
            normalize=cfg.data.normalize,
        )
        evals_ref = ray.put(evals)
        fed._refs.append(evals_ref)
        if chain:
            fed.coordinator = CoordinatorActor.options(  # type: ignore[attr-defined]
                **plan.coordinator_options()
            ).remote(
                cfg.chain.backend, cfg.chain.rpc_url, cfg.chain.contract, data.test.labels,
                data.n_classes, cfg.chain.weight_score,
                trust_config_of(cfg) if cfg.chain.mode == "trust" else None, journal,
            )
        gpu_tiers = {t.label for t in cfg.hospital_tiers()
                     if plan.ray_options(t.label)["num_gpus"] > 0}
        fed.specs = specs = hospital_specs(cfg, data, gpu_tiers, ckpt_dir)
        groups = actor_groups(cfg, plan, specs, part, len(data.val) + len(data.test))
        # Each process's shards and the evaluation splits reach it through the run's input
        # store, by name (see runtime.inputs): a process that Ray restarts after a crash
        # fetches them again, and no constructor argument lives in the object store.
        inputs: dict[str, list[Any]] = {}
        for _opts, chunk in groups:
            shards = [TrainShard(data.train.images[part.indices[s.index]],
                                 data.train.labels[part.indices[s.index]]) for s in chunk]
            fed._refs.append(ray.put(shards))
            inputs[chunk[0].hospital_id] = [fed._refs[-1], evals_ref]
        store = f"chainlearn-{run_id}-inputs"
        fed._store = InputStore.options(name=store).remote(inputs)  # type: ignore[attr-defined]
        fed._names.append(store)
        for opts, chunk in groups:
            fed._names.append(f"chainlearn-{run_id}-{chunk[0].hospital_id}")
            actor = HospitalActor.options(  # type: ignore[attr-defined]
                **opts, name=fed._names[-1],
            ).remote(chunk, ActorInputs(store, chunk[0].hospital_id),
                     opts.get("max_concurrency", 1))
            fed.actors.append(actor)
            fed.hosts.update({s.hospital_id: actor for s in chunk})
        fed.hosts = {s.hospital_id: fed.hosts[s.hospital_id] for s in specs}  # id order
        if chain:
            ray.get(fed.coordinator.attach_hospitals.remote(
                fed.hosts, poc_concurrency(plan.cluster_cpus)))
            fed.chain = ray.get(fed.coordinator.chain_info.remote())
            say(f"chain: {fed.chain['backend']} chain id {fed.chain['chain_id']}, FLCoordinator "
                f"at {fed.chain['contract']}")
        else:
            ray.get([a.ping.remote() for a in fed.actors])
        fed.timings["actors_seconds"] = time.perf_counter() - t0 - fed.timings["ray_seconds"]
    except BaseException:
        fed.close()
        raise
    return fed
