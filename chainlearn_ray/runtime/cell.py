"""A study cell on Ray: Ours, its post-hoc methods, its retrained variants and the attacks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray

from chainlearn_ray.data.partition import alpha_name
from chainlearn_ray.errors import ChainlearnError
from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.experiment.study import StudyConfig
from chainlearn_ray.hospital.spec import Behaviour, shard_positions
from chainlearn_ray.methods import names
from chainlearn_ray.methods.ablations import ablation_inputs, no_poc_arch_by_tier, no_poc_tier
from chainlearn_ray.methods.attacks import InflatedAttack, LazyAttack, SpoofAttack
from chainlearn_ray.methods.comm import comm_rows, ours_comm_bytes
from chainlearn_ray.methods.evaluation import POSTHOC_METHODS, HospitalRecord, evaluate_posthoc
from chainlearn_ray.methods.names import budget_rows
from chainlearn_ray.protocol.rounds import DROPOUT_ATTENDANCE
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.protocol.weights import compute_weight
from chainlearn_ray.results.console import format_round
from chainlearn_ray.results.manifest import build_manifest
from chainlearn_ray.results.rows import RunKey, cost_rows, round_rows, setup_rows
from chainlearn_ray.results.schema import rows_to_frame
from chainlearn_ray.results.store import write_json_atomic, write_parquet_atomic
from chainlearn_ray.runtime.simulation import (
    Federation,
    load_partitioned,
    open_federation,
    run_id_for,
)

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

#: Baselines another module trains on the same actors.
BASELINES: tuple[str, ...] = (names.CENTRALIZED, names.FEDAVG, names.FEDPROX, names.FEDMD)


class ChainWeightMismatch(ChainlearnError):
    """The contract's weight view and the Python formula disagree: the deployed contract is not
    the one this package ships; redeploy it from the packaged artifact."""


@dataclass(frozen=True)
class Variant:
    """One training of the cell's hospitals on its own fresh deployment.

    Attributes
    ----------
    method:
        Result method name.
    behaviours:
        Hospital id -> behaviour (absent: honest).
    verify_claims:
        The coordinator checks capacity claims against the benchmarks (PoC on).
    attendance:
        Hardware tier label -> attendance probability (``None``: the configuration's).
    """

    method: str
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    verify_claims: bool = True
    attendance: dict[str, float] | None = None


def cell_variants(cfg: RunConfig, study: StudyConfig, hardware: dict[str, str]) -> list[Variant]:
    """The retrained variants of a cell selected by ``study`` (Ours itself excluded).

    The lazy (and inflated) attacker is the first Strong-hardware hospital (else the last); the
    spoofer the first Weak-hardware hospital (else the first).
    """
    ids = list(hardware)
    strong = [h for h in ids if hardware[h] == "strong"]
    weak = [h for h in ids if hardware[h] == "weak"]
    lazy_id = strong[0] if strong else ids[-1]
    spoof_id = weak[0] if weak else ids[0]
    out: list[Variant] = []
    if names.OURS_DROPOUT in study.methods:
        out.append(Variant(names.OURS_DROPOUT, attendance=dict(DROPOUT_ATTENDANCE)))
    if names.ablation_method("no_poc") in study.methods:
        arch = no_poc_arch_by_tier(cfg.tiers["medium"].arch)
        claim = no_poc_tier(Tier.MEDIUM).label
        out.append(Variant(names.ablation_method("no_poc"),
                           {h: Behaviour(arch_by_tier=arch, claimed_tier=claim) for h in ids},
                           verify_claims=False))
    if "lazy" in study.attacks:
        lazy = LazyAttack(ids.index(lazy_id))
        out.append(Variant(lazy.method, {lazy_id: Behaviour(total_epochs=lazy.epochs)}))
    if "inflated" in study.attacks:
        inflated = InflatedAttack(ids.index(lazy_id))
        out.append(Variant(inflated.method, {lazy_id: Behaviour(
            total_epochs=inflated.epochs,
            reported=(inflated.confidence_fixed, inflated.ece_fixed))}))
    if "spoof" in study.attacks:
        for poc in (False, True):
            spoof = SpoofAttack(ids.index(spoof_id), poc=poc)
            out.append(Variant(spoof.method, {spoof_id: Behaviour(
                claimed_tier=spoof.claimed, data_fraction=spoof.data_fraction)},
                verify_claims=poc))
    return out


class _Cell:
    """Rows, manifest facts and the atomic files of one cell."""

    def __init__(self, cfg: RunConfig, study: StudyConfig, out: Path, key: RunKey) -> None:
        self.cfg, self.study, self.out, self.key = cfg, study, out, key
        self.conf = cfg.to_dict()
        self.rows: list[dict[str, Any]] = []
        self.facts: dict[str, Any] = {"run_id": key.run_id, "status": "running",
                                      "study": study.to_dict(), "methods_done": [],
                                      "methods_skipped": {}, "deployments": {}, "timings": {}}

    def done(self, method: str, rows: list[dict[str, Any]], started: float) -> pd.DataFrame:
        self.rows.extend(rows)
        self.facts["methods_done"].append(method)
        self.facts["timings"][method] = time.perf_counter() - started
        return self.persist()

    def persist(self) -> pd.DataFrame:
        frame = rows_to_frame(self.rows)
        write_parquet_atomic(frame, self.out / "results.parquet")
        write_json_atomic(build_manifest(self.conf, **self.facts), self.out / "manifest.json")
        return frame


def run_cell(cfg: RunConfig, study: StudyConfig, out_dir: str | Path, *,
             progress: Progress | None = None) -> pd.DataFrame:
    """Run one study cell (one dataset, α and seed) and write its results.

    Ours trains once; EqualWt-Ens, Local-*, Local-Best and the post-hoc ablations re-combine
    its final models with weights from the contract's weight view; the baselines run through
    :func:`chainlearn_ray.runtime.baselines.run_baseline`; Ours-Dropout, No PoC and the attacks
    retrain the same actors, reset to fresh, each on a fresh contract deployment.

    Parameters
    ----------
    cfg:
        The validated run configuration of the cell.
    study:
        Which methods and attacks to run, and their settings.
    out_dir:
        Folder of ``results.parquet`` and ``manifest.json`` (rewritten atomically as each
        method finishes, so an interruption keeps the finished ones).
    progress:
        Receives human-readable progress lines (default: discard).

    Returns
    -------
    pandas.DataFrame
        The tidy rows (:mod:`chainlearn_ray.results.schema`).
    """
    say = progress or (lambda _msg: None)
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_id = run_id_for(cfg)
    key = RunKey(run_id, cfg.data.dataset, float(cfg.data.alpha), int(cfg.seed), names.OURS)
    cell = _Cell(cfg, study, out, key)
    data, part = load_partitioned(cfg)
    say(f"cell {cfg.data.dataset} alpha {alpha_name(cfg.data.alpha)} seed {cfg.seed}: "
        f"{cfg.n_hospitals} hospitals, methods {', '.join(study.methods)}; attacks "
        f"{', '.join(study.attacks) or 'none'}")
    cell.facts["data"] = {"flag": data.flag, "n_classes": data.n_classes,
                          "split_mode": data.split_mode}
    fed = open_federation(cfg, data, part, run_id, out / "checkpoints", say)
    try:
        started = time.perf_counter()
        cell.facts["timings"]["setup"] = started - t_start
        ours = _train(fed, Variant(names.OURS), key, study, say, fresh=False)
        cell.facts["hospitals"] = ours.registrations
        selected = names.OURS in study.methods
        frame = cell.done(names.OURS, ours.rows if selected else [], started)
        posthoc = [m for m in POSTHOC_METHODS if m in study.methods]
        if posthoc:
            started = time.perf_counter()
            rows = _posthoc(fed, key, posthoc, cfg.train.rounds, data.test.labels,
                            data.n_classes, chain_rows=selected)
            for method in posthoc:
                rows += budget_rows(key, method, cfg.train.rounds, cfg.train.epochs)
            frame = cell.done("posthoc", rows, started)
            say(f"post-hoc on Ours' models: {', '.join(posthoc)}")
        for method in (m for m in BASELINES if m in study.methods):
            started = time.perf_counter()
            rows_b = _baseline(fed, method, study, key)
            if rows_b is None:
                cell.facts["methods_skipped"][method] = "chainlearn_ray.runtime.baselines missing"
                continue
            frame = cell.done(method, rows_b, started)
        for variant in cell_variants(cfg, study, fed.hardware):
            started = time.perf_counter()
            result = _train(fed, variant, key, study, say, fresh=True)
            cell.facts["deployments"][variant.method] = result.chain
            frame = cell.done(variant.method, result.rows, started)
        cell.facts.update(status="complete")
        cell.facts["timings"]["total"] = time.perf_counter() - t_start
        frame = cell.persist()
        say(f"cell done in {time.perf_counter() - t_start:.1f}s -> {out}")
        return frame
    finally:
        fed.close()


@dataclass
class _Trained:
    rows: list[dict[str, Any]]
    registrations: list[dict[str, Any]]
    chain: dict[str, Any]


def _train(fed: Federation, variant: Variant, key: RunKey, study: StudyConfig, say: Progress,
           *, fresh: bool) -> _Trained:
    """Register and run every round of ``variant``; ``fresh``: reset hospitals and redeploy."""
    cfg = fed.cfg
    vkey = RunKey(key.run_id, key.dataset, key.alpha, key.seed, variant.method)
    chain = fed.chain
    if fresh:
        chain = ray.get(fed.coordinator.redeploy.remote())
        ray.get([fed.hosts[h].reset.remote(h, variant.behaviours.get(h)) for h in fed.hosts])
    hardware = fed.hardware
    rates = variant.attendance or {t: c.attendance for t, c in cfg.tiers.items()}
    plan = fed.attendance_plan({h: rates[hardware[h]] for h in fed.hosts})
    regs = fed.register(plan[1] if plan else None, verify_claims=variant.verify_claims,
                        reuse=fresh)
    for r in regs:
        say(f"  [{variant.method}] {r['hospital_id']} hardware {r['hardware_tier']} claimed "
            f"{r['claimed_tier']} -> registered {r['tier']}")
    rows = setup_rows(vkey, regs, _class_counts(fed, variant),
                      {r["hospital_id"]: r["gas_register"] for r in regs})
    for r in regs:
        h, tier = r["hospital_id"], r["tier"]
        rows.append(names.result_row(key, variant.method, 0, h, tier, "claim_accepted",
                                     float(r["claimed_tier"] == tier)))
        if h in variant.behaviours and variant.method.startswith("attack:"):
            rows.append(names.result_row(key, variant.method, 0, h, tier, "attacker", 1.0))
    tiers = {r["hospital_id"]: r["tier"] for r in regs}
    for outcome in fed.run_rounds(plan):
        rows.extend(round_rows(vkey, outcome))
        say(f"[{variant.method}] " + format_round(outcome))
    calldata = ray.get(fed.coordinator.calldata_lengths.remote())
    participants = {int(r["round"]): int(r["value"]) for r in rows
                    if r["metric"] == "participants"}
    for round_, lengths in sorted(calldata.items()):
        for h, n_bytes in lengths.items():
            rows.extend(comm_rows(vkey, variant.method, round_, h, tiers[h],
                                  ours_comm_bytes(n_bytes, participants.get(round_, 0))))
    idents = ray.get([fed.hosts[h].ping.remote() for h in _unique(fed)])
    for ident in (i for group in idents for i in group):
        rows.append(names.result_row(key, variant.method, cfg.train.rounds, ident["hospital_id"],
                                     tiers[ident["hospital_id"]], "epochs_trained",
                                     ident["epochs_trained"]))
    rows += budget_rows(key, variant.method, cfg.train.rounds, cfg.train.epochs)
    rows += cost_rows(rows, study.gas_price_gwei, study.eth_price_usd)
    return _Trained(rows, regs, chain)


def _unique(fed: Federation) -> list[str]:
    """One hospital id per actor (a packed actor answers for all its hospitals)."""
    seen: dict[int, str] = {}
    for h, actor in fed.hosts.items():
        seen.setdefault(id(actor), h)
    return list(seen.values())


def _class_counts(fed: Federation, variant: Variant) -> np.ndarray:
    """Per-hospital class counts of what each hospital trains on under ``variant``."""
    counts = np.array(fed.part.class_counts, copy=True)
    labels = np.asarray(fed.data.train.labels).reshape(-1)
    for spec in fed.specs:
        behaviour = variant.behaviours.get(spec.hospital_id)
        if behaviour is None or behaviour.data_fraction >= 1.0:
            continue
        shard = labels[fed.part.indices[spec.index]]
        pos = shard_positions(len(shard), behaviour.data_fraction, spec.seed, spec.index)
        counts[spec.index] = np.bincount(shard[pos], minlength=counts.shape[1])
    return counts


def _posthoc(fed: Federation, key: RunKey, methods: list[str], round_: int,
             labels: np.ndarray, n_classes: int, *, chain_rows: bool) -> list[dict[str, Any]]:
    """Post-hoc rows on Ours' final models, every ablated weight from ``calculateWeightPure``.

    ``chain_rows``: add Ours' rows of the on-chain state the weights were computed from
    (``chain_confidence``, ``chain_ece``, ``chain_rounds`` per hospital).
    """
    raw = ray.get(fed.coordinator.hospital_records.remote())
    hardware = fed.hardware
    records = [HospitalRecord(
        hospital_id=r["hospital_id"], hardware_tier=Tier.parse(hardware[r["hospital_id"]]),
        tier=Tier.parse(r["tier"]), confidence_fixed=int(r["confidence_fixed"]),
        ece_fixed=int(r["ece_fixed"]), rounds_participated=int(r["rounds_participated"]),
        val_accuracy=float(r["val_accuracy"]), test_probs=np.asarray(r["test_probs"]),
    ) for r in raw]
    ablations = [None, *(m for m in methods if m.startswith("ablation:"))]
    wanted = sorted({_inputs_key(ablation_inputs(a, r.tier, r.confidence_fixed, r.ece_fixed,
                                                 r.rounds_participated))
                     for a in ablations for r in records})
    on_chain = dict(zip(wanted, ray.get(fed.coordinator.weights_pure.remote(wanted)),
                        strict=True))
    for inputs, weight in on_chain.items():
        if compute_weight(*inputs) != weight:
            raise ChainWeightMismatch(f"calculateWeightPure{inputs} = {weight} on chain but "
                                      f"{compute_weight(*inputs)} in Python")

    def chain_weight(tier: Tier, conf: int, ece: int, rounds: int) -> int:
        return on_chain[_inputs_key((tier, conf, ece, rounds))]

    rows = evaluate_posthoc(records, labels, n_classes, key=key, round_=round_,
                            methods=methods, weight_fn=chain_weight)
    for r in records if chain_rows else []:
        for metric, value in (("chain_confidence", r.confidence_fixed),
                              ("chain_ece", r.ece_fixed),
                              ("chain_rounds", r.rounds_participated)):
            rows.append(names.result_row(key, names.OURS, round_, r.hospital_id, r.tier.label,
                                         metric, value))
    return rows


def _inputs_key(inputs: tuple[Tier, int, int, int]) -> tuple[int, int, int, int]:
    tier, conf, ece, rounds = inputs
    return int(Tier.parse(tier)), int(conf), int(ece), int(rounds)


def _baseline(fed: Federation, method: str, study: StudyConfig,
              key: RunKey) -> list[dict[str, Any]] | None:
    """Rows of one baseline from :mod:`chainlearn_ray.runtime.baselines` (``None``: absent)."""
    try:
        from chainlearn_ray.runtime import baselines
    except ImportError:
        logger.warning("%s skipped: chainlearn_ray.runtime.baselines is not available", method)
        return None
    bkey = RunKey(key.run_id, key.dataset, key.alpha, key.seed, method)
    rows: list[dict[str, Any]] = list(baselines.run_baseline(fed, method, study, bkey))
    return rows
