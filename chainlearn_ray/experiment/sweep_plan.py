"""A sweep expanded: the experiment document's grid turned into one resolved run cell per trial,
and the synthetic datasets its cells read."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.grid import (
    Cell,
    SweepGrid,
    SyntheticData,
    cell_name,
    parse_grid,
)
from chainlearn_ray.experiment.loading import from_dict, read_yaml_mapping
from chainlearn_ray.experiment.study import StudyConfig, study_from_dict

logger = logging.getLogger(__name__)

#: Folder of a sweep's generated synthetic datasets, inside the sweep folder.
SYNTHETIC_FOLDER = "data"
#: Environment variable naming the folder of real MedMNIST files.
DATA_ENV = "CHAINLEARN_DATA"


@dataclass(frozen=True)
class SweepPlan:
    """An expanded sweep: the grid, the study settings and one resolved cell per trial."""

    name: str
    grid: SweepGrid
    study: StudyConfig
    cells: tuple[Cell, ...]
    synthetic_dir: Path
    document: Mapping[str, Any]
    source: str | None = None

    def cell(self, name: str) -> Cell:
        """The cell called ``name`` (raises ConfigError when there is none)."""
        for cell in self.cells:
            if cell.name == name:
                return cell
        raise ConfigError(f"sweep {self.name!r} has no cell {name!r}")


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {} if child is None else dict(child)
            node[part] = child
        node = child
    node[leaf] = value


def repo_root(path: Path) -> Path:
    """The nearest folder at or above ``path`` holding ``pyproject.toml`` or ``.git``."""
    start = path.resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return folder
    return start


def expand_sweep(
    document: Mapping[str, Any],
    synthetic_dir: str | Path,
    *,
    base_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    source: str | None = None,
) -> SweepPlan:
    """Expand an experiment document (parsed YAML) into one resolved :class:`Cell` per trial.

    Parameters
    ----------
    document:
        The whole file: run-config keys (the base of every cell), ``study:`` and ``sweep:``.
    synthetic_dir:
        Folder of the grid's synthetic datasets (usually ``<sweep folder>/data``).
    base_dir:
        Folder that relative ``data.data_dir`` values are resolved against (default: cwd).
    data_dir:
        Folder of real MedMNIST files; overrides ``$CHAINLEARN_DATA`` and the file's value.
    overrides:
        Dotted run-config overrides applied to every cell (after the per-dataset ones).
    source:
        Where the document came from (for messages and the manifest).

    Returns
    -------
    SweepPlan

    Raises
    ------
    ConfigError
        Invalid sweep or study section, or a cell whose config does not validate.
    """
    if not isinstance(document, Mapping):
        raise ConfigError("an experiment file must hold a mapping at the top level")
    grid = parse_grid(document.get("sweep"))
    study = study_from_dict(document.get("study"))
    base = {k: copy.deepcopy(v) for k, v in document.items()
            if k not in ("sweep", "study", "description")}
    real_dir: str | None = None
    if data_dir is not None:
        real_dir = str(Path(data_dir).expanduser().resolve())
    elif os.environ.get(DATA_ENV):
        real_dir = str(Path(os.environ[DATA_ENV]).expanduser().resolve())
    root = Path(base_dir) if base_dir is not None else Path.cwd()
    synth = Path(synthetic_dir).resolve()
    cells: list[Cell] = []
    for dataset in grid.datasets:
        for alpha in grid.alphas:
            for seed, eps in ((s, e) for s in grid.seeds for e in grid.dp_epsilons or (None,)):
                raw = copy.deepcopy(base)
                for key, value in {**grid.overrides.get(dataset, {}),
                                   **dict(overrides or {})}.items():
                    _set_dotted(raw, key, value)
                _set_dotted(raw, "data.dataset", dataset)
                _set_dotted(raw, "data.alpha", alpha)
                raw["seed"] = seed
                if eps is not None:
                    _set_dotted(raw, "train.dp.epsilon", eps)
                if dataset in grid.synthetic:
                    _set_dotted(raw, "data.data_dir", str(synth))
                    _set_dotted(raw, "data.download", False)
                elif real_dir is not None:
                    _set_dotted(raw, "data.data_dir", real_dir)
                else:
                    given = (raw.get("data") or {}).get("data_dir")
                    if given:
                        _set_dotted(raw, "data.data_dir",
                                    str((root / Path(str(given)).expanduser()).resolve()))
                name = cell_name(dataset, alpha, seed, eps)
                try:
                    cfg = from_dict(raw)
                except ConfigError as exc:
                    raise ConfigError(f"sweep cell {name}: {exc}") from None
                cells.append(Cell(name, dataset, alpha, seed, cfg, eps))
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"sweep has duplicate cells {dup}: make datasets, alphas and seeds "
                          "unique")
    unknown_faults = [f for f in grid.faults if f.rpartition(":")[0] not in names]
    if unknown_faults:
        raise ConfigError(f"sweep faults {unknown_faults} name no cell of the grid")
    name = str(document.get("name", "sweep"))
    return SweepPlan(name, grid, study, tuple(cells), synth, copy.deepcopy(dict(document)),
                     source)


def load_sweep(
    path: str | Path,
    synthetic_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> SweepPlan:
    """Read an experiment YAML file and expand its sweep (see :func:`expand_sweep`).

    Relative ``data.data_dir`` values are resolved against the repository holding the file
    (the nearest folder with ``pyproject.toml`` or ``.git``), so ``../shared/data`` means the
    same folder wherever the command runs.
    """
    p = Path(path)
    doc = read_yaml_mapping(p)
    return expand_sweep(doc, synthetic_dir, base_dir=repo_root(p.parent), data_dir=data_dir,
                        overrides=overrides, source=str(p.resolve()))


def _matches(path: Path, spec: SyntheticData, size: int) -> bool:
    """Whether an existing synthetic file has the splits, classes and channels of ``spec``."""
    from chainlearn_ray.data.catalog import META_CHANNELS, META_CLASSES

    try:
        with np.load(path) as arrays:
            shapes = {k: arrays[f"{k}_images"].shape for k in ("train", "val", "test")}
            classes, channels = int(arrays[META_CLASSES]), int(arrays[META_CHANNELS])
    except (OSError, KeyError, ValueError):
        return False
    counts = {"train": spec.n_train, "val": spec.n_val, "test": spec.n_test}
    return (classes == spec.n_classes and channels == spec.n_channels
            and all(shapes[k][0] == counts[k] and shapes[k][1] == size for k in counts))


def write_synthetic_data(plan: SweepPlan) -> list[Path]:
    """Write the plan's synthetic datasets into ``plan.synthetic_dir`` once, before trials.

    A file already there with the same splits, classes, channels and size is kept (the
    generator is deterministic, so it holds the same arrays); any other is rewritten.

    Returns
    -------
    list of pathlib.Path
        The dataset files the cells read.
    """
    from chainlearn_ray.data.catalog import dataset_filename
    from chainlearn_ray.data.synthetic import write_synthetic

    written: list[Path] = []
    needed = sorted({(c.dataset, c.config.data.size) for c in plan.cells
                     if c.dataset in plan.grid.synthetic})
    for dataset, size in needed:
        spec = plan.grid.synthetic[dataset]
        path = plan.synthetic_dir / dataset_filename(dataset, size)
        if not (path.is_file() and _matches(path, spec, size)):
            path = write_synthetic(plan.synthetic_dir, dataset, n_classes=spec.n_classes,
                                   n_channels=spec.n_channels, size=size, n_train=spec.n_train,
                                   n_val=spec.n_val, n_test=spec.n_test, seed=spec.seed)
            logger.info("wrote synthetic dataset %s", path)
        written.append(path)
    return written
