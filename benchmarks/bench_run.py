"""Whole-run benchmark of ``chainlearn run`` against a plain single-process PyTorch loop.

Same job for both: tiny CNNs, the real PneumoniaMNIST file, N hospitals, R rounds x 1 local
epoch, each hospital then scoring the validation and test splits. The plain loop trains the
hospitals one after the other in one process (no Ray, no chain).

Usage::

    python benchmarks/bench_run.py --hospitals 3 --data-dir ../shared/data
    python benchmarks/bench_run.py --hospitals 10 --hospitals-per-actor 5 --data-dir ../shared/data
    python benchmarks/bench_run.py --hospitals 48 --hospitals-per-actor 1 --skip-plain
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from chainlearn_ray.runtime.scaling import MemorySampler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_loop import add_arguments, plain_loop


def chainlearn_run(args: argparse.Namespace) -> dict[str, Any]:
    """The same job through ``run_simulation`` (Ray start and contract deployment included)."""
    from chainlearn_ray.experiment.loading import load_config
    from chainlearn_ray.runtime.simulation import run_simulation

    t0 = time.perf_counter()
    archs = args.arch.split(",") if "," in args.arch else [args.arch] * 3
    cfg = load_config(None, {
        "data.dataset": "pneumoniamnist", "data.data_dir": args.data_dir,
        "data.download": False, "hospitals": args.hospitals, "train.rounds": args.rounds,
        "train.epochs": 1, "tiers.weak.arch": archs[0], "tiers.medium.arch": archs[1],
        "tiers.strong.arch": archs[2], "runtime.hospitals_per_actor": args.hospitals_per_actor,
        "data.min_shard": 32 if args.hospitals <= 24 else 16,
    })
    with MemorySampler() as mem:
        summary = run_simulation(cfg, args.out, existing="overwrite")
    total = time.perf_counter() - t0
    rounds = [o.round_seconds for o in summary.rounds]
    chain = [o.chain_seconds for o in summary.rounds]
    return {"rounds": rounds, "chain": chain, "total": total, "timings": summary.timings,
            "peak_memory_gib": mem.peak / 2**30,
            "participants": [o.participants for o in summary.rounds]}


def main() -> None:
    """Run both and print one JSON line plus a readable comparison."""
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    p.add_argument("--hospitals-per-actor", default="auto",
                   help="hospitals per actor process (default: auto)")
    p.add_argument("--out", default="/tmp/chainlearn-bench-run")
    p.add_argument("--skip-plain", action="store_true")
    args = p.parse_args()
    result: dict[str, Any] = {"hospitals": args.hospitals,
                              "hospitals_per_actor": args.hospitals_per_actor}
    result["chainlearn"] = ours = chainlearn_run(args)
    if not args.skip_plain:
        result["plain"] = plain = plain_loop(args)
        steady_ours = float(np.mean(ours["rounds"][1:]))
        steady_plain = float(np.mean(plain["rounds"][1:]))
        result["steady_round_ratio"] = steady_ours / steady_plain
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
