"""The ``chainlearn`` command line: one verb per module under ``chainlearn_ray.commands``."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Sequence

from chainlearn_ray import __version__
from chainlearn_ray.errors import ChainlearnError

logger = logging.getLogger(__name__)

#: verb -> (module under chainlearn_ray.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run one federated simulation (hospital actors + contract) end to end"),
    "gas": ("gas", "measure the contract's gas per operation on a chain backend"),
    "build-contract": ("build_contract", "recompile contracts/FLCoordinator.sol into the artifact"),
    "sweep": ("sweep", "fan an experiment grid out over Ray Tune into Parquet"),
    "stats": ("stats", "tables and paired significance tests from a results folder"),
    "figures": ("figures", "PDF/PNG figures from a results folder"),
    "report": ("report", "one self-contained HTML report (tables, figures, manifest)"),
    "defences": ("defences", "the trust-mode adversarial study: each cheat without and with its "
                 "defence"),
    "scale": ("scale", "scaling study: cost per round against the number of hospitals"),
}


def _available() -> dict[str, tuple[str, str]]:
    """Verbs whose module exists in this installation."""
    found = {}
    for verb, (module, help_text) in COMMANDS.items():
        spec = importlib.util.find_spec(f"chainlearn_ray.commands.{module}")
        if spec is not None:
            found[verb] = (module, help_text)
    return found


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (cheap: command modules import heavy packages lazily)."""
    parser = argparse.ArgumentParser(
        prog="chainlearn",
        description="Capacity-aware federated ensemble learning of simulated hospitals, "
        "coordinated by an Ethereum contract, on Ray.",
    )
    parser.add_argument("--version", action="version", version=f"chainlearn_ray {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for verb, (module, help_text) in _available().items():
        mod = importlib.import_module(f"chainlearn_ray.commands.{module}")
        p = sub.add_parser(verb, help=help_text, description=(mod.__doc__ or help_text))
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen verb; a ``ChainlearnError`` becomes exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "command", None):
        parser.print_help()
        return 1
    try:
        return int(args._module.main(args) or 0)
    except ChainlearnError as exc:
        print(f"chainlearn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"chainlearn {args.command}: interrupted; finished results are kept", file=sys.stderr)
        return 130


def entry() -> None:
    """The ``chainlearn`` command: :func:`main`, then a quick exit.

    Everything a command produces is on disk (atomically) when :func:`main` returns, so after
    the exit handlers (Ray's shutdown, logging's flush) the process ends without tearing
    down its ~1,500 modules one by one (about 0.4 s). While a non-daemon thread still runs, or
    when an exception escapes, it exits the normal way.
    """
    code = main()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        raise SystemExit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe must not hide the exit code
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
