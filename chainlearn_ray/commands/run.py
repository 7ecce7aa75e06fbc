"""Run one federated simulation: tiered hospital actors, a coordinator and the contract.

With no flags: 3 hospitals (one per tier) on PneumoniaMNIST, the embedded chain and local Ray.
``--dataset synthetic`` runs fully offline on generated data in the MedMNIST format.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chainlearn_ray.protocol.rounds import DROPOUT_ATTENDANCE


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``chainlearn run`` (each overrides the config file's value)."""
    p.add_argument("--config", help="experiment YAML (e.g. experiments/quick.yaml)")
    p.add_argument("--dataset", help="MedMNIST flag (pneumoniamnist, dermamnist, ...) or synthetic")
    p.add_argument("--data-dir", help="data folder (default $CHAINLEARN_DATA or the user cache)")
    p.add_argument("--size", type=int, help="MedMNIST image size of the file: 28, 64, 128, 224")
    p.add_argument("--resize", type=int, help="resize images to this side (e.g. 224)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--hospitals", type=int, help="number of hospitals, spread over tiers")
    group.add_argument("--tiers", help="hospitals per tier, e.g. weak:4,medium:4,strong:4")
    p.add_argument("--rounds", type=int, help="federated rounds")
    p.add_argument("--epochs", type=int, help="local epochs per round")
    p.add_argument("--arch", help="one architecture for every tier (e.g. tiny_cnn)")
    p.add_argument("--alpha", help="non-IID level: mild, moderate, severe or a number")
    p.add_argument("--seed", type=int, help="run seed")
    p.add_argument("--out", default=None, help="results folder (default runs/<name>-<seed>)")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true",
                          help="continue the run in --out (same config) from its checkpoints "
                               "and the rounds already written")
    existing.add_argument("--overwrite", action="store_true",
                          help="replace the run in --out (removed once every check passed)")
    p.add_argument("--address", help="Ray address: 'auto' joins a running `ray start` cluster")
    p.add_argument("--chain", choices=["embedded", "anvil", "rpc"], help="chain backend")
    p.add_argument("--rpc-url", help="JSON-RPC URL of a node (implies --chain rpc)")
    p.add_argument("--contract", help="attach to an already deployed FLCoordinator address")
    p.add_argument("--weight-score", choices=["confidence", "balanced_accuracy"],
                   help="what the weight rewards: validation confidence (the seed protocol, "
                   "default) or validation balanced accuracy (Ours-BalAcc)")
    p.add_argument("--mode", choices=["seed", "trust"],
                   help="contract mode: seed (default, the published protocol) or trust (stakes, "
                        "verifier-timed PoC, commit-reveal, audits, rewards)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="training device")
    p.add_argument("--clock", choices=["cost", "measured"],
                   help="where simulated time comes from: cost (default; samples x seconds per "
                        "sample of the architecture x the tier's slowdown, the same on any "
                        "machine and load) or measured (measured compute time x a slowdown "
                        "calibrated on this machine; for studies of real contention)")
    p.add_argument("--cost-model", metavar="builtin|calibrate|ARCH=S,...",
                   help="the cost clock's table: builtin (default, the reference machine), "
                        "calibrate (measure this machine once, cached in ~/.cache/chainlearn) "
                        "or entries replacing built-in ones, e.g. resnet50=0.02,"
                        "poc_throughput=4000 (seconds per 28 px training sample; PoC samples/s)")
    p.add_argument("--throttle", choices=["virtual", "sleep"],
                   help="virtual (default): nothing sleeps; sleep: hospitals really sleep so "
                        "their wall time follows the clock")
    p.add_argument("--round-timeout", type=float, help="wall seconds before a hospital is dropped")
    p.add_argument("--deadline", type=float,
                   help="simulated seconds a hospital's round may take (see --clock)")
    p.add_argument("--dropout", action="store_true",
                   help="Ours-Dropout attendance (weak 1.0, medium 0.8, strong 0.6)")
    p.add_argument("--hospitals-per-actor", metavar="N|auto",
                   help="hospitals per actor process (default auto: one each while there are "
                        "cores for them, else packed so processes ~ cores)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the config and print the resource plan, run nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="only the final summary")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted config overrides from the parsed flags (unset flags are None and ignored)."""
    chain = args.chain or ("rpc" if args.rpc_url else None)
    out: dict[str, Any] = {
        "data.dataset": args.dataset, "data.data_dir": args.data_dir, "data.size": args.size,
        "data.resize": args.resize, "data.alpha": args.alpha, "seed": args.seed,
        "hospitals": args.hospitals if args.hospitals is not None else args.tiers,
        "train.rounds": args.rounds, "train.epochs": args.epochs,
        "runtime.address": args.address, "chain.backend": chain, "chain.rpc_url": args.rpc_url,
        "chain.contract": args.contract, "chain.weight_score": args.weight_score,
        "chain.mode": args.mode,
        "runtime.device": args.device,
        "runtime.throttle": args.throttle, "runtime.round_timeout": args.round_timeout,
        "runtime.clock": args.clock, "runtime.cost_model": args.cost_model,
        "runtime.deadline": args.deadline, "runtime.hospitals_per_actor": args.hospitals_per_actor,
    }
    for label in ("weak", "medium", "strong"):
        if args.arch:
            out[f"tiers.{label}.arch"] = args.arch
        if args.dropout:
            out[f"tiers.{label}.attendance"] = DROPOUT_ATTENDANCE[label]
    return out


def main(args: argparse.Namespace) -> int:
    """Run (or, with --dry-run, plan) one simulation and print its summary."""
    from chainlearn_ray.experiment.loading import load_config
    from chainlearn_ray.results.run_folder import check_out, check_writable

    cfg = load_config(args.config, overrides(args))
    out = Path(args.out or f"runs/{cfg.name}-{cfg.data.dataset}-seed{cfg.seed}")
    from chainlearn_ray.chain.preflight import check_chain

    check_chain(cfg.chain.backend, cfg.chain.rpc_url, cfg.chain.contract)
    if args.dry_run:
        check_writable(out)
    else:  # before Ray starts: a folder that holds a run needs --resume or --overwrite
        check_out(out, existing_mode(args))
    if args.dataset == "synthetic" or cfg.data.dataset.startswith("synthetic"):
        cfg = _ensure_synthetic(cfg)
    if args.dry_run:
        from chainlearn_ray.runtime.simulation import validate_only

        print(validate_only(cfg))
        return 0
    from chainlearn_ray.commands.live import RunDisplay, is_terminal
    from chainlearn_ray.runtime.simulation import run_simulation

    say = (lambda _m: None) if args.quiet else (lambda m: print(m, flush=True))
    display: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    events = None
    if not args.quiet and is_terminal():  # off a terminal: plain lines only
        display = live = RunDisplay(cfg.train.rounds)
        say, events = live.say, live.event
    try:
        with terminate_as_interrupt(), display:
            summary = run_simulation(cfg, out, progress=say, existing=existing_mode(args),
                                     events=events)
    except (KeyboardInterrupt, SystemExit) as exc:  # SIGTERM under Ray: SystemExit
        if (out / "manifest.json").exists():
            print(f"chainlearn run: interrupted; resume with: {resume_command(out)}",
                  file=sys.stderr)
        raise KeyboardInterrupt from exc
    if args.quiet:
        from chainlearn_ray.runtime.simulation import format_summary

        print(format_summary(summary))
    print(f"results: {out / 'results.parquet'}  manifest: {out / 'manifest.json'}",
          file=sys.stderr)
    return 0


def existing_mode(args: argparse.Namespace) -> str:
    """What to do with an --out folder that holds a run: refuse, resume or overwrite."""
    return "resume" if args.resume else "overwrite" if args.overwrite else "refuse"


def resume_command(out: Path, argv: list[str] | None = None, *, verb: str = "run",
                   add: tuple[str, ...] = ("--resume",)) -> str:
    """The exact command that resumes the run (or sweep) in ``out``: this command's own
    arguments without ``--overwrite`` / ``--resume`` / ``--no-resume``, ``--out`` pinned, and
    ``add`` appended."""
    import shlex

    args = list(sys.argv[1:] if argv is None else argv)
    keep: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg in ("--overwrite", "--resume", "--no-resume"):
            continue
        if arg == "--out" and i + 1 < len(args):
            skip = True
            continue
        if arg.startswith("--out="):
            continue
        keep.append(arg)
    if keep[:1] == [verb]:
        keep = keep[1:]
    return shlex.join(["chainlearn", verb, *keep, "--out", str(out), *add])


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread while inside (as Ctrl-C does), so
    a terminated run closes as interrupted."""
    def interrupt(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _ensure_synthetic(cfg: Any) -> Any:
    """Write the synthetic dataset into the data folder when it is not there yet."""
    import dataclasses

    from chainlearn_ray.data.catalog import dataset_filename
    from chainlearn_ray.data.medmnist import resolve_data_dir
    from chainlearn_ray.data.synthetic import write_synthetic
    from chainlearn_ray.experiment.config import replace

    root = resolve_data_dir(cfg.data.data_dir)
    if not (root / dataset_filename(cfg.data.dataset, cfg.data.size)).exists():
        write_synthetic(root, cfg.data.dataset, size=cfg.data.size, seed=0)
    return replace(cfg, data=dataclasses.replace(cfg.data, data_dir=str(root)))
