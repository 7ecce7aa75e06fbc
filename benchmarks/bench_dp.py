"""DP-SGD training throughput (samples/s) against ordinary training, on CPU at batch 32.

Three loops train one epoch each of the same tensors (28 px, one torch thread, as a simulated
hospital): ``plain`` is :func:`chainlearn_ray.learning.training.train` on the model as built
(BatchNorm, channels-last on CPU), ``plain-gn`` the same on the model Opacus made private
(GroupNorm) without DP, and ``dp`` the private path (Poisson batches, per-sample gradients,
clipping, seeded noise, RDP accounting). Repetitions alternate between the loops so load drift
hits all alike; medians of wall-clock and process-CPU rates are reported, and the ratio
``plain / dp`` (the target: at most 3).

Usage::

    python benchmarks/bench_dp.py                     # tiny_cnn, 2048 samples, 7 repetitions
    python benchmarks/bench_dp.py --arch tiny_cnn:8 --samples 1024 --reps 5
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch

from chainlearn_ray.data.medmnist import load_dataset
from chainlearn_ray.data.synthetic import write_synthetic
from chainlearn_ray.data.transforms import to_tensor
from chainlearn_ray.learning.models import build_model
from chainlearn_ray.learning.privacy import DPSettings, PrivacyAccount, make_private_model
from chainlearn_ray.learning.training import set_determinism, train


def main() -> None:
    """Run the alternating repetitions and print the medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="tiny_cnn")
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--epsilon", type=float, default=8.0)
    args = parser.parse_args()
    set_determinism(0, threads=1)
    tmp = tempfile.mkdtemp(prefix="chainlearn-bench-dp-")
    write_synthetic(tmp, "bench", n_train=args.samples, n_val=8, n_test=8)
    data = load_dataset("bench", tmp)
    x = to_tensor(data.train.images)
    y = torch.as_tensor(data.train.labels).reshape(-1)
    plain = build_model(args.arch, data.n_classes, data.n_channels, seed=1)
    private, converted = make_private_model(copy.deepcopy(plain))
    plain_gn = copy.deepcopy(private)
    account = PrivacyAccount(DPSettings(args.epsilon, 1e-5, 1.0), args.samples,
                             args.batch_size, args.reps + 1)
    loops = {
        "plain": lambda r: train(plain, x, y, epochs=1, batch_size=args.batch_size, seed=r),
        "plain-gn": lambda r: train(plain_gn, x, y, epochs=1, batch_size=args.batch_size,
                                    seed=r),
        "dp": lambda r: train(private, x, y, epochs=1, seed=r, privacy=account),
    }
    for loop in loops.values():  # warm-up
        loop(0)
    rates: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in loops}
    for rep in range(1, args.reps + 1):
        for name, loop in loops.items():
            wall, cpu = time.perf_counter(), time.process_time()
            stats = loop(rep)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rates[name]["wall"].append(stats.samples / wall)
            rates[name]["cpu"].append(stats.samples / cpu)
    print(f"{args.arch}: {args.samples} samples, batch {args.batch_size}, {args.reps} "
          f"alternating repetitions, 1 torch thread; Opacus converted {converted}; "
          f"noise multiplier {account.noise:.3f} (ε {args.epsilon:g}, δ 1e-5)")
    med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in rates.items()}
    for name in loops:
        print(f"  {name:<9} median {med[name]['wall']:8.0f} samples/s wall, "
              f"{med[name]['cpu']:8.0f} samples/s CPU")
    for clock in ("wall", "cpu"):
        print(f"  slowdown ({clock}): dp is {med['plain'][clock] / med['dp'][clock]:.2f}x "
              f"plain, {med['plain-gn'][clock] / med['dp'][clock]:.2f}x plain-gn (target <= 3x "
              "plain)")


if __name__ == "__main__":
    main()
