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
import time
from typing import Any

import numpy as np

from chainlearn_ray.runtime.scaling import MemorySampler


def plain_loop(args: argparse.Namespace) -> dict[str, Any]:
    """Train and evaluate every hospital sequentially in this process; time each round."""
    import torch

    from chainlearn_ray.data.medmnist import load_dataset
    from chainlearn_ray.data.partition import dirichlet_partition
    from chainlearn_ray.data.transforms import to_tensor
    from chainlearn_ray.models import CPU_CHANNELS_LAST, build_model

    t0 = time.perf_counter()
    torch.set_num_threads(args.threads)
    data = load_dataset("pneumoniamnist", args.data_dir)
    part = dirichlet_partition(data.train.labels, args.hospitals, 1.0, seed=42, min_size=32)
    x_val, x_test = to_tensor(data.val.images), to_tensor(data.test.images)
    archs = args.arch.split(",") if "," in args.arch else [args.arch] * 3
    tiers = [i * 3 // args.hospitals for i in range(args.hospitals)]
    shards = [(to_tensor(data.train.images[idx]), torch.as_tensor(data.train.labels[idx]))
              for idx in part.indices]
    models = [build_model(archs[t], data.n_classes, 1, seed=i) for i, t in enumerate(tiers)]
    # the same memory format as the package's training (channels-last on CPU where it is faster)
    formats = [torch.channels_last if getattr(m, CPU_CHANNELS_LAST) else torch.contiguous_format
               for m in models]
    models = [m.to(memory_format=f) for m, f in zip(models, formats, strict=True)]
    rounds = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for model, fmt, (x, y) in zip(models, formats, shards, strict=True):
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            model.train()
            perm = torch.randperm(len(y))
            for i in range(0, len(y), 32):
                b = perm[i:i + 32]
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(
                    model(x[b].contiguous(memory_format=fmt)), y[b])
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                for xe in (x_val, x_test):
                    torch.cat([model(xe[i:i + 256].contiguous(memory_format=fmt)).softmax(1)
                               for i in range(0, len(xe), 256)])
        rounds.append(time.perf_counter() - start)
    return {"rounds": rounds, "total": time.perf_counter() - t0}


def chainlearn_run(args: argparse.Namespace) -> dict[str, Any]:
    """The same job through ``run_simulation`` (Ray start and contract deployment included)."""
    from chainlearn_ray.config import load_config
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
        summary = run_simulation(cfg, args.out)
    total = time.perf_counter() - t0
    rounds = [o.round_seconds for o in summary.rounds]
    chain = [o.chain_seconds for o in summary.rounds]
    return {"rounds": rounds, "chain": chain, "total": total, "timings": summary.timings,
            "peak_memory_gib": mem.peak / 2**30,
            "participants": [o.participants for o in summary.rounds]}


def main() -> None:
    """Run both and print one JSON line plus a readable comparison."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hospitals", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--hospitals-per-actor", default="auto",
                   help="hospitals per actor process (default: auto)")
    p.add_argument("--arch", default="tiny_cnn:8",
                   help="architecture of every tier, or weak,medium,strong")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the plain loop")
    p.add_argument("--data-dir", default="../shared/data")
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
