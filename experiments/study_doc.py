"""Write a study's Markdown summary from its results folders: every table of ``chainlearn
stats`` (findings included), the figures as PNG beside it, the commands, the machine and the
wall times. Every number in the tables and figures is recomputed from the folders' Parquet;
prose written by hand goes in ``--intro`` (a Markdown file placed under the title).

Usage::

    python experiments/study_doc.py "Main study=runs/cpu-study" \\
        "Defences=runs/cpu-study-defences" "Privacy=runs/cpu-study-privacy" \\
        --out docs/study.md --intro notes.md --command "chainlearn sweep ..."
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
from pathlib import Path

from chainlearn_ray.commands import stats
from chainlearn_ray.results.figures import make_figures
from chainlearn_ray.results.store import read_results

#: Sections shown once (they do not depend on the results), in the first part only.
ONCE = ("sensitivity",)


def _machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.platform()}, {os.cpu_count()} CPU cores, {memory:.0f} GiB memory, no GPU"


def _manifest_line(folder: Path) -> str | None:
    path = folder / "sweep_manifest.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    return (f"wall time of the last sitting {manifest.get('seconds', 0):.0f} s, "
            f"{len(manifest.get('finished', []))} cells finished, "
            f"{len(manifest.get('failed', []))} failed, git revision "
            f"`{manifest.get('git_revision', '?')}`")


def _part(title: str, folder: Path, out: Path, first: bool) -> list[str]:
    df = read_results(folder)
    table_args = argparse.Namespace(metric="accuracy", baseline="ours", gwei=None, eth_usd=None,
                                    n_boot=10_000, seed=0, results=folder)
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    figures_dir = out.parent / out.stem / slug
    written = make_figures(df, figures_dir, "ours", sensitivity=first, dpi=110)
    lines = [f"## {title}", "", f"Results `{folder}`: {stats.describe(df)}"]
    made = _manifest_line(folder)
    if made:
        lines[-1] += f" Sweep: {made}."
    lines.append("")
    targets = df.loc[df["metric"] == "dp_target_epsilon", "value"].nunique()
    for name, heading, _, markdown in stats.sections(df, table_args):
        if markdown.startswith("_Section skipped") or (name in ONCE and not first):
            continue
        if targets > 1 and not name.startswith("privacy"):
            continue  # the other tables would pool the cells of every ε by seed
        lines += [f"### {heading}", "", markdown, ""]
    pngs = [w for w in written if w.suffix == ".png"
            and (targets <= 1 or w.stem.startswith("privacy"))]
    for png in pngs:
        lines += [f"![{title}: {png.stem}]({png.relative_to(out.parent).as_posix()})", ""]
    for unused in (w for w in written if w not in pngs):  # PDFs, figures not shown
        unused.unlink()
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("parts", nargs="+", metavar="TITLE=FOLDER")
    p.add_argument("--out", type=Path, default=Path("docs/study.md"))
    p.add_argument("--intro", type=Path, help="hand-written Markdown placed under the title")
    p.add_argument("--command", action="append", default=[], help="a command that made it")
    p.add_argument("--title", default="CPU study")
    args = p.parse_args()

    lines = [f"# {args.title}", ""]
    if args.intro:
        lines += [args.intro.read_text().strip(), ""]
    lines += ["## How it was made", "", "```bash", *args.command,
              "python experiments/study_doc.py " + " ".join(f'"{x}"' for x in args.parts)
              + f" --out {args.out}", "```", "", f"Machine: {_machine()}.", ""]
    for i, part in enumerate(args.parts):
        title, _, folder = part.partition("=")
        lines += _part(title, Path(folder), args.out, first=i == 0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines).rstrip() + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
