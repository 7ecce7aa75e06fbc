"""Scaling benchmark: ``chainlearn scale`` for several hospital counts, checked against targets.

Runs :func:`chainlearn_ray.runtime.scaling.run_scaling` with ``experiments/scaling.yaml`` (tiny
per-tier CNNs on the real PneumoniaMNIST file, 3 rounds x 1 epoch, the embedded chain), prints
the table, one JSON object per hospital count and whether the targets of the study hold:
48 hospitals complete with coordinator chain time <= 50 ms per submission and peak memory
<= 12 GiB; at 24 hospitals everything but training <= 15 % of the round wall time.

Usage::

    python benchmarks/bench_scaling.py --hospitals 3,6 --data-dir ../shared/data
    python benchmarks/bench_scaling.py --hospitals 3,6,12,24,48 --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Targets: metric -> (hospital count it applies to, upper bound).
TARGETS: dict[str, tuple[int, float]] = {
    "chain_ms_per_submission": (48, 50.0),
    "chain_cpu_ms_per_submission": (48, 50.0),
    "peak_memory_gib": (48, 12.0),
    "overhead_share": (24, 0.15),
}


def main() -> None:
    """Run the study and print the table, the per-N figures and the target checks."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hospitals", default="3,6", help="hospital counts (default 3,6)")
    p.add_argument("--mix", default="weak:1,medium:1,strong:1")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--hospitals-per-actor", default=None, help="default: the config's")
    p.add_argument("--config", default=str(ROOT / "experiments" / "scaling.yaml"))
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", default="/tmp/chainlearn-bench-scaling")
    args = p.parse_args()

    from chainlearn_ray.commands.scale import load_study
    from chainlearn_ray.experiment.loading import load_config
    from chainlearn_ray.results.scaling_report import (
        chain_seconds_per_submission,
        format_scaling_table,
        scaling_table,
    )
    from chainlearn_ray.runtime.scaling import parse_mix, parse_sizes, run_scaling

    raw, _section = load_study(args.config)
    per = args.hospitals_per_actor
    cfg = load_config(None, {
        **raw, "data.data_dir": args.data_dir, "data.download": False,
        "train.rounds": args.rounds,
        "runtime.hospitals_per_actor": int(per) if per and per.isdigit() else per,
    })
    result = run_scaling(cfg, parse_sizes(args.hospitals), parse_mix(args.mix), args.out,
                         progress=lambda m: print(m, flush=True) if m.startswith("==") else None)
    table = scaling_table(result.frame)
    print(format_scaling_table(table))
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "config": args.config, "rounds": args.rounds, "sizes": {},
        "chain_s_per_extra_submission": chain_seconds_per_submission(result.frame),
    }
    for n, row in table.iterrows():
        report["sizes"][int(n)] = {k: float(v) for k, v in row.items()}
    report["targets"] = {}
    for metric, (n, bound) in TARGETS.items():
        if n in table.index:
            value = float(table.loc[n, metric])
            report["targets"][f"{metric}@{n}"] = {"value": value, "bound": bound,
                                                  "met": value <= bound}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
