"""Whole runs as processes, ``chainlearn run`` alternating with the plain loop, printed as JSON.

The target of the runtime issue is a wall time (11 s for 3 and for 10 hospitals on a 2-core
machine where the plain loop takes 6-7 s). This machine's speed drifts by a third within
minutes, so one run says little: this runs the two jobs in alternation, each as a fresh
process timed from outside (interpreter start to exit, Ray start, contract deployment and
shutdown included), and reports every pair, the medians, the share of runs within the target
and the ratio of each run to its neighbouring plain loop.

Usage::

    python benchmarks/bench_whole.py --hospitals 10 --pairs 8 --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def timed(command: list[str]) -> float:
    """Wall seconds of ``command`` as a process (its output is discarded; it must succeed)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def pairs(args: argparse.Namespace) -> list[dict[str, float]]:
    """``args.pairs`` alternating runs of the plain loop and ``chainlearn run``."""
    job = ["--hospitals", str(args.hospitals), "--data-dir", args.data_dir]
    plain = [sys.executable, str(HERE / "plain_loop.py"), "--arch", args.arch,
             "--rounds", str(args.rounds), *job]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        ours = [sys.executable, "-m", "chainlearn_ray", "run", "--arch", args.arch,
                "--rounds", str(args.rounds), "--epochs", "1", "-q", "--out", tmp, *job]
        for _ in range(args.pairs):
            out.append({"plain": timed(plain), "chainlearn": timed(ours)})
    return out


def summary(runs: list[dict[str, float]], target: float) -> dict[str, Any]:
    """Medians, runs within ``target`` and the ratio of each run to its plain loop."""
    ours = [r["chainlearn"] for r in runs]
    plain = [r["plain"] for r in runs]
    return {
        "median_chainlearn": statistics.median(ours),
        "median_plain": statistics.median(plain),
        "within_target": sum(t <= target for t in ours),
        "runs": len(runs),
        "median_ratio": statistics.median(o / p for o, p in zip(ours, plain, strict=True)),
    }


def main() -> None:
    """Run the pairs and print them with their summary."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hospitals", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--arch", default="tiny_cnn:8")
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--target", type=float, default=11.0, help="seconds")
    p.add_argument("--data-dir", default="../shared/data")
    args = p.parse_args()
    runs = pairs(args)
    print(json.dumps({"hospitals": args.hospitals, "pairs": runs,
                      **summary(runs, args.target)}, indent=1))


if __name__ == "__main__":
    main()
