"""Draw the study's figures (accuracy, ECE, ablations, communication, weights) as PDF and PNG."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``chainlearn figures``."""
    parser.add_argument(
        "results",
        type=Path,
        metavar="RESULTS",
        help="run folder, sweep folder, results .parquet file or dataset directory",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder for the PDF and PNG files (default RESULTS/figures)",
    )
    parser.add_argument(
        "--baseline", default="ours", help="method the ablation figure compares with (default ours)"
    )
    parser.add_argument(
        "--dpi", type=int, default=200, help="resolution of the PNG files (default 200)"
    )
    parser.add_argument(
        "--no-sensitivity",
        action="store_true",
        help="skip the weight-formula sensitivity figure (it does not depend on the results)",
    )


def main(args: argparse.Namespace) -> int:
    """Run ``chainlearn figures``: print each written file's path; return 0."""
    from chainlearn_ray.commands.stats import default_out
    from chainlearn_ray.errors import ConfigError
    from chainlearn_ray.results.figures import make_figures
    from chainlearn_ray.results.store import read_results

    df = read_results(args.results)
    out_dir = args.out or default_out(args.results, "figures")
    if args.dpi < 72:
        raise ConfigError(f"--dpi {args.dpi} is too small for a readable PNG: use 72 or more")
    written = make_figures(
        df, out_dir, args.baseline, sensitivity=not args.no_sensitivity, dpi=args.dpi
    )
    if not written:
        print("no figure drawn: the results hold no ensemble, ablation or communication rows")
    for path in written:
        print(path)
    return 0
