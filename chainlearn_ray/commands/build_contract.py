"""Recompile contracts/FLCoordinator.sol with the pinned solc-js into the artifact shipped as
package data (needs Node.js and `npm ci` in contracts/)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``chainlearn build-contract``."""
    parser.add_argument(
        "--check",
        action="store_true",
        help="compile and compare with the shipped artifact; exit 1 when it is stale",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.json",
        help="write the artifact here instead of the package-data location",
    )
    parser.add_argument(
        "--contracts-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="contracts/ folder (default: the source checkout's, or $CHAINLEARN_CONTRACTS_DIR)",
    )


def main(args: argparse.Namespace) -> int:
    """Run ``chainlearn build-contract``; return the build script's exit code."""
    from chainlearn_ray.chain.build import run_build

    result = run_build(contracts=args.contracts_dir, out=args.out, check=args.check)
    if result.stdout:
        print(result.stdout.rstrip())
    if result.returncode != 0 and result.stderr:
        print(result.stderr.rstrip())
    return result.returncode
