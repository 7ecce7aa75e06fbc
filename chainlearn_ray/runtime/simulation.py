"""One federated run of Ours on Ray, end to end: data and shards, actors, registration, rounds,
Parquet results."""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainlearn_ray.data.partition import alpha_name
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.clock import clock_record, config_record, cost_model_of
from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.experiment.privacy_config import privacy_record, target_epsilon
from chainlearn_ray.hospital.checkpoints import rewind_checkpoints
from chainlearn_ray.methods.names import OURS, OURS_TRUST
from chainlearn_ray.protocol.rounds import RoundOutcome
from chainlearn_ray.results.console import format_round, format_table
from chainlearn_ray.results.manifest import config_digest
from chainlearn_ray.results.privacy import target_rows
from chainlearn_ray.results.rows import RunKey, round_rows, setup_rows
from chainlearn_ray.results.run_folder import (
    check_out,
    check_resumable,
    clear_run,
    read_manifest,
    remove_if_empty,
)
from chainlearn_ray.results.run_record import RunRecord
from chainlearn_ray.results.schema import rows_to_frame
from chainlearn_ray.runtime.cluster import ensure_ray, plan_for, stop_ray
from chainlearn_ray.runtime.federation import Progress, open_federation
from chainlearn_ray.runtime.progress import Events

if TYPE_CHECKING:  # pandas loads when results are written, not for runs without a table
    import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["Progress", "RunSummary", "load_partitioned", "run_id_for", "run_simulation"]


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
    """The dataset of ``cfg`` and its Dirichlet partition over the configured hospitals.

    With DP asked for, every private hospital's δ and ε are checked against its shard here,
    before any actor starts (:func:`~chainlearn_ray.experiment.privacy_config.check_dp_shards`).
    """
    from chainlearn_ray.data.medmnist import load_dataset
    from chainlearn_ray.data.partition import dirichlet_partition
    from chainlearn_ray.experiment.privacy_config import check_dp_shards
    from chainlearn_ray.experiment.trust_method import hold_out_audit

    data = load_dataset(cfg.data.dataset, cfg.data.data_dir, size=cfg.data.size,
                        split_mode=cfg.data.split, download=cfg.data.download)
    part = dirichlet_partition(data.train.labels, cfg.n_hospitals, cfg.data.alpha,
                               seed=cfg.seed, min_size=cfg.data.min_shard,
                               strategy=cfg.data.partition_strategy)  # type: ignore[arg-type]
    check_dp_shards(cfg, [int(n) for n in part.class_counts.sum(axis=1)])
    return hold_out_audit(cfg, data), part


def run_simulation(cfg: RunConfig, out_dir: str | Path, *, progress: Progress | None = None,
                   method: str = "ours", first_round_early: bool = True,
                   existing: str = "refuse", events: Events | None = None) -> RunSummary:
    """Run one federated simulation end to end and write ``out_dir/results.parquet``.

    Parameters
    ----------
    cfg:
        The validated run configuration.
    out_dir:
        Results folder (created); ``results.parquet``, ``manifest.json``, ``receipts.json`` and
        ``journal.json`` are rewritten atomically after every round, so an interrupted run
        keeps what it finished. A run that fails before producing anything leaves nothing.
    progress:
        Receives human-readable progress lines (default: discard).
    method:
        Method name recorded in the results.
    first_round_early:
        Start round 1's training while the hospitals are registered on chain (results are the
        same). False keeps all of round 1 inside its own wall time, for studies of what a
        round costs.
    existing:
        A folder that already holds a run: ``refuse`` it (:class:`ConfigError`), ``resume``
        it (same config; the chain is rebuilt from its journal, the hospitals from their
        checkpoints, and the rounds not written yet are run) or ``overwrite`` it (its files
        are removed once every check of this run has passed).
    events:
        Receives live progress (:class:`~chainlearn_ray.runtime.progress.RunEvent`: a round's
        start, each hospital's step, drops, chain steps) while the run waits for the chain.
    """
    say = progress or (lambda _msg: None)
    t_start = time.perf_counter()
    out = Path(out_dir)
    check_out(out, existing)
    cost = cost_model_of(cfg)  # the clock's table (calibrate: measured once per machine)
    run_id = run_id_for(cfg)
    if cfg.chain.mode == "trust" and method == OURS:
        method = OURS_TRUST
    key = RunKey(run_id, cfg.data.dataset, float(cfg.data.alpha), int(cfg.seed), method)
    record = RunRecord(out, config_record(cfg, cost))  # records the table used
    done = 0
    if existing == "resume":
        done = check_resumable(read_manifest(out), record.conf, out)
        if done and cfg.chain.backend == "rpc":
            raise ConfigError("--resume: a run on an external chain (--rpc-url) cannot be "
                              "resumed, its chain moved on; start it again with --overwrite")
        if done:
            record = RunRecord.resume(out, record.conf, read_manifest(out))
    made = [p for p in (out, out / "checkpoints") if not p.exists()]  # children last

    data, part = load_partitioned(cfg)
    say(f"data: {data.flag} ({len(data.train)} train / {len(data.val)} val / "
        f"{len(data.test)} test, {data.n_classes} classes), {cfg.n_hospitals} hospitals, "
        f"alpha {alpha_name(cfg.data.alpha)}; shard sizes "
        f"{[int(n) for n in part.class_counts.sum(axis=1)]}")
    t_data = time.perf_counter()

    def prepare(ckpt: Path) -> None:  # every check has passed: only now is anything removed
        if done:
            rewind_checkpoints(ckpt, [h["hospital_id"] for h in record.facts["hospitals"]], done)
            return
        if existing != "refuse":
            clear_run(out)
        if not ckpt.exists():
            made.append(ckpt)  # removed again if this run produces nothing
        ckpt.mkdir(parents=True, exist_ok=True)

    fed: Any = None
    try:
        fed = open_federation(cfg, data, part, run_id, out / "checkpoints", say,
                              preload=("pyarrow.parquet",), prepare=prepare,
                              journal=record.transactions if done else None)
        t_actors = time.perf_counter()
        if events is not None:
            fed.watch(events)
        ours = fed.ours()
        plan = fed.plan_rounds(ours)
        if done:
            regs = fed.resume(record.facts["hospitals"], ours)
            say(f"resuming after round {done}: chain rebuilt from {len(record.transactions)} "
                "transactions, hospitals from their checkpoints")
        else:
            regs = fed.register(plan[1] if plan and first_round_early else None, method=ours)
            for r in regs:
                say(f"  {r['hospital_id']} hardware {r['hardware_tier']:<6} PoC "
                    f"{r['throughput']:8.1f} samples/s -> registered {r['tier']}")
            record.rows = setup_rows(key, regs, part.class_counts,
                                     {r["hospital_id"]: r["gas_register"] for r in regs})
            record.rows += target_rows(key, target_epsilon(cfg))
            record.facts = {
                "run_id": run_id, "status": "running", "chain": fed.chain,
                "clock": clock_record(cfg, cost),
                "data": {"flag": data.flag, "path": str(data.path) if data.path else None,
                         "n_classes": data.n_classes, "split_mode": data.split_mode,
                         "partition_attempts": int(part.attempts),
                         "partition_topped_up": bool(part.topped_up)},
                "hospitals": [dict(r) for r in regs], "rounds_completed": 0,
                "privacy": privacy_record(cfg),
            }
        record.facts["status"] = "running"
        record.facts.pop("error", None)  # of an earlier attempt of a resumed run
        record.persist(fed.receipts(), fed.journal())
        t_setup = time.perf_counter()

        outcomes: list[RoundOutcome] = []
        for outcome in fed.run_rounds({r: a for r, a in plan.items() if r > done}, say):
            outcomes.append(outcome)
            record.rows.extend(round_rows(key, outcome))
            record.facts["rounds_completed"] = outcome.round
            record.persist(fed.receipts(), fed.journal())
            say(format_round(outcome))
        if cfg.chain.mode == "trust":  # stakes, rewards, slashes and withdrawals
            record.rows.extend(fed.summary(key))
            record.persist(fed.receipts(), fed.journal())
        t_end = time.perf_counter()
        timings = {
            "data_seconds": t_data - t_start, **fed.timings,
            "registration_seconds": t_setup - t_actors,
            "rounds_seconds": t_end - t_setup, "total_seconds": t_end - t_start,
        }
        record.close("complete", timings=timings)
        summary = RunSummary(out, run_id, record.rows, outcomes, regs, fed.chain, timings)
        say(format_summary(summary))
        return summary
    except BaseException as exc:
        _close_unfinished(record, fed, exc, made)
        raise
    finally:
        if fed is not None:
            fed.close()


#: Seconds an interrupted run waits for the coordinator's receipts of the round under way.
UNFINISHED_RECEIPTS_WAIT = 3.0


def _close_unfinished(record: RunRecord, fed: Any, exc: BaseException,
                      made: list[Path]) -> None:
    """A run that stopped early: its manifest says why (interrupted or failed) and its receipts
    so far are written; a run that produced nothing leaves nothing behind."""
    if not record.written:
        for path in made:
            if path.name == "checkpoints" and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
        remove_if_empty(*sorted(set(made), key=lambda p: -len(p.parts)))  # children first
        return
    receipts = None
    with contextlib.suppress(Exception):  # the chain may be gone, or busy with the round:
        # then receipts.json stays as of the last round written
        receipts = fed.receipts(timeout=UNFINISHED_RECEIPTS_WAIT) if fed is not None else None
    # Ctrl-C, or SIGTERM (Ray's own handler turns it into SystemExit)
    interrupted = isinstance(exc, KeyboardInterrupt | SystemExit)
    with contextlib.suppress(Exception):  # the run's own error matters more
        record.close("interrupted" if interrupted else "failed", receipts,
                     error=None if interrupted else f"{type(exc).__name__}: {exc}")


def format_summary(summary: RunSummary) -> str:
    """The end-of-run table: per-hospital and ensemble metrics of the last round, and gas."""
    if not summary.rounds:
        return "no round completed"
    last = summary.rounds[-1]
    regs = {r["hospital_id"]: r for r in summary.registrations}
    table_rows: list[list[Any]] = []
    private = any(h.dp_epsilon is not None for h in last.hospitals)
    for h in last.hospitals:
        reg = regs.get(h.hospital_id, {})
        table_rows.append([
            h.hospital_id, f"{reg.get('hardware_tier', '')}->{h.tier}", h.status,
            h.accuracy, h.macro_f1, h.ece, h.weight if h.weight else None,
        ] + ([h.dp_epsilon] if private else []))
    ens = last.ensemble
    table_rows.append(["ensemble", "", f"{last.participants} models", ens.get("accuracy"),
                       ens.get("macro_f1"), ens.get("ece"), None] + ([None] if private else []))
    gas: dict[str, list[float]] = {}
    for row in summary.rows:
        if str(row["metric"]).startswith("gas_"):
            gas.setdefault(row["metric"], []).append(float(row["value"]))
    gas_text = ", ".join(f"{m[4:]} {sum(v) / len(v):,.0f}" for m, v in sorted(gas.items()))
    total = summary.timings.get("total_seconds", float("nan"))
    return "\n".join([
        f"Run {summary.run_id}: {len(summary.rounds)} rounds in {total:.1f}s -> {summary.out_dir}",
        format_table(["hospital", "tier", "status", "accuracy", "macro_f1", "ece", "weight"]
                     + (["ε spent"] if private else []), table_rows),
        f"mean gas per call: {gas_text}",
        *_trust_lines(summary.rows),
    ])


def _trust_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Trust mode: each hospital's rewards and slashes over the run, its stake after the last
    round and what it withdrew (ETH); nothing in seed mode."""
    per: dict[str, dict[str, float]] = {}
    last: dict[str, int] = {}
    for row in rows:
        metric, h = str(row["metric"]), str(row["hospital"])
        if metric in ("reward_wei", "slashed_wei"):
            per.setdefault(h, {}).setdefault(metric, 0.0)
            per[h][metric] += float(row["value"])
        elif metric == "stake_wei" and int(row["round"]) >= last.get(h, -1):
            last[h] = int(row["round"])
            per.setdefault(h, {})["stake_wei"] = float(row["value"])
        elif metric == "withdrawn_wei":
            per.setdefault(h, {})["withdrawn_wei"] = float(row["value"])
    if not per:
        return []
    eth = [[h, *(f"{v.get(m, 0.0) / 1e18:.6f}" for m in ("reward_wei", "slashed_wei",
                                                           "stake_wei", "withdrawn_wei"))]
           for h, v in sorted(per.items())]
    return ["stakes (ETH):", format_table(["hospital", "rewards", "slashed", "stake after",
                                           "withdrawn"], eth)]


def validate_only(cfg: RunConfig) -> str:
    """Resolve the resource plan without creating actors (for ``--dry-run``): the plan, its
    memory estimate and what a process that dies costs a round."""
    from chainlearn_ray.experiment.privacy_config import is_private
    from chainlearn_ray.runtime.dry_run import dry_run_report

    if is_private(cfg):  # the shards decide whether ε and δ can be met
        load_partitioned(cfg)

    started = ensure_ray(cfg.runtime.address)
    try:
        return dry_run_report(cfg, plan_for(cfg), cfg.runtime.address)
    finally:
        if started:
            stop_ray()

