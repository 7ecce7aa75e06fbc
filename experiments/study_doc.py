"""Write a study's Markdown summary from its results folder: every table of ``chainlearn
stats`` (findings included), the figures as PNG beside it, the commands, the machine and the
wall time. Every number in it is recomputed from the folder's Parquet; prose written by hand
goes in ``--intro`` (a Markdown file placed under the title).

Usage::

    python experiments/study_doc.py runs/cpu-study --out docs/study.md --intro notes.md \\
        --command "chainlearn sweep experiments/cpu-study.yaml --out runs/cpu-study"
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from chainlearn_ray.commands import stats
from chainlearn_ray.results.figures import make_figures
from chainlearn_ray.results.store import read_results


def _machine() -> str:
    import os

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.platform()}, {os.cpu_count()} CPU cores, {memory:.0f} GiB memory, no GPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path)
    p.add_argument("--out", type=Path, default=Path("docs/study.md"))
    p.add_argument("--intro", type=Path, help="hand-written Markdown placed under the title")
    p.add_argument("--command", action="append", default=[], help="a command that made it")
    p.add_argument("--title", default="CPU study")
    args = p.parse_args()

    df = read_results(args.results)
    table_args = argparse.Namespace(metric="accuracy", baseline="ours", gwei=None, eth_usd=None,
                                    n_boot=10_000, seed=0, results=args.results)
    figures_dir = args.out.parent / args.out.stem
    written = make_figures(df, figures_dir, "ours", dpi=110)
    manifest_path = args.results / "sweep_manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    lines = [f"# {args.title}", ""]
    if args.intro:
        lines += [args.intro.read_text().strip(), ""]
    lines += ["## How it was made", ""]
    lines += ["```bash", *args.command, f"python experiments/study_doc.py {args.results} "
              f"--out {args.out}", "```", ""]
    lines.append(f"- Machine: {_machine()}.")
    if manifest:
        lines.append(f"- Wall time of the sweep's last sitting: {manifest.get('seconds', 0):.0f} s "
                     f"({len(manifest.get('finished', []))} cells finished, "
                     f"{len(manifest.get('failed', []))} failed), git revision "
                     f"`{manifest.get('git_revision', '?')}`.")
        versions = manifest.get("versions", {})
        lines.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
                     + ".")
    lines += [f"- Results: {stats.describe(df)}", ""]
    for _, heading, _, markdown in stats.sections(df, table_args):
        lines += [f"## {heading}", "", markdown, ""]
    pngs = [w for w in written if w.suffix == ".png"]
    if pngs:
        lines += ["## Figures", ""]
        for png in pngs:
            rel = png.relative_to(args.out.parent)
            lines += [f"![{png.stem}]({rel.as_posix()})", ""]
    for pdf in (w for w in written if w.suffix == ".pdf"):
        pdf.unlink()
    args.out.write_text("\n".join(lines).rstrip() + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
