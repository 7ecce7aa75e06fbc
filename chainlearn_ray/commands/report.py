"""Write one self-contained HTML report of a results folder (tables, figures, manifest)."""

from __future__ import annotations

import argparse
import io
import json
import logging
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``chainlearn report``."""
    from chainlearn_ray.commands import stats

    stats.add_table_arguments(parser)
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="the HTML file to write (default RESULTS/report.html)")
    parser.add_argument("--dpi", type=int, default=110,
                        help="resolution of the embedded figures (default 110)")


def _manifest(results: Path) -> dict[str, Any] | None:
    from chainlearn_ray.commands.stats import default_out

    path = default_out(results, "manifest.json")
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        logger.warning("could not read %s: the report shows no manifest", path)
        return None


def main(args: argparse.Namespace) -> int:
    """Run ``chainlearn report``: write the HTML file and print its path; return 0."""
    from chainlearn_ray.commands import stats
    from chainlearn_ray.errors import ConfigError
    from chainlearn_ray.results.atomic import write_atomic
    from chainlearn_ray.results.figures import drawn_figures
    from chainlearn_ray.results.report import render_report
    from chainlearn_ray.results.store import read_results

    if args.dpi < 50:
        raise ConfigError(f"--dpi {args.dpi} is too small for a readable figure: use 50 or more")
    df = read_results(args.results)
    parts = stats.sections(df, args)
    figures = []
    for stem, fig in drawn_figures(df, args.baseline):
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=args.dpi, metadata={"Software": None})
        figures.append((stem.replace("_", " ").capitalize(), buffer.getvalue()))
    text = render_report(f"chainlearn results: {args.results}", stats.describe(df),
                         [(heading, markdown) for _, heading, _, markdown in parts], figures,
                         _manifest(args.results))
    out = args.out or stats.default_out(args.results, "report.html")
    data = text.encode("utf-8")

    def write(handle: IO[bytes]) -> None:
        handle.write(data)

    write_atomic(out, write)
    print(out)
    return 0
