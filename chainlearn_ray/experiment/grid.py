"""Sweep grids: the ``sweep:`` section of an experiment file (datasets × α × seeds), parsed."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from chainlearn_ray.data.partition import alpha_name, parse_alpha
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.config import RunConfig

logger = logging.getLogger(__name__)

#: Keys of the ``sweep:`` section.
SWEEP_KEYS: tuple[str, ...] = (
    "datasets", "alphas", "seeds", "overrides", "max_concurrent", "trial_cpus", "faults",
    "dp_epsilons",
)
#: CPUs reserved for a trial's own process (it drives the actors and evaluates).
TRIAL_CPUS = 0.5

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
    """One trial of a sweep: a (dataset, α, seed[, ε]) point and its fully resolved run config.

    ``dp_epsilon``: the cell's ``train.dp.epsilon`` on the ``dp_epsilons`` axis (``inf``: no
    DP; ``None``: the grid has no such axis).
    """

    name: str
    dataset: str
    alpha: float
    seed: int
    config: RunConfig
    dp_epsilon: float | None = None

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
    dp_epsilons: tuple[float, ...] = ()

    @property
    def size(self) -> int:
        """Number of cells."""
        return (len(self.datasets) * len(self.alphas) * len(self.seeds)
                * max(1, len(self.dp_epsilons)))

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
            "dp_epsilons": [str(e) if e == float("inf") else e for e in self.dp_epsilons],
        }


def cell_name(dataset: str, alpha: float, seed: int, dp_epsilon: float | None = None) -> str:
    """Stable name of a cell, e.g. ``"pneumoniamnist_mild_s0"`` (a safe file stem), with
    ``_eps8`` / ``_epsinf`` on a ``dp_epsilons`` axis."""
    name = f"{dataset}_{alpha_name(alpha)}_s{seed}"
    return name if dp_epsilon is None else f"{name}_eps{dp_epsilon:g}"


def _dp_epsilons(section: Mapping[str, Any]) -> tuple[float, ...]:
    """The ``dp_epsilons`` axis: positive numbers, ``inf`` for no DP, each once."""
    if section.get("dp_epsilons") is None:
        return ()
    out: list[float] = []
    for value in _as_list(section, "dp_epsilons"):
        text = str(value).strip().lower()
        eps = float("inf") if text in ("inf", ".inf", "infinity") else value
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ConfigError(f"sweep.dp_epsilons entry {value!r} must be a positive number or "
                              "inf (no DP)")
        out.append(float(eps))
    if len(set(out)) != len(out):
        raise ConfigError(f"sweep.dp_epsilons {out} repeat a value: duplicate cells")
    return tuple(out)


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
        trial_cpus: x, faults: ["<cell>:raise"], dp_epsilons: [inf, 8, 3, 1]}``.

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
                     faults, _dp_epsilons(section))
