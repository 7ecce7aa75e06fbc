"""The plain single-process PyTorch loop the runtime is measured against.

The job of the runtime issue without Ray or a chain: tiny CNNs, the real PneumoniaMNIST file,
N hospitals trained one after the other for R rounds x 1 local epoch (Adam, batch 32), each
hospital then scoring the validation and test splits. Run as a script, it is the whole job as a
process (interpreter start, torch import, data loading and the rounds), printed as JSON;
``bench_run.py`` and ``bench_whole.py`` use :func:`plain_loop`.

Usage::

    python benchmarks/plain_loop.py --hospitals 10 --data-dir ../shared/data
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
from typing import Any  # noqa: E402


def plain_loop(args: argparse.Namespace) -> dict[str, Any]:
    """Train and evaluate every hospital sequentially in this process; time each round.

    ``args``: ``hospitals``, ``rounds``, ``arch`` (one architecture, or weak,medium,strong),
    ``threads`` (torch threads) and ``data_dir``.
    """
    import torch

    from chainlearn_ray.data.medmnist import load_dataset
    from chainlearn_ray.data.partition import dirichlet_partition
    from chainlearn_ray.data.transforms import to_tensor
    from chainlearn_ray.learning.models import CPU_CHANNELS_LAST, CPU_EVAL_BATCH, build_model

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
    # and the same batch when scoring (the architecture's own on CPU)
    batches = [getattr(m, CPU_EVAL_BATCH) for m in models]
    rounds = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for model, fmt, eb, (x, y) in zip(models, formats, batches, shards, strict=True):
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
                    torch.cat([model(xe[i:i + eb].contiguous(memory_format=fmt)).softmax(1)
                               for i in range(0, len(xe), eb)])
        rounds.append(time.perf_counter() - start)
    return {"rounds": rounds, "total": time.perf_counter() - t0}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The job's options, shared by the benchmarks that run this loop."""
    p.add_argument("--hospitals", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--arch", default="tiny_cnn:8",
                   help="architecture of every tier, or weak,medium,strong")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the plain loop")
    p.add_argument("--data-dir", default="../shared/data")


def main() -> None:
    """Run the loop and print its timings, the process's own start included."""
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    args = p.parse_args()
    result = plain_loop(args)
    result["process_seconds"] = time.perf_counter() - T0
    print(json.dumps(result))


if __name__ == "__main__":
    main()
