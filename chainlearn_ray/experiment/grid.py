"""Sweep grids: the ``sweep:`` section of an experiment file expanded into resolved run cells."""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from chainlearn_ray.data.partition import alpha_name, parse_alpha
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.experiment.loading import from_dict, read_yaml_mapping
from chainlearn_ray.experiment.study import StudyConfig, study_from_dict

logger = logging.getLogger(__name__)

#: Keys of the ``sweep:`` section.
SWEEP_KEYS: tuple[str, ...] = (
    "datasets", "alphas", "seeds", "overrides", "max_concurrent", "trial_cpus", "faults",
)
#: CPUs reserved for a trial's own process (it drives the actors and evaluates).
TRIAL_CPUS = 0.5
#: Folder of a sweep's generated synthetic datasets, inside the sweep folder.
SYNTHETIC_FOLDER = "data"
#: Environment variable naming the folder of real MedMNIST files.
DATA_ENV = "CHAINLEARN_DATA"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class SyntheticData:
    """A generated dataset of the grid (written by ``write_synthetic`` before trials start)."""

    n_classes: int = 2
    n_channels: int = 1
    n_train: int = 600
    n_val: int = 200
    n_test: int = 200
    seed: int = 0


@dataclass(frozen=True)
class Cell:
    """One trial of a sweep: a (dataset, α, seed) point and its fully resolved run config."""

    name: str
    dataset: str
    alpha: float
    seed: int
    config: RunConfig

    @property
    def alpha_label(self) -> str:
        """The non-IID level name (``"mild"``) or the number as text."""
        return alpha_name(self.alpha)


@dataclass(frozen=True)
class SweepGrid:
    """The parsed ``sweep:`` section (see :func:`parse_grid`)."""

    datasets: tuple[str, ...]
    alphas: tuple[float, ...]
    seeds: tuple[int, ...]
    synthetic: Mapping[str, SyntheticData] = field(default_factory=dict)
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    max_concurrent: int | None = None
    trial_cpus: float = TRIAL_CPUS
    faults: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        """Number of cells."""
        return len(self.datasets) * len(self.alphas) * len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for manifests."""
        return {
            "datasets": list(self.datasets),
            "alphas": [alpha_name(a) for a in self.alphas],
            "seeds": list(self.seeds),
            "synthetic": {k: {f.name: getattr(v, f.name) for f in fields(v)}
                          for k, v in self.synthetic.items()},
            "overrides": {k: dict(v) for k, v in self.overrides.items()},
            "max_concurrent": self.max_concurrent,
            "trial_cpus": self.trial_cpus,
            "faults": list(self.faults),
        }


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


def cell_name(dataset: str, alpha: float, seed: int) -> str:
    """Stable name of a cell, e.g. ``"pneumoniamnist_mild_s0"`` (a safe file stem)."""
    return f"{dataset}_{alpha_name(alpha)}_s{seed}"


def _as_list(section: Mapping[str, Any], key: str) -> list[Any]:
    value = section.get(key)
    if value is None:
        raise ConfigError(f"sweep.{key} is missing: list at least one entry")
    if isinstance(value, (str, int, float, Mapping)):
        value = [value]
    if not isinstance(value, Sequence) or not value:
        raise ConfigError(f"sweep.{key} is empty: list at least one entry")
    return list(value)


def _synthetic(name: str, spec: Any) -> SyntheticData:
    if spec is None or spec is True:
        return SyntheticData()
    if not isinstance(spec, Mapping):
        raise ConfigError(f"sweep.datasets {name}: synthetic must be a mapping of "
                          f"{', '.join(f.name for f in fields(SyntheticData))}")
    known = [f.name for f in fields(SyntheticData)]
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise ConfigError(f"sweep.datasets {name}: unknown synthetic key(s) {unknown}; "
                          f"valid keys: {', '.join(known)}")
    try:
        data = SyntheticData(**{k: int(v) for k, v in spec.items()})
    except (TypeError, ValueError):
        raise ConfigError(f"sweep.datasets {name}: synthetic settings must be integers") from None
    if not 2 <= data.n_classes <= 256 or data.n_channels not in (1, 3):
        raise ConfigError(f"sweep.datasets {name}: synthetic needs 2..256 classes and 1 or 3 "
                          "channels")
    if min(data.n_train, data.n_val, data.n_test) < 1:
        raise ConfigError(f"sweep.datasets {name}: every synthetic split needs >= 1 sample")
    return data


def _dotted(name: str, where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{where} for {name!r} must map dotted keys (train.epochs) to values")
    if any(k.split(".")[0] in ("sweep", "study") for k in value):
        raise ConfigError(f"{where} for {name!r} cannot change the sweep or study sections")
    return dict(value)


def parse_grid(section: Any) -> SweepGrid:
    """Parse the ``sweep:`` section of an experiment file.

    Parameters
    ----------
    section:
        ``{datasets: [flag | {name, synthetic: {...}, overrides: {...}}], alphas: [...],
        seeds: [...], overrides: {dataset: {dotted.key: value}}, max_concurrent: N,
        trial_cpus: x, faults: ["<cell>:raise"]}``.

    Raises
    ------
    ConfigError
        Unknown keys, empty lists, duplicate datasets/levels/seeds, bad values.
    """
    if not isinstance(section, Mapping):
        raise ConfigError("the experiment file has no sweep: section (a mapping with datasets, "
                          "alphas and seeds); `chainlearn run --config` runs a single config")
    unknown = sorted(set(section) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in sweep; valid keys: {', '.join(SWEEP_KEYS)}")
    datasets: list[str] = []
    synthetic: dict[str, SyntheticData] = {}
    overrides: dict[str, dict[str, Any]] = {}
    for entry in _as_list(section, "datasets"):
        if isinstance(entry, str):
            name, extra = entry, {}
        elif isinstance(entry, Mapping):
            bad = sorted(set(entry) - {"name", "synthetic", "overrides"})
            if bad or "name" not in entry:
                raise ConfigError(f"sweep.datasets entry {dict(entry)!r}: use a flag or "
                                  "{name, synthetic, overrides}")
            name = str(entry["name"])
            extra = _dotted(name, "sweep.datasets overrides", entry.get("overrides"))
            if "synthetic" in entry:
                from chainlearn_ray.data.catalog import medmnist_info

                if name in medmnist_info():
                    raise ConfigError(f"sweep dataset {name!r} is a MedMNIST flag: give the "
                                      "synthetic dataset another name")
                synthetic[name] = _synthetic(name, entry["synthetic"])
        else:
            raise ConfigError(f"sweep.datasets entry {entry!r} must be a name or a mapping")
        if not _NAME.match(name):
            raise ConfigError(f"sweep dataset name {name!r}: use letters, digits and . _ + -")
        if name in datasets:
            raise ConfigError(f"sweep.datasets lists {name!r} twice: duplicate cells")
        datasets.append(name)
        overrides[name] = extra
    for name, extra in (section.get("overrides") or {}).items():
        if name not in datasets:
            raise ConfigError(f"sweep.overrides names dataset {name!r}, which is not in "
                              f"sweep.datasets ({', '.join(datasets)})")
        overrides[name] = {**overrides[name], **_dotted(name, "sweep.overrides", extra)}
    alphas = [parse_alpha(a) for a in _as_list(section, "alphas")]
    labels = [alpha_name(a) for a in alphas]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"sweep.alphas {labels} repeat a level: duplicate cells")
    seeds: list[int] = []
    for seed in _as_list(section, "seeds"):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"sweep.seeds entry {seed!r} must be an integer >= 0")
        seeds.append(seed)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"sweep.seeds {seeds} repeat a seed: duplicate cells")
    max_conc = section.get("max_concurrent")
    if max_conc is not None and (isinstance(max_conc, bool) or not isinstance(max_conc, int)
                                 or max_conc < 1):
        raise ConfigError(f"sweep.max_concurrent must be an integer >= 1, got {max_conc!r}")
    trial_cpus = section.get("trial_cpus", TRIAL_CPUS)
    if isinstance(trial_cpus, bool) or not isinstance(trial_cpus, (int, float)) or not (
        0 < trial_cpus <= 64
    ):
        raise ConfigError(f"sweep.trial_cpus must be a positive number, got {trial_cpus!r}")
    faults = tuple(str(f) for f in (section.get("faults") or ()))
    for fault in faults:
        if not fault.endswith(":raise"):
            raise ConfigError(f"sweep fault {fault!r} must look like <cell name>:raise")
    return SweepGrid(tuple(datasets), tuple(alphas), tuple(seeds), synthetic,
                     {k: v for k, v in overrides.items() if v}, max_conc, float(trial_cpus),
                     faults)


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
            for seed in grid.seeds:
                raw = copy.deepcopy(base)
                for key, value in {**grid.overrides.get(dataset, {}),
                                   **dict(overrides or {})}.items():
                    _set_dotted(raw, key, value)
                _set_dotted(raw, "data.dataset", dataset)
                _set_dotted(raw, "data.alpha", alpha)
                raw["seed"] = seed
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
                name = cell_name(dataset, alpha, seed)
                try:
                    cfg = from_dict(raw)
                except ConfigError as exc:
                    raise ConfigError(f"sweep cell {name}: {exc}") from None
                cells.append(Cell(name, dataset, alpha, seed, cfg))
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
