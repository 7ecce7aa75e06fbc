"""A study cell on Ray: Ours, its post-hoc methods, its retrained variants and the attacks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray

from chainlearn_ray.data.partition import alpha_name
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.experiment.methods import BASELINES, cell_variants
from chainlearn_ray.experiment.privacy_config import privacy_record, target_epsilon
from chainlearn_ray.experiment.study import StudyConfig
from chainlearn_ray.hospital.spec import Behaviour, shard_positions
from chainlearn_ray.methods import names
from chainlearn_ray.methods.evaluation import POSTHOC_METHODS, majority_rows
from chainlearn_ray.methods.names import budget_rows
from chainlearn_ray.methods.ours import Ours
from chainlearn_ray.results.console import format_round
from chainlearn_ray.results.manifest import build_manifest
from chainlearn_ray.results.privacy import target_rows
from chainlearn_ray.results.rows import RunKey, cost_rows, setup_rows
from chainlearn_ray.results.schema import rows_to_frame
from chainlearn_ray.results.store import write_json_atomic, write_parquet_atomic
from chainlearn_ray.runtime.federation import Federation, open_federation
from chainlearn_ray.runtime.simulation import load_partitioned, run_id_for

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

class _Cell:
    """Rows, manifest facts and the atomic files of one cell."""

    def __init__(self, cfg: RunConfig, study: StudyConfig, out: Path, key: RunKey) -> None:
        self.cfg, self.study, self.out, self.key = cfg, study, out, key
        self.conf = cfg.to_dict()
        self.rows: list[dict[str, Any]] = target_rows(key, target_epsilon(cfg))
        self.facts: dict[str, Any] = {"run_id": key.run_id, "status": "running",
                                      "privacy": privacy_record(cfg),
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
    if cfg.chain.mode != "seed":  # checked before anything starts
        raise ConfigError("a study cell runs the seed protocol and its variants: set "
                          "chain.mode: seed (the trust-mode study runs with chainlearn defences)")
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
        ours = _train(fed, names.OURS, fed.ours(), key, study, say)
        cell.facts["hospitals"] = ours.registrations
        cell.done(names.MAJORITY, majority_rows(key, fed.part.class_counts, data.test.labels,
                                                data.n_classes), time.perf_counter())
        selected = names.OURS in study.methods
        frame = cell.done(names.OURS, ours.rows if selected else [], started)
        posthoc = [m for m in POSTHOC_METHODS if m in study.methods]
        if posthoc:  # on Ours' final models, before any variant retrains them
            started = time.perf_counter()
            rows = list(ray.get(fed.coordinator.posthoc.remote(
                posthoc, key, cfg.train.rounds, fed.hardware, selected)))
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
            result = _train(fed, variant.method, variant.ours(cfg, fed.hardware), key, study, say)
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


def _train(fed: Federation, name: str, method: Ours, key: RunKey, study: StudyConfig,
           say: Progress) -> _Trained:
    """Register and run every round of ``method`` (Ours, or a variant: a fresh method resets
    the hospitals and gets a fresh deployment); its rows under method name ``name``."""
    cfg = fed.cfg
    vkey = replace(key, method=name)
    plan = fed.plan_rounds(method)
    regs = fed.register(plan[1] if plan else None, method=method)
    for r in regs:
        say(f"  [{name}] {r['hospital_id']} hardware {r['hardware_tier']} claimed "
            f"{r['claimed_tier']} -> registered {r['tier']}")
    rows = setup_rows(vkey, regs, _class_counts(fed, method.behaviours),
                      {r["hospital_id"]: r["gas_register"] for r in regs})
    for r in regs:
        h, tier = r["hospital_id"], r["tier"]
        rows.append(names.result_row(key, name, 0, h, tier, "claim_accepted",
                                     float(r["claimed_tier"] == tier)))
        if h in method.behaviours and name.startswith("attack:"):
            rows.append(names.result_row(key, name, 0, h, tier, "attacker", 1.0))
    tiers = {r["hospital_id"]: r["tier"] for r in regs}
    for outcome in fed.run_rounds(plan):
        rows.extend(method.round_rows(vkey, outcome))
        say(f"[{name}] " + format_round(outcome))
    rows.extend(fed.summary(vkey))
    for ident in fed.identities():
        rows.append(names.result_row(key, name, cfg.train.rounds, ident["hospital_id"],
                                     tiers[ident["hospital_id"]], "epochs_trained",
                                     ident["epochs_trained"]))
    rows += budget_rows(key, name, cfg.train.rounds, cfg.train.epochs)
    rows += cost_rows(rows, study.gas_price_gwei, study.eth_price_usd)
    return _Trained(rows, regs, fed.chain)


def _class_counts(fed: Federation, behaviours: dict[str, Behaviour]) -> np.ndarray:
    """Per-hospital class counts of what each hospital trains on under ``behaviours``."""
    counts = np.array(fed.part.class_counts, copy=True)
    labels = np.asarray(fed.data.train.labels).reshape(-1)
    for spec in fed.specs:
        behaviour = behaviours.get(spec.hospital_id)
        if behaviour is None or behaviour.data_fraction >= 1.0:
            continue
        shard = labels[fed.part.indices[spec.index]]
        pos = shard_positions(len(shard), behaviour.data_fraction, spec.seed, spec.index)
        counts[spec.index] = np.bincount(shard[pos], minlength=counts.shape[1])
    return counts


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
