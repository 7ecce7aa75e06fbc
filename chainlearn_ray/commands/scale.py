"""Scaling study: one full federated run per number of hospitals (tiny models by default),
per-round wall time, training compute, chain time, Ray overhead, gas and peak memory against N,
written as ``scaling.parquet`` with a manifest, a printed table and a figure (PDF + PNG)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.loading import read_yaml_mapping

logger = logging.getLogger(__name__)

#: The section of an experiment YAML that this verb reads (the rest is a run config).
SECTION = "scaling"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``chainlearn scale`` (each overrides the config file's value)."""
    p.add_argument("--config", help="experiment YAML (e.g. experiments/scaling.yaml); its "
                   "'scaling' section gives default hospital counts and tier mix")
    p.add_argument("--hospitals", help="hospital counts, e.g. 3,6,12,24,48")
    p.add_argument("--mix", help="tier shares, e.g. weak:1,medium:1,strong:1")
    p.add_argument("--rounds", type=int, help="federated rounds of each run")
    p.add_argument("--epochs", type=int, help="local epochs per round")
    p.add_argument("--dataset", help="MedMNIST flag or synthetic")
    p.add_argument("--data-dir", help="data folder (default $CHAINLEARN_DATA or the user cache)")
    p.add_argument("--address", help="Ray address: 'auto' joins a running `ray start` cluster")
    p.add_argument("--hospitals-per-actor",
                   help="hospitals packed into one actor process: a number or auto")
    p.add_argument("--seed", type=int, help="run seed")
    p.add_argument("--out", default=None, help="results folder (default runs/scaling)")
    p.add_argument("-q", "--quiet", action="store_true", help="only the final table")


def load_study(path: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run-config part and the ``scaling`` section of an experiment YAML (empty if none)."""
    if path is None:
        return {}, {}
    p = Path(path)
    raw = read_yaml_mapping(p, "experiments/scaling.yaml")
    section = raw.pop(SECTION, None) or {}
    if not isinstance(section, dict) or set(section) - {"hospitals", "mix"}:
        raise ConfigError(f"{p}: '{SECTION}' may hold only 'hospitals' (a list of counts) "
                          "and 'mix' (tier shares)")
    return raw, section


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted config overrides from the parsed flags (unset flags are None and ignored)."""
    per = args.hospitals_per_actor
    if isinstance(per, str) and per.strip().isdigit():
        per = int(per)
    return {
        "train.rounds": args.rounds, "train.epochs": args.epochs, "data.dataset": args.dataset,
        "data.data_dir": args.data_dir, "runtime.address": args.address,
        "runtime.hospitals_per_actor": per, "seed": args.seed,
    }


def main(args: argparse.Namespace) -> int:
    """Run the study, print the table, write the figure."""
    from chainlearn_ray.experiment.loading import load_config
    from chainlearn_ray.results.scaling_report import (
        chain_seconds_per_submission,
        format_scaling_table,
        read_scaling,
        save_scaling_figure,
        scaling_table,
    )
    from chainlearn_ray.runtime.scaling import (
        DEFAULT_SIZES,
        parse_mix,
        parse_sizes,
        run_scaling,
    )

    raw, section = load_study(args.config)
    cfg = load_config(None, {**raw, **overrides(args)})
    if cfg.data.dataset.startswith("synthetic"):
        from chainlearn_ray.commands.run import _ensure_synthetic

        cfg = _ensure_synthetic(cfg)
    if args.hospitals:
        sizes = parse_sizes(args.hospitals)
    else:
        sizes = parse_sizes(",".join(str(n) for n in section.get("hospitals", DEFAULT_SIZES)))
    mix = parse_mix(args.mix if args.mix else section.get("mix", "weak:1,medium:1,strong:1"))
    out = Path(args.out or "runs/scaling")
    say = (lambda _m: None) if args.quiet else (lambda m: print(m, flush=True))
    run_scaling(cfg, sizes, mix, out, progress=say)
    # table and figure are recomputed from the file, as anyone analysing it later would
    frame = read_scaling(out)
    print(format_scaling_table(scaling_table(frame)))
    slope = chain_seconds_per_submission(frame)
    if slope is not None:
        print(f"coordinator chain time per extra submission (slope over N): {1000 * slope:.1f} ms")
    paths = save_scaling_figure(frame, out)
    print(f"results: {out / 'scaling.parquet'}  figure: {', '.join(map(str, paths))}",
          file=sys.stderr)
    return 0
