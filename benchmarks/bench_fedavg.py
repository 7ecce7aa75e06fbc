"""Whole-run benchmark of the FedAvg baseline through the Ray runtime, printed as JSON.

The job of the runtime issue: tiny CNNs (``tiny_cnn:8`` for every tier), the real
PneumoniaMNIST file, N hospitals, R rounds x 1 local epoch, the global model scored on the test
split after every round. The total wall time counts everything from the first import of the
package: data loading, Ray start, the coordinator and hospital actors (each actor process
imports torch), the baseline's client set-up and its rounds.

Usage::

    python benchmarks/bench_fedavg.py --hospitals 3 --data-dir ../shared/data
    python benchmarks/bench_fedavg.py --hospitals 10 --data-dir ../shared/data
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def run(args: argparse.Namespace) -> dict[str, Any]:
    """FedAvg through ``open_federation`` + ``run_baseline``; wall seconds of every phase."""
    from chainlearn_ray.experiment.loading import load_config
    from chainlearn_ray.results.rows import RunKey
    from chainlearn_ray.runtime.cluster import ensure_ray, stop_ray
    from chainlearn_ray.runtime.federation import open_federation
    from chainlearn_ray.runtime.simulation import load_partitioned

    out: dict[str, Any] = {"hospitals": args.hospitals, "rounds": args.rounds}
    t_import = time.perf_counter()
    cfg = load_config(None, {
        "data.dataset": "pneumoniamnist", "data.data_dir": args.data_dir,
        "data.download": False, "hospitals": args.hospitals, "train.rounds": args.rounds,
        "train.epochs": 1, "tiers.weak.arch": args.arch, "tiers.medium.arch": args.arch,
        "tiers.strong.arch": args.arch, "runtime.hospitals_per_actor": args.hospitals_per_actor,
        "data.min_shard": 32,
    })
    data, part = load_partitioned(cfg)
    t_data = time.perf_counter()
    # the driver averages the models: torch (via the baselines module) loads while Ray starts
    # and the actors start
    ensure_ray(cfg.runtime.address, preload=("chainlearn_ray.runtime.baselines",))
    t_ray = time.perf_counter()
    with tempfile.TemporaryDirectory() as ckpt:
        # FedAvg never touches the chain: no coordinator, no contract
        fed = open_federation(cfg, data, part, "bench-fedavg", Path(ckpt), chain=False)
        try:
            from chainlearn_ray.experiment.study import StudyConfig
            from chainlearn_ray.runtime.baselines import run_baseline

            t_open = time.perf_counter()
            clock: dict[str, Any] = {}
            key = RunKey("bench-fedavg", cfg.data.dataset, float(cfg.data.alpha), cfg.seed, "")
            rows = run_baseline(fed, "fedavg", StudyConfig(), key, timings=clock)
            t_end = time.perf_counter()
            out["actors"] = len(fed.actors)
        finally:
            fed.close()
            stop_ray()
    t_down = time.perf_counter()
    acc = [r["value"] for r in rows if r["hospital"] == "ensemble" and r["metric"] == "accuracy"]
    up = [r["value"] for r in rows if r["metric"] == "comm_bytes_up"]
    out.update({
        "total_seconds": round(t_end - T0, 3),
        "import_seconds": round(t_import - T0, 3),
        "data_seconds": round(t_data - t_import, 3),
        "ray_start_seconds": round(t_ray - t_data, 3),
        "actors_start_seconds": round(t_open - t_ray, 3),
        "client_setup_seconds": round(clock["setup_seconds"], 3),
        "round_seconds": [round(s, 3) for s in clock["round_seconds"]],
        "shutdown_seconds": round(t_down - t_end, 3),
        "accuracy_per_round": [round(a, 4) for a in acc],
        "comm_bytes_up_per_hospital_round": int(up[0]) if up else 0,
        "cpus": os.cpu_count(),
    })
    return out


def main() -> None:
    """Parse the arguments, run the benchmark, print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hospitals", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--arch", default="tiny_cnn:8")
    parser.add_argument("--hospitals-per-actor", default="auto")
    parser.add_argument("--data-dir", default=os.environ.get("CHAINLEARN_DATA", "../shared/data"))
    args = parser.parse_args()
    if args.hospitals_per_actor != "auto":
        args.hospitals_per_actor = int(args.hospitals_per_actor)
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
