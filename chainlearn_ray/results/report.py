"""One self-contained HTML report of a results folder: tables, embedded figures, the manifest.

Everything is inline (CSS, PNG figures as data URIs), so the file can be mailed and opened
anywhere without the results folder. Tables arrive as the Markdown pipe tables that
``chainlearn stats`` prints and are converted here, cell by cell, with HTML escaping.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

#: Manifest keys shown in the report's facts table, in this order, when present.
FACT_KEYS: Final = ("status", "run_id", "name", "git_revision", "chainlearn_ray",
                    "artifact_sha256", "chain_id", "backend", "contract", "created",
                    "seconds", "python", "platform")

_CSS: Final = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:78rem;
padding:0 1rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.86rem}
th,td{border:1px solid #d0d0d0;padding:.22rem .5rem}th{background:#f2f2f2}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1rem 0 2rem}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9rem;color:#444}pre{background:#f7f7f7;padding:.8rem;overflow:auto;
font-size:.8rem}.skipped{color:#777;font-style:italic}
"""


def _cells(line: str) -> list[str]:
    """Cells of one Markdown pipe-table line (``\\|`` is a literal bar)."""
    body = line.strip().removeprefix("|").removesuffix("|")
    cells, cur, escaped = [], [], False
    for ch in body:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "|":
            cells.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    cells.append("".join(cur).strip())
    return cells


def _inline(text: str) -> str:
    """Escaped text with Markdown ``code`` spans as <code> and ``**strong**`` as <strong>."""
    parts = html.escape(text).split("`")
    coded = [f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)]
    out = []
    for i, part in enumerate(coded):
        if i % 2 == 0:
            bold = part.split("**")
            part = "".join(f"<strong>{b}</strong>" if k % 2 else b for k, b in enumerate(bold))
        out.append(part)
    return "".join(out)


def _table_html(lines: Sequence[str]) -> str:
    """An HTML table from Markdown pipe-table lines (header, alignment row, rows)."""
    header = _cells(lines[0])
    aligns = [cell.endswith(":") for cell in _cells(lines[1])] if len(lines) > 1 else []
    out = ["<table>", "<thead><tr>"]
    out += [f"<th>{html.escape(cell)}</th>" for cell in header]
    out.append("</tr></thead><tbody>")
    for line in lines[2:]:
        cells = _cells(line)
        out.append("<tr>" + "".join(
            f'<td{" class=num" if i < len(aligns) and aligns[i] else ""}>{html.escape(c)}</td>'
            for i, c in enumerate(cells)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def markdown_block(text: str) -> str:
    """HTML of the Markdown ``chainlearn stats`` writes: pipe tables, ``- item`` lists,
    paragraphs and one-line ``_emphasis_`` notes."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("|"):
            j = i
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            out.append(_table_html(lines[i:j]))
            i = j
            continue
        if line.startswith("- "):
            j = i
            while j < len(lines) and lines[j].startswith("- "):
                j += 1
            out.append("<ul>" + "".join(f"<li>{_inline(item[2:].strip())}</li>"
                                        for item in lines[i:j]) + "</ul>")
            i = j
            continue
        if line.strip():
            stripped = line.strip()
            if stripped.startswith("_") and stripped.endswith("_") and len(stripped) > 1:
                out.append(f'<p class="skipped">{_inline(stripped[1:-1])}</p>')
            else:
                out.append(f"<p>{_inline(stripped)}</p>")
        i += 1
    return "\n".join(out)


def _facts(manifest: Mapping[str, Any]) -> str:
    rows = []
    for key in FACT_KEYS:
        if key in manifest and not isinstance(manifest[key], Mapping | list):
            rows.append(f"<tr><th>{html.escape(key)}</th>"
                        f"<td>{html.escape(str(manifest[key]))}</td></tr>")
    versions = manifest.get("versions")
    if isinstance(versions, Mapping):
        for name, version in sorted(versions.items()):
            rows.append(f"<tr><th>{html.escape(str(name))}</th>"
                        f"<td>{html.escape(str(version))}</td></tr>")
    return "<table class=facts>" + "".join(rows) + "</table>" if rows else ""


def render_report(
    title: str,
    summary: str,
    sections: Sequence[tuple[str, str]],
    figures: Sequence[tuple[str, bytes]],
    manifest: Mapping[str, Any] | None = None,
) -> str:
    """The whole report as one HTML document.

    Parameters
    ----------
    title, summary:
        Heading and one-line description of the results.
    sections:
        ``(heading, markdown)`` of each table section, in order.
    figures:
        ``(caption, png bytes)`` of each figure, embedded as data URIs.
    manifest:
        The results' manifest (config, versions, git revision, chain facts), or None.
    """
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title>",
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(summary)}</p>"]
    for heading, text in sections:
        parts += [f'<section class="table-section"><h2>{html.escape(heading)}</h2>',
                  markdown_block(text), "</section>"]
    if figures:
        parts.append('<section class="figures"><h2>Figures</h2>')
        for caption, png in figures:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f'<figure><img alt="{html.escape(caption)}" '
                         f'src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.append("</section>")
    parts.append("<section class=manifest><h2>Configuration and versions</h2>")
    if manifest:
        parts.append(_facts(manifest))
        config = {k: v for k, v in manifest.items() if k not in ("versions", *FACT_KEYS)}
        text = json.dumps(config, indent=2, sort_keys=True, default=str)
        parts.append(f"<details open><summary>manifest</summary><pre>{html.escape(text)}"
                     "</pre></details>")
    else:
        parts.append('<p class="skipped">No manifest.json beside these results.</p>')
    parts += ["</section>", "</body></html>"]
    return "\n".join(parts) + "\n"
