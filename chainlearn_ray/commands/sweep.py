"""Fan an experiment grid (datasets × non-IID levels × seeds) out over Ray Tune into Parquet.

Each (dataset, α, seed) cell is one Tune trial that runs every method of the file's ``study:``
section; finished cells land atomically in ``OUT/results/<dataset>/<cell>.parquet``.
Re-running skips finished cells whose config is unchanged and re-runs those whose config
changed since they ran (each cell's identity is a digest of its full config); read the
results with ``chainlearn stats OUT`` and ``chainlearn figures OUT``. On a terminal a live
display shows cells done / total, failures and ETA; Ctrl-C prints the command that resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``chainlearn sweep``."""
    p.add_argument("config", help="experiment YAML with a sweep: section (experiments/quick.yaml)")
    p.add_argument("--out", default=None, help="sweep folder (default runs/sweep-<name>)")
    p.add_argument("--data-dir", help="folder of the real MedMNIST files (default: "
                   "$CHAINLEARN_DATA, else the file's data.data_dir)")
    p.add_argument("--address", help="Ray address: 'auto' joins a running `ray start` cluster")
    p.add_argument("--max-concurrent", type=int,
                   help="trials at once (default: as many as fit the cluster)")
    p.add_argument("--no-resume", action="store_true",
                   help="rerun every cell, also those already finished in --out")
    p.add_argument("--retries", type=int, default=1,
                   help="retries of a failed trial (default 1)")
    p.add_argument("--cells", help="only these cells: comma-separated names or shell patterns "
                   "(e.g. 'pneumoniamnist_*_s0')")
    p.add_argument("--dry-run", action="store_true",
                   help="print the cells and the resources of each trial, run nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="only the final summary")


def _out_dir(args: argparse.Namespace) -> Path:
    if args.out:
        return Path(args.out)
    import yaml

    try:
        doc = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        doc = {}
    name = doc.get("name", Path(args.config).stem) if isinstance(doc, dict) else "sweep"
    return Path("runs") / f"sweep-{name}"


def _patterns(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def dry_run(args: argparse.Namespace, out: Path) -> int:
    """Print the cells and the per-trial resource request without starting any trial."""
    from chainlearn_ray.experiment.privacy_config import is_private
    from chainlearn_ray.experiment.sweep_plan import write_synthetic_data
    from chainlearn_ray.runtime.cluster import ensure_ray, stop_ray
    from chainlearn_ray.runtime.sweep_cells import split_finished
    from chainlearn_ray.runtime.trials import plan_trials
    from chainlearn_ray.runtime.tune import (
        _describe,
        check_private_cells,
        prepare_sweep,
        select_cells,
    )

    plan = select_cells(prepare_sweep(args.config, out, data_dir=args.data_dir),
                        _patterns(args.cells))
    if any(is_private(c.config) for c in plan.cells):  # ε and δ are checked on the shards
        write_synthetic_data(plan)
        check_private_cells(plan)
    done, changed = split_finished(out, plan.cells, plan.study)
    if args.no_resume:
        done = set()
    print(f"sweep {plan.name}: {len(plan.cells)} of {plan.grid.size} cells "
          f"({len(plan.grid.datasets)} datasets × {len(plan.grid.alphas)} levels × "
          f"{len(plan.grid.seeds)} seeds"
          + (f" × {len(plan.grid.dp_epsilons)} ε" if plan.grid.dp_epsilons else "")
          + f") -> {out}")
    print(f"study: methods {', '.join(plan.study.methods)}; attacks "
          f"{', '.join(plan.study.attacks) or 'none'}")
    for cell in plan.cells:
        cfg = cell.config
        archs = "/".join(cfg.tiers[t].arch for t in ("weak", "medium", "strong"))
        mark = "finished" if cell.name in done else \
            "config changed: re-run" if cell.name in changed else "to run"
        print(f"  {cell.name:<36} alpha {cell.alpha:<4g} hospitals {cfg.n_hospitals} "
              f"arch {archs} size {cfg.data.resize or cfg.data.size} "
              f"rounds {cfg.train.rounds}x{cfg.train.epochs}  [{mark}]")
    started = ensure_ray(args.address)
    try:
        k, _configs, bundles = plan_trials(plan, list(plan.cells),
                                           args.max_concurrent or plan.grid.max_concurrent)
    finally:
        if started:
            stop_ray()
    print(f"{k} trial(s) at once on this cluster; per-trial placement group (trial process "
          "first, then coordinator and hospital actors):")
    seen: set[str] = set()
    for name, b in bundles.items():
        text = _describe(b)
        if text not in seen:
            seen.add(text)
            print(f"  {name}: {text}\n    bundles {b}")
    return 0


def main(args: argparse.Namespace) -> int:
    """Run (or, with --dry-run, plan) the sweep and print its summary."""
    out = _out_dir(args)
    if args.dry_run:
        return dry_run(args, out)
    from chainlearn_ray.commands.live import SweepDisplay, is_terminal
    from chainlearn_ray.commands.run import resume_command
    from chainlearn_ray.runtime.tune import run_sweep

    say = (lambda _m: None) if args.quiet else (lambda m: print(m, flush=True))
    display: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    counts = None
    if not args.quiet and is_terminal():  # off a terminal: plain lines only
        display = live = SweepDisplay(0)
        say, counts = live.say, live.update
    again = resume_command(out, verb="sweep", add=())
    try:
        with display:
            summary = run_sweep(args.config, out, address=args.address,
                                max_concurrent=args.max_concurrent, resume=not args.no_resume,
                                retries=args.retries, progress=say, data_dir=args.data_dir,
                                cells=_patterns(args.cells), counts=counts)
    except KeyboardInterrupt:
        print(f"chainlearn sweep: interrupted; finished cells are kept; resume with: {again}",
              file=sys.stderr)
        raise
    print(summary.render())
    if summary.interrupted:
        print(f"chainlearn sweep: interrupted; finished cells are kept; resume with: {again}",
              file=sys.stderr)
        return 130
    return 1 if summary.count("failed") else 0
