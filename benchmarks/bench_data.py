"""Time loading the PneumoniaMNIST file and partitioning it over N hospitals (default 48).

Each repetition calls ``load_dataset`` (reads and validates the ``.npz``) and
``dirichlet_partition`` for every non-IID level; the module imports are timed once, apart.

Usage::

    python benchmarks/bench_data.py --data-dir ../shared/data
    python benchmarks/bench_data.py --data-dir ../shared/data --min-size 32 --strategy top_up
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    """Run the timing and print one line per non-IID level."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder holding pneumoniamnist.npz")
    parser.add_argument("--hospitals", type=int, default=48)
    parser.add_argument("--min-size", type=int, default=10)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--strategy", default="auto", choices=["resample", "top_up", "auto"])
    args = parser.parse_args()

    t0 = time.perf_counter()
    from chainlearn_ray.data.medmnist import load_dataset
    from chainlearn_ray.data.partition import ALPHAS, dirichlet_partition

    print(f"imports: {time.perf_counter() - t0:.3f} s (once per process)")
    for level in ALPHAS:
        totals: list[float] = []
        loads: list[float] = []
        attempts = moved = smallest = 0
        for rep in range(args.reps):
            start = time.perf_counter()
            data = load_dataset("pneumoniamnist", args.data_dir)
            loaded = time.perf_counter()
            part = dirichlet_partition(data.train.labels, args.hospitals, level, seed=rep,
                                       min_size=args.min_size, strategy=args.strategy)
            end = time.perf_counter()
            totals.append(end - start)
            loads.append(loaded - start)
            attempts, moved, smallest = part.attempts, part.topped_up, int(part.sizes.min())
        print(f"{level:>8} (alpha {ALPHAS[level]}): load+partition median "
              f"{statistics.median(totals):.3f} s, max {max(totals):.3f} s (load median "
              f"{statistics.median(loads):.3f} s); {args.hospitals} hospitals, strategy "
              f"{args.strategy}, last: {attempts} draw(s), {moved} moved, smallest shard "
              f"{smallest}")


if __name__ == "__main__":
    main()
