"""One federated run on Ray: data and shards, actors, registration, rounds, Parquet results."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

from chainlearn_ray.data.partition import alpha_name
from chainlearn_ray.errors import ResourceError
from chainlearn_ray.experiment.clock import clock_record, config_record, cost_model_of
from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.hospital.spec import EvalSplits, HospitalSpec, TrainShard
from chainlearn_ray.planning.resources import arch_cost, balance
from chainlearn_ray.protocol.rounds import RoundOutcome, draw_attendance
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.results.atomic import write_json_atomic, write_rows_atomic
from chainlearn_ray.results.console import format_round, format_table
from chainlearn_ray.results.manifest import build_manifest, config_digest
from chainlearn_ray.results.rows import RunKey, round_rows, setup_rows
from chainlearn_ray.results.schema import rows_to_frame
from chainlearn_ray.runtime.cluster import ensure_ray, plan_for, poc_concurrency, stop_ray
from chainlearn_ray.runtime.coordinator_actor import CoordinatorActor
from chainlearn_ray.runtime.hospital_actor import HospitalActor
from chainlearn_ray.runtime.inputs import ActorInputs, InputStore

if TYPE_CHECKING:  # pandas loads when results are written, not for runs without a table
    import pandas as pd

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class RunSummary:
    """What a finished run returns: where results are and the headline numbers."""

    out_dir: Path
    run_id: str
    rows: list[dict[str, Any]]
    rounds: list[RoundOutcome] = field(default_factory=list)
    registrations: list[dict[str, Any]] = field(default_factory=list)
    chain: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def frame(self) -> pd.DataFrame:
        """The results as written to ``results.parquet`` (pandas is loaded on first use)."""
        return rows_to_frame(self.rows)


def run_id_for(cfg: RunConfig) -> str:
    """The run id of ``cfg``: its name and a digest of the whole config."""
    return f"{cfg.name}-{config_digest(cfg.to_dict())}"


def load_partitioned(cfg: RunConfig) -> tuple[Any, Any]:
    """The dataset of ``cfg`` and its Dirichlet partition over the configured hospitals."""
    from chainlearn_ray.data.medmnist import load_dataset
    from chainlearn_ray.data.partition import dirichlet_partition

    data = load_dataset(cfg.data.dataset, cfg.data.data_dir, size=cfg.data.size,
                        split_mode=cfg.data.split, download=cfg.data.download)
    part = dirichlet_partition(data.train.labels, cfg.n_hospitals, cfg.data.alpha,
                               seed=cfg.seed, min_size=cfg.data.min_shard,
                               strategy=cfg.data.partition_strategy)  # type: ignore[arg-type]
    return data, part


def _hospital_specs(cfg: RunConfig, data: Any, plan: Any, ckpt: Path) -> list[HospitalSpec]:
    rgb = cfg.data.rgb
    cost = cost_model_of(cfg)  # None on the measured clock
    specs = []
    for index, tier in enumerate(cfg.hospital_tiers()):
        tc = cfg.tiers[tier.label]
        specs.append(HospitalSpec(
            hospital_id=f"h{index:02d}", index=index, hardware_tier=tier,
            arch_by_tier={label: t.arch for label, t in cfg.tiers.items()},
            seed=cfg.seed, n_classes=data.n_classes,
            in_channels=3 if rgb else data.n_channels,
            target_throughput=tc.target_throughput, threads=tc.threads,
            throttle=cfg.runtime.throttle, cost_model=cost,
            device="cuda" if plan.ray_options(tier.label)["num_gpus"] > 0 else "cpu",
            batch_size=cfg.train.batch_size, lr=cfg.train.lr, pretrained=cfg.train.pretrained,
            checkpoint_dir=str(ckpt), faults=tuple(cfg.runtime.faults),
        ))
    return specs


class Federation:
    """The live actors of one run: a coordinator, the hospital actors, and their chain identity.

    Built by :func:`open_federation`; the study engine and :func:`run_simulation` drive it.
    ``close()`` stops every actor (and Ray, when this federation started it).
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

    def _need_chain(self, what: str) -> None:
        if self.coordinator is None:
            raise ResourceError(f"{what} needs the chain: open the federation with chain=True")

    @property
    def hardware(self) -> dict[str, str]:
        """hospital id -> label of its simulated hardware tier."""
        return {s.hospital_id: s.hardware_tier.label for s in self.specs}

    def register(self, first_attending: list[str] | None = None, *, verify_claims: bool = True,
                 reuse: bool = False) -> list[dict[str, Any]]:
        """Every hospital runs its PoC and is registered with the tier it measured.

        ``first_attending``: who attends round 1, whose training then starts while the
        coordinator registers the hospitals on chain; round 1 must be run with them.
        ``verify_claims`` and ``reuse``: see ``CoordinatorActor.register_all`` and
        ``Hospital.run_poc`` (the study's variants).
        """
        self._need_chain("registration")
        cfg = self.cfg
        poc = {"steps": cfg.poc.steps, "warmup": cfg.poc.warmup,
               "batch_size": cfg.poc.batch_size, "weak_below": cfg.poc.weak_below,
               "medium_below": cfg.poc.medium_below, "reuse": reuse}
        regs = ray.get(self.coordinator.register_all.remote(
            poc, poc_concurrency(self.plan.cluster_cpus), verify_claims,
            ahead=None if first_attending is None else (1, first_attending, cfg.train.epochs)))
        hw = self.hardware
        for r in regs:
            r["hardware_tier"] = hw[r["hospital_id"]]
        self.registrations = regs
        return regs

    def run_round(self, round_: int, attending: list[str], epochs: int | None = None,
                  next_attending: list[str] | None = None) -> RoundOutcome:
        """One round of Ours with ``attending`` hospitals (``epochs`` default: the config's).

        ``next_attending``: who attends the next round, whose training may then start in each
        process as soon as that process is through this round (see ``CoordinatorActor.
        run_round``); that round must then be run with the same hospitals.
        """
        self._need_chain("a round of Ours")
        cfg = self.cfg
        return ray.get(self.coordinator.run_round.remote(
            round_, attending, cfg.train.epochs if epochs is None else epochs,
            cfg.runtime.deadline, cfg.runtime.round_timeout, next_attending,
        ))

    def attendance_plan(self, attendance: dict[str, float]) -> dict[int, list[str]]:
        """Round -> the hospitals attending it, for every round of the config, each hospital
        attending with its probability (:func:`draw_attendance`, seeded per round)."""
        return {r: [h for h, yes in draw_attendance(self.cfg.seed, r, list(self.hosts),
                                                    attendance).items() if yes]
                for r in range(1, self.cfg.train.rounds + 1)}

    def run_rounds(self, plan: dict[int, list[str]],
                   announce: Progress | None = None) -> Iterator[RoundOutcome]:
        """The rounds of ``plan`` (:meth:`attendance_plan`) in order; a process starts its next
        round's training as soon as it is through the current one."""
        for r in sorted(plan):
            if announce is not None:
                announce(f"round {r}: training {', '.join(plan[r]) or 'nobody'}")
            yield self.run_round(r, plan[r], next_attending=plan.get(r + 1))

    def receipts(self) -> list[dict[str, Any]]:
        """Every transaction of the federation so far (none without a chain)."""
        if self.coordinator is None:
            return []
        return list(ray.get(self.coordinator.receipts.remote()))

    def close(self) -> None:
        """Stop the coordinator and the hospital actors (and Ray, if this federation started it)."""
        if self.coordinator is not None:
            try:
                ray.get(self.coordinator.close.remote(), timeout=30)
            except Exception:  # the run's own error matters more than cleanup's
                logger.debug("coordinator close failed", exc_info=True)
        others = [a for a in (self.coordinator, self._store) if a is not None]
        for actor in [*self.actors, *others]:
            ray.kill(actor)
        names, self._names = self._names, []
        self.actors, self.coordinator, self._refs, self._store = [], None, [], None
        if self.started_ray:
            stop_ray()
            self.started_ray = False
        else:  # Ray stays up: a next federation of the same run may reuse the actors' names
            _await_names_free(names)


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


#: Cost of scoring one sample relative to training on it (a forward pass against forward,
#: backward and update).
EVAL_COST = 1 / 3


def _actor_groups(cfg: RunConfig, plan: Any, specs: list[HospitalSpec], part: Any,
                  n_eval: int) -> list[tuple[dict[str, Any], list[HospitalSpec]]]:
    """Which hospitals share which actor process, with that process's Ray options.

    Shared processes are balanced by each hospital's work in a round: training on its shard
    for the configured epochs and scoring the ``n_eval`` validation and test samples, which
    every hospital does whatever its shard (at 10 hospitals on PneumoniaMNIST, 40 % of the
    work). Balancing the shards alone put 4 and 6 hospitals in two processes there.
    """
    if plan.mixed_processes:
        costs = {s.hospital_id: (len(part.indices[s.index]) * cfg.train.epochs
                                 + n_eval * EVAL_COST)
                 * arch_cost(cfg.tiers[s.hardware_tier.label].arch) for s in specs}
        by_id = {s.hospital_id: s for s in specs}
        opts: dict[str, Any] = {"num_cpus": plan.mixed_cpus, "num_gpus": 0, "resources": {}}
        if plan.mixed_threads > 1:  # hospitals of the process train on this many threads
            opts["max_concurrency"] = plan.mixed_threads
        return [(dict(opts), [by_id[h] for h in group])
                for group in balance(costs, plan.mixed_processes)]
    groups: list[tuple[dict[str, Any], list[HospitalSpec]]] = []
    for tier in (Tier.WEAK, Tier.MEDIUM, Tier.STRONG):
        per = plan.per_actor.get(tier.label, 1)
        members = [s for s in specs if s.hardware_tier == tier]
        groups.extend((plan.ray_options(tier.label), members[i:i + per])
                      for i in range(0, len(members), per))
    return groups


def open_federation(cfg: RunConfig, data: Any, part: Any, run_id: str, ckpt_dir: Path,
                    say: Progress | None = None, *, chain: bool = True,
                    preload: Sequence[str] = ()) -> Federation:
    """Connect to Ray, validate resources, create the coordinator (deploying or attaching the
    contract) and the hospital actors. On any error everything started here is stopped.

    ``chain=False`` starts no coordinator and touches no chain: for methods that never use it
    (the FedAvg / FedProx / FedMD / Centralized baselines on their own). ``preload``: modules
    the caller needs soon, imported on a side thread from Ray's start on (see
    :func:`ensure_ray`).
    """
    say = say or (lambda _msg: None)
    # checkpoints only restore an actor that Ray restarts within this federation: whatever an
    # earlier run left in the folder (another config, or a finished run) must not leak in
    if Path(ckpt_dir).exists():
        shutil.rmtree(ckpt_dir)
    Path(ckpt_dir).mkdir(parents=True)
    t0 = time.perf_counter()
    started_ray = ensure_ray(cfg.runtime.address, preload=preload)
    fed = Federation(cfg, run_id, data, part, None, [], started_ray)
    fed.timings["ray_seconds"] = time.perf_counter() - t0
    try:
        fed.plan = plan = plan_for(cfg)
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
                data.n_classes,
            )
        fed.specs = specs = _hospital_specs(cfg, data, plan, ckpt_dir)
        groups = _actor_groups(cfg, plan, specs, part, len(data.val) + len(data.test))
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
            ray.get(fed.coordinator.attach_hospitals.remote(fed.hosts))
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


def run_simulation(cfg: RunConfig, out_dir: str | Path, *, progress: Progress | None = None,
                   method: str = "ours", first_round_early: bool = True) -> RunSummary:
    """Run one federated simulation end to end and write ``out_dir/results.parquet``.

    Parameters
    ----------
    cfg:
        The validated run configuration.
    out_dir:
        Results folder (created); ``results.parquet``, ``manifest.json`` and ``receipts.json``
        are rewritten atomically after every round, so an interrupted run keeps what it finished.
    progress:
        Receives human-readable progress lines (default: discard).
    method:
        Method name recorded in the results.
    first_round_early:
        Start round 1's training while the hospitals are registered on chain (results are the
        same). False keeps all of round 1 inside its own wall time, for studies of what a
        round costs.
    """
    say = progress or (lambda _msg: None)
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cost = cost_model_of(cfg)  # the clock's table (calibrate: measured once per machine)
    conf_dict = config_record(cfg, cost)  # records the table used
    run_id = run_id_for(cfg)
    key = RunKey(run_id, cfg.data.dataset, float(cfg.data.alpha), int(cfg.seed), method)

    data, part = load_partitioned(cfg)
    say(f"data: {data.flag} ({len(data.train)} train / {len(data.val)} val / "
        f"{len(data.test)} test, {data.n_classes} classes), {cfg.n_hospitals} hospitals, "
        f"alpha {alpha_name(cfg.data.alpha)}; shard sizes "
        f"{[int(n) for n in part.class_counts.sum(axis=1)]}")
    t_data = time.perf_counter()

    fed = open_federation(cfg, data, part, run_id, out / "checkpoints", say,
                          preload=("pyarrow.parquet",))
    try:
        t_actors = time.perf_counter()
        plan = fed.attendance_plan({s.hospital_id: cfg.tiers[s.hardware_tier.label].attendance
                                    for s in fed.specs})
        regs = fed.register(first_attending=plan[1] if plan and first_round_early else None)
        for r in regs:
            say(f"  {r['hospital_id']} hardware {r['hardware_tier']:<6} PoC "
                f"{r['throughput']:8.1f} samples/s -> registered {r['tier']}")
        rows = setup_rows(key, regs, part.class_counts,
                          {r["hospital_id"]: r["gas_register"] for r in regs})
        facts: dict[str, Any] = {
            "run_id": run_id, "status": "running", "chain": fed.chain,
            "clock": clock_record(cfg, cost),
            "data": {"flag": data.flag, "path": str(data.path) if data.path else None,
                     "n_classes": data.n_classes, "split_mode": data.split_mode,
                     "partition_attempts": int(part.attempts),
                     "partition_topped_up": bool(part.topped_up)},
            "hospitals": [dict(r) for r in regs],
        }
        _persist(out, conf_dict, facts, rows)
        t_setup = time.perf_counter()

        outcomes: list[RoundOutcome] = []
        for outcome in fed.run_rounds(plan, say):
            outcomes.append(outcome)
            rows.extend(round_rows(key, outcome))
            facts["rounds_completed"] = outcome.round
            _persist(out, conf_dict, facts, rows)
            say(format_round(outcome))
        write_json_atomic(fed.receipts(), out / "receipts.json")
        t_end = time.perf_counter()
        timings = {
            "data_seconds": t_data - t_start, **fed.timings,
            "registration_seconds": t_setup - t_actors,
            "rounds_seconds": t_end - t_setup, "total_seconds": t_end - t_start,
        }
        facts.update(status="complete", timings=timings)
        _persist(out, conf_dict, facts, rows)
        summary = RunSummary(out, run_id, rows, outcomes, regs, fed.chain, timings)
        say(format_summary(summary))
        return summary
    finally:
        fed.close()


def _persist(out: Path, conf: dict[str, Any], facts: dict[str, Any],
             rows: list[dict[str, Any]]) -> None:
    """Rewrite the run's results and manifest (pyarrow only: the driver never loads pandas)."""
    write_rows_atomic(rows, out / "results.parquet")
    write_json_atomic(build_manifest(conf, **facts), out / "manifest.json")


def format_summary(summary: RunSummary) -> str:
    """The end-of-run table: per-hospital and ensemble metrics of the last round, and gas."""
    if not summary.rounds:
        return "no round completed"
    last = summary.rounds[-1]
    regs = {r["hospital_id"]: r for r in summary.registrations}
    table_rows: list[list[Any]] = []
    for h in last.hospitals:
        reg = regs.get(h.hospital_id, {})
        table_rows.append([
            h.hospital_id, f"{reg.get('hardware_tier', '')}->{h.tier}", h.status,
            h.accuracy, h.macro_f1, h.ece, h.weight if h.weight else None,
        ])
    ens = last.ensemble
    table_rows.append(["ensemble", "", f"{last.participants} models", ens.get("accuracy"),
                       ens.get("macro_f1"), ens.get("ece"), None])
    gas: dict[str, list[float]] = {}
    for row in summary.rows:
        if str(row["metric"]).startswith("gas_"):
            gas.setdefault(row["metric"], []).append(float(row["value"]))
    gas_text = ", ".join(f"{m[4:]} {sum(v) / len(v):,.0f}" for m, v in sorted(gas.items()))
    total = summary.timings.get("total_seconds", float("nan"))
    return "\n".join([
        f"Run {summary.run_id}: {len(summary.rounds)} rounds in {total:.1f}s -> {summary.out_dir}",
        format_table(["hospital", "tier", "status", "accuracy", "macro_f1", "ece", "weight"],
                     table_rows),
        f"mean gas per call: {gas_text}",
    ])


def validate_only(cfg: RunConfig) -> str:
    """Resolve the resource plan without creating actors (for ``--dry-run``)."""
    started = ensure_ray(cfg.runtime.address)
    try:
        return plan_for(cfg).render()
    finally:
        if started:
            stop_ray()

