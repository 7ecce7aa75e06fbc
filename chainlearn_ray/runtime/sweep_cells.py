"""Which config each stored sweep cell ran with: the cell's identity is its name and a digest
of its full run config and study settings.

When a cell's results are stored, its identity (``cells/<name>.identity.json``: digest and
the full config) is written after them; a resumed sweep skips a finished cell only when the
identity on disk equals the cell's identity now, and re-runs a cell whose config changed
(its results are replaced). The sweep manifest reports each cell's own config from these
files, so it never claims a setting a cell did not run with.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from chainlearn_ray.experiment.grid import Cell
from chainlearn_ray.experiment.study import StudyConfig
from chainlearn_ray.results.atomic import write_json_atomic
from chainlearn_ray.results.manifest import config_digest
from chainlearn_ray.results.store import finished_cells

#: Per-cell work folders and their records, inside the sweep folder.
CELLS_FOLDER = "cells"


def cell_identity(cell: Cell, study: StudyConfig) -> dict[str, Any]:
    """The cell's full run config and study settings, and their digest."""
    body = {"config": cell.config.to_dict(), "study": study.to_dict()}
    return {"config_hash": config_digest(body), **body}


def identity_path(out: Path, name: str) -> Path:
    """Where the identity of the stored cell ``name`` lives."""
    return out / CELLS_FOLDER / f"{name}.identity.json"


def forget_identity(out: Path, name: str) -> None:
    """Drop a cell's identity (before its results are replaced)."""
    with contextlib.suppress(FileNotFoundError):
        identity_path(out, name).unlink()


def write_identity(out: Path, name: str, identity: dict[str, Any]) -> None:
    """Record the identity of the cell ``name`` whose results were just stored."""
    write_json_atomic(identity, identity_path(out, name))


def stored_identity(out: Path, name: str) -> dict[str, Any] | None:
    """The identity recorded for the stored cell ``name`` (``None``: none, or unreadable)."""
    try:
        data = json.loads(identity_path(out, name).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def split_finished(out: Path, cells: Iterable[Cell],
                   study: StudyConfig) -> tuple[set[str], set[str]]:
    """(unchanged, changed): the finished cells of ``cells`` in ``out`` whose stored identity
    equals their identity now, and those whose config changed since they ran (a cell stored
    without an identity counts as changed)."""
    on_disk = finished_cells(out)
    same, changed = set(), set()
    for cell in cells:
        if cell.name not in on_disk:
            continue
        stored = stored_identity(out, cell.name) or {}
        if stored.get("config_hash") == cell_identity(cell, study)["config_hash"]:
            same.add(cell.name)
        else:
            changed.add(cell.name)
    return same, changed
