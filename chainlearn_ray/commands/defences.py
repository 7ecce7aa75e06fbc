"""Run the trust-mode adversarial study in this process: lazy, inflated metrics with and without
the audit, capacity spoofing (tier and throughput) with the self-reported and the
verifier-timed PoC, and the free-rider with and without commit-reveal, each on a fresh
deployment of the embedded chain. Writes ``results.parquet`` and ``manifest.json`` after every
row (what is done is kept); ``chainlearn stats`` and ``chainlearn figures`` show them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``chainlearn defences`` (each overrides the config file's value)."""
    p.add_argument("--config", help="experiment YAML (e.g. experiments/quick.yaml)")
    p.add_argument("--dataset", help="MedMNIST flag or synthetic")
    p.add_argument("--data-dir", help="data folder (default $CHAINLEARN_DATA or the user cache)")
    p.add_argument("--tiers", help="hospitals per tier, e.g. weak:1,medium:1,strong:2 (two of "
                                   "one tier let the free-rider copy its own model type)")
    p.add_argument("--rounds", type=int, help="federated rounds")
    p.add_argument("--epochs", type=int, help="local epochs per round")
    p.add_argument("--arch", help="one architecture for every tier (e.g. tiny_cnn)")
    p.add_argument("--seed", type=int, help="run seed")
    p.add_argument("--only", nargs="+", metavar="ROW",
                   help="only these rows (e.g. attack:free_rider_cr)")
    p.add_argument("--out", default=None, help="results folder (default runs/defences-<seed>)")


def main(args: argparse.Namespace) -> int:
    """Run the rows and write them as they finish."""
    from chainlearn_ray.experiment.clock import config_record, cost_model_of
    from chainlearn_ray.experiment.loading import load_config
    from chainlearn_ray.results.atomic import write_json_atomic, write_rows_atomic
    from chainlearn_ray.results.manifest import build_manifest
    from chainlearn_ray.results.rows import RunKey
    from chainlearn_ray.runtime.defence_study import defence_rows
    from chainlearn_ray.runtime.simulation import load_partitioned

    overrides: dict[str, Any] = {
        "data.dataset": args.dataset, "data.data_dir": args.data_dir, "hospitals": args.tiers,
        "train.rounds": args.rounds, "train.epochs": args.epochs, "seed": args.seed,
        "chain.mode": "trust"}
    for label in ("weak", "medium", "strong"):
        if args.arch:
            overrides[f"tiers.{label}.arch"] = args.arch
    cfg = load_config(args.config, overrides)
    if cfg.data.dataset.startswith("synthetic"):
        from chainlearn_ray.commands.run import _ensure_synthetic

        cfg = _ensure_synthetic(cfg)
    out = Path(args.out or f"runs/defences-{cfg.data.dataset}-seed{cfg.seed}")
    cost = cost_model_of(cfg)
    data, part = load_partitioned(cfg)
    key = RunKey(f"defences-{cfg.seed}", cfg.data.dataset, float(cfg.data.alpha),
                 int(cfg.seed), "")
    rows: list[dict[str, Any]] = []
    done: list[str] = []
    for method, new in defence_rows(cfg, data, part, key, tuple(args.only) if args.only
                                    else None):
        rows.extend(new)
        done.append(method)
        write_rows_atomic(rows, out / "results.parquet")
        write_json_atomic(build_manifest(config_record(cfg, cost), run_id=key.run_id,
                                         status="running", rows_done=list(done)),
                          out / "manifest.json")
        print(f"{method}: done", flush=True)
    write_json_atomic(build_manifest(config_record(cfg, cost), run_id=key.run_id,
                                     status="complete", rows_done=done), out / "manifest.json")
    print(f"results: {out / 'results.parquet'}  manifest: {out / 'manifest.json'}",
          file=sys.stderr)
    return 0
