"""Throughput of ``chainlearn_ray.training.train`` against a bare PyTorch loop (samples/s).

Both loops train the same architecture from the same initial weights on the same tensors with
batch 32 and a fresh Adam (lr 1e-3); repetitions alternate between the two so machine-load drift
hits both alike. The median and the best repetition are reported (on a shared machine the
best one estimates the loops' own cost; the median shows the load).

Usage::

    python benchmarks/bench_training.py                       # tiny_cnn and mobilenet_v3_small
    python benchmarks/bench_training.py --archs tiny_cnn --samples 2048 --reps 7
    python benchmarks/bench_training.py --data-dir ../shared/data   # real PneumoniaMNIST
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from chainlearn_ray.data.medmnist import load_dataset
from chainlearn_ray.data.synthetic import write_synthetic
from chainlearn_ray.data.transforms import to_tensor
from chainlearn_ray.models import build_model
from chainlearn_ray.training import set_determinism, train


def bare_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int,
              lr: float, seed: int) -> float:
    """One epoch of the textbook loop; returns its wall time in seconds."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    start = time.perf_counter()
    order = torch.randperm(x.shape[0], generator=gen)
    for i in range(0, x.shape[0], batch_size):
        idx = order[i : i + batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def ours(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, lr: float,
         seed: int) -> float:
    """One epoch of :func:`train`; returns its wall time in seconds."""
    start = time.perf_counter()
    train(model, x, y, epochs=1, batch_size=batch_size, lr=lr, seed=seed)
    return time.perf_counter() - start


def load_inputs(data_dir: str | None, samples: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """``samples`` training tensors of PneumoniaMNIST (``data_dir``) or of a synthetic set."""
    if data_dir is not None:
        data = load_dataset("pneumoniamnist", data_dir)
    else:
        tmp = tempfile.mkdtemp(prefix="chainlearn-bench-")
        write_synthetic(tmp, "bench", n_train=samples, n_val=8, n_test=8)
        data = load_dataset("bench", tmp)
    x = to_tensor(data.train.images[:samples])
    y = torch.as_tensor(data.train.labels[:samples])
    return x, y, data.n_classes, data.n_channels


def main() -> None:
    """Run the comparison and print one line per architecture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["tiny_cnn", "mobilenet_v3_small"])
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=None,
                        help="folder holding pneumoniamnist.npz (default: synthetic data)")
    args = parser.parse_args()
    set_determinism(0, args.threads)
    x, y, n_classes, channels = load_inputs(args.data_dir, args.samples)
    n = int(x.shape[0])
    print(f"{n} samples of {tuple(x.shape[1:])}, batch {args.batch_size}, "
          f"{torch.get_num_threads()} thread(s), {args.reps} alternating reps")
    for arch in args.archs:
        initial = build_model(arch, n_classes, channels, seed=0)
        kw = {"batch_size": args.batch_size, "lr": 1e-3, "seed": 1}
        ours(copy.deepcopy(initial), x, y, **kw)  # warm-up (allocator, kernels)
        bare_loop(copy.deepcopy(initial), x, y, **kw)
        bare_t: list[float] = []
        ours_t: list[float] = []
        for rep in range(args.reps):
            order = (bare_loop, ours) if rep % 2 == 0 else (ours, bare_loop)
            for fn in order:
                seconds = fn(copy.deepcopy(initial), x, y, **kw)
                (bare_t if fn is bare_loop else ours_t).append(seconds)
        for label, pick in (("median", statistics.median), ("best", min)):
            bare_sps, ours_sps = n / pick(bare_t), n / pick(ours_t)
            print(f"{arch:>20} {label:>6}: bare {bare_sps:8.1f} samples/s | train() "
                  f"{ours_sps:8.1f} samples/s | ratio {ours_sps / bare_sps:.3f}")


if __name__ == "__main__":
    main()
