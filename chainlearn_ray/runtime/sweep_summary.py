"""The record of a sweep: what each cell did, and the sweep's manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainlearn_ray.experiment.sweep_plan import SweepPlan
from chainlearn_ray.results.manifest import build_manifest
from chainlearn_ray.results.store import SWEEP_RESULTS, finished_cells, write_json_atomic
from chainlearn_ray.runtime.sweep_cells import CELLS_FOLDER, cell_identity, stored_identity

__all__ = ["CELLS_FOLDER", "SWEEP_MANIFEST", "CellOutcome", "SweepSummary",
           "write_sweep_manifest"]

#: The sweep's own manifest inside the sweep folder.
SWEEP_MANIFEST = "sweep_manifest.json"


@dataclass
class CellOutcome:
    """What happened to one cell in this invocation."""

    name: str
    dataset: str
    alpha: float
    seed: int
    status: str  # finished | skipped | failed | pending
    seconds: float | None = None
    attempts: int = 0
    error: str | None = None


@dataclass
class SweepSummary:
    """Result of :func:`run_sweep`: where the results are and what each cell did."""

    out_dir: Path
    name: str
    cells: list[CellOutcome]
    seconds: float
    max_concurrent: int
    trial_bundles: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    interrupted: bool = False

    def count(self, status: str) -> int:
        """Number of cells with ``status``."""
        return sum(c.status == status for c in self.cells)

    @property
    def results_dir(self) -> Path:
        """The Parquet dataset (partitioned by dataset)."""
        return self.out_dir / SWEEP_RESULTS

    def render(self) -> str:
        """The end-of-sweep summary lines."""
        lines = [
            f"Sweep {self.name}: {self.count('finished')} cells done, {self.count('skipped')} "
            f"skipped (already finished), {self.count('failed')} failed, "
            f"{self.count('pending')} not run, in {self.seconds:.1f}s"
            + (" (interrupted)" if self.interrupted else ""),
        ]
        for c in self.cells:
            if c.status == "failed":
                lines.append(f"  failed {c.name} after {c.attempts} attempt(s): {c.error}")
        lines.append(f"results: {self.results_dir} (manifest {self.out_dir / SWEEP_MANIFEST})")
        lines.append(f"next: chainlearn stats {self.out_dir}   chainlearn figures {self.out_dir}")
        return "\n".join(lines)


def error_text(error: BaseException | None) -> str | None:
    """The last line of an error's text (at most 500 characters)."""
    if error is None:
        return None
    text = str(error).strip().splitlines()
    tail = [line for line in text if line.strip()][-1:] if text else []
    return (tail[0] if tail else type(error).__name__)[:500]


def previous_cells(out: Path) -> dict[str, Any]:
    """Cell name -> its entry in the sweep folder's manifest (empty when there is none)."""
    try:
        return dict(json.loads((out / SWEEP_MANIFEST).read_text()).get("cells", {}))
    except (OSError, ValueError):
        return {}


def write_sweep_manifest(out: Path, plan: SweepPlan, summary: SweepSummary,
                         status: str) -> None:
    """Rewrite ``sweep_manifest.json``: every cell's status (finished cells on disk win) and
    its own config and config digest, with the sweep's settings."""
    cells = previous_cells(out)
    for c in summary.cells:
        entry = dict(cells.get(c.name, {}))
        entry.update(dataset=c.dataset, alpha=c.alpha, seed=c.seed)
        if c.status != "skipped":
            entry.update(status=c.status, seconds=c.seconds, attempts=c.attempts, error=c.error)
        else:
            entry.setdefault("status", "finished")
        cells[c.name] = entry
    on_disk = finished_cells(out)
    now = {c.name: cell_identity(c, plan.study) for c in plan.cells}
    for name, entry in cells.items():
        if name in on_disk:
            entry["status"] = "finished"
        # each cell's own config: what it ran with when stored, else what it would run with
        identity = (stored_identity(out, name) if name in on_disk else None) or now.get(name)
        if identity is not None:
            entry.update(config_hash=identity["config_hash"], config=identity["config"])
    other = sorted(n for n, e in cells.items() if n in now and e.get("status") == "finished"
                   and e.get("config_hash") != now[n]["config_hash"])
    manifest = build_manifest(
        {k: v for k, v in plan.document.items() if k not in ("sweep", "study")},
        sweep=plan.grid.to_dict(), study=plan.study.to_dict(), source=plan.source,
        name=plan.name, status=status, max_concurrent=summary.max_concurrent,
        trial_bundles=summary.trial_bundles, seconds=summary.seconds, cells=cells,
        finished=sorted(n for n, e in cells.items() if e.get("status") == "finished"),
        failed=sorted(n for n, e in cells.items() if e.get("status") == "failed"),
        # finished cells whose config is not the file's now (not selected by --cells since)
        cells_with_other_config=other,
    )
    write_json_atomic(manifest, out / SWEEP_MANIFEST)
