"""Measure the FLCoordinator contract's gas per operation (first time and steady state) on a
chain backend, priced in USD, next to the reference contract's figures; ``--mode trust``
measures the trust mode (commit, reveal and audit for every hospital)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``chainlearn gas``."""
    parser.add_argument(
        "--chain",
        choices=("embedded", "anvil", "rpc"),
        default="embedded",
        help="embedded in-process EVM (default), a fresh local anvil node, or --rpc-url",
    )
    parser.add_argument(
        "--rpc-url", default=None, metavar="URL", help="JSON-RPC node to measure on (implies rpc)"
    )
    parser.add_argument(
        "--owner-key",
        default=None,
        metavar="HEX",
        help="owner private key for --rpc-url (default $CHAINLEARN_OWNER_KEY, or the public "
        "development key on chain id 31337)",
    )
    parser.add_argument(
        "--mode",
        choices=("seed", "trust"),
        default="seed",
        help="seed protocol (default), or trust mode: attested registration, stakes, commit, "
        "reveal and audit for every hospital, rewards and withdrawals",
    )
    parser.add_argument(
        "--hospitals", type=_positive_int, default=3, help="hospitals to register (default 3)"
    )
    parser.add_argument("--rounds", type=_positive_int, default=3, help="rounds to run (default 3)")
    parser.add_argument(
        "--gwei", type=_positive_float, default=20.0, help="gas price in gwei (default 20)"
    )
    parser.add_argument(
        "--eth-usd", type=_positive_float, default=2000.0, help="USD per ETH (default 2000)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, metavar="FILE.parquet", help="also write the table"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")


def main(args: argparse.Namespace) -> int:
    """Run ``chainlearn gas``; return 0."""
    from chainlearn_ray.chain.backends import connect
    from chainlearn_ray.chain.gas import measure_gas, render_table, write_parquet
    from chainlearn_ray.chain.trust_gas import measure_trust_gas

    backend = "rpc" if args.rpc_url else args.chain
    measure = measure_trust_gas if args.mode == "trust" else measure_gas
    with connect(backend, rpc_url=args.rpc_url, owner_key=args.owner_key) as conn:
        report = measure(
            conn, hospitals=args.hospitals, rounds=args.rounds, gwei=args.gwei, eth_usd=args.eth_usd
        )
    if args.out is not None:
        write_parquet(report, args.out)
        logger.info("wrote %s", args.out)
    if args.json:
        print(json.dumps(report.to_json(), sort_keys=True))
    else:
        print(render_table(report))
        if args.out is not None:
            print(f"wrote {args.out}")
    return 0
