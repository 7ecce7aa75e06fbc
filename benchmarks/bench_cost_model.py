"""Measure the virtual clock's reference cost table on this machine.

Prints seconds per training sample (batch 32, one torch thread, CPU time, 28 px unless
``--side``) of each architecture and the unthrottled PoC throughput (K 50, B 16), in the form
of ``runtime.cost_model`` and of ``REFERENCE_SECONDS_PER_SAMPLE`` in
``chainlearn_ray/experiment/config.py``. ``--check-sides`` also prints each architecture's cost
at other sides against the size rule (``chainlearn_ray.learning.cost.size_factor``) and plain
pixel-count scaling.

Usage::

    python benchmarks/bench_cost_model.py
    python benchmarks/bench_cost_model.py --archs tiny_cnn:4 tiny_cnn:8 --repeats 5
    python benchmarks/bench_cost_model.py --archs tiny_cnn mobilenet_v3_small --check-sides 64
"""

from __future__ import annotations

import argparse
import json

from chainlearn_ray.learning.calibration import measure_poc_throughput, measure_seconds_per_sample
from chainlearn_ray.learning.cost import REFERENCE_SIDE, size_factor
from chainlearn_ray.learning.training import set_determinism

DEFAULT_ARCHS = ("tiny_cnn", "mobilenet_v3_small", "efficientnet_b0", "resnet50")


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--check-sides", type=int, nargs="*", default=[])
    args = parser.parse_args()
    set_determinism(0, 1)
    table: dict[str, float] = {}
    for arch in args.archs:
        table[arch] = measure_seconds_per_sample(arch, samples=args.samples,
                                                 repeats=args.repeats)
        print(f"{arch:<20} {table[arch] * 1e3:9.4f} ms/sample", flush=True)
        for side in args.check_sides:
            cost = measure_seconds_per_sample(arch, side=side, samples=args.samples,
                                              repeats=args.repeats)
            rule = table[arch] * size_factor(side, side)
            pixels = table[arch] * side * side / REFERENCE_SIDE**2
            print(f"{'':<20} {side} px: {cost * 1e3:9.4f} ms/sample; size rule "
                  f"{rule * 1e3:9.4f} ({cost / rule:.2f}x), pixel count {pixels * 1e3:9.4f} "
                  f"({cost / pixels:.2f}x)", flush=True)
    poc = measure_poc_throughput(repeats=args.repeats)
    print(f"{'PoC':<20} {poc:9.1f} samples/s", flush=True)
    print(json.dumps({**{k: float(f"{v:.4g}") for k, v in table.items()},
                      "poc_throughput": round(poc, 1)}))


if __name__ == "__main__":
    main()
