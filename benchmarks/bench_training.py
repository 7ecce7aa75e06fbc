"""Throughput of ``chainlearn_ray.learning.training.train`` against a bare PyTorch loop (samples/s).

Both loops train the same architecture from the same initial weights on the same tensors with
batch 32 and a fresh Adam (lr 1e-3); repetitions alternate between the two so machine-load drift
hits both alike. Wall-clock and process-CPU-time rates are reported, each as the median and
the best repetition (on a shared, loaded machine the CPU-time rates measure the loops' own cost
best; the wall-clock ones include the load).

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
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from chainlearn_ray.data.medmnist import load_dataset
from chainlearn_ray.data.synthetic import write_synthetic
from chainlearn_ray.data.transforms import to_tensor
from chainlearn_ray.learning.models import build_model
from chainlearn_ray.learning.training import set_determinism, train


def bare_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int,
              lr: float, seed: int) -> None:
    """One epoch of the textbook loop."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    order = torch.randperm(x.shape[0], generator=gen)
    for i in range(0, x.shape[0], batch_size):
        idx = order[i : i + batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def ours(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, lr: float,
         seed: int) -> None:
    """One epoch of :func:`train`."""
    train(model, x, y, epochs=1, batch_size=batch_size, lr=lr, seed=seed)


def timed(fn: Callable[..., None], *args: object, **kwargs: object) -> tuple[float, float]:
    """Run ``fn``; return its wall and process CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu


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
        times: dict[str, list[tuple[float, float]]] = {"bare": [], "ours": []}
        for rep in range(args.reps):
            order = (("bare", bare_loop), ("ours", ours))
            for name, fn in order if rep % 2 == 0 else order[::-1]:
                times[name].append(timed(fn, copy.deepcopy(initial), x, y, **kw))
        for clock, col in (("wall", 0), ("cpu", 1)):
            for label, pick in (("median", statistics.median), ("best", min)):
                bare_sps = n / pick(t[col] for t in times["bare"])
                ours_sps = n / pick(t[col] for t in times["ours"])
                print(f"{arch:>20} {clock:>4} {label:>6}: bare {bare_sps:8.1f} samples/s | "
                      f"train() {ours_sps:8.1f} samples/s | ratio {ours_sps / bare_sps:.3f}")


if __name__ == "__main__":
    main()
