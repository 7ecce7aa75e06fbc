"""Loading a run configuration: YAML files, nested plain data and command-line shorthands,
built into the frozen dataclasses of :mod:`chainlearn_ray.experiment.config` and validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from chainlearn_ray.data.partition import parse_alpha
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.config import (
    DEFAULT_TIERS,
    ChainConfig,
    DataConfig,
    PoCConfig,
    RunConfig,
    RuntimeConfig,
    TierConfig,
    TrainConfig,
    _to_plain,
    validate,
)
from chainlearn_ray.experiment.privacy_config import parse_dp_sections
from chainlearn_ray.learning.cost import POC_KEY
from chainlearn_ray.protocol.tiers import TIERS, Tier

T = TypeVar("T")


def parse_tier_counts(text: str) -> dict[str, int]:
    """``"weak:4,medium:4,strong:4"`` → ``{"weak": 4, "medium": 4, "strong": 4}``."""
    counts = {t.label: 0 for t in TIERS}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, number = part.partition(":")
        if not sep:
            raise ConfigError(f"--tiers entry {part!r} must look like weak:4")
        label = Tier.parse(name).label
        try:
            counts[label] = int(number)
        except ValueError:
            raise ConfigError(f"--tiers count {number!r} for {label} is not an integer") from None
    return counts


def spread_hospitals(n: int) -> dict[str, int]:
    """``n`` hospitals spread over the tiers as evenly as possible (weak gets leftovers first)."""
    if n < 1:
        raise ConfigError(f"--hospitals must be at least 1, got {n}")
    base, extra = divmod(n, len(TIERS))
    return {t.label: base + (1 if i < extra else 0) for i, t in enumerate(TIERS)}


def _build(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys with the valid ones."""
    if data is None:
        return cls()
    if is_dataclass(data):
        return data  # type: ignore[return-value]
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in {where}; valid keys: {', '.join(sorted(known))}"
        )
    return cls(**dict(data))


def _tiers(data: Any) -> dict[str, TierConfig]:
    tiers = dict(DEFAULT_TIERS)
    if data is None:
        return tiers
    if not isinstance(data, Mapping):
        raise ConfigError("tiers must map weak/medium/strong to tier settings")
    for name, spec in data.items():
        label = Tier.parse(name).label
        if isinstance(spec, TierConfig):
            tiers[label] = spec
            continue
        merged = {**_to_plain(tiers[label]), **dict(spec or {})}
        tiers[label] = _build(TierConfig, merged, f"tiers.{label}")
    return tiers


def _runtime_section(section: Any) -> Any:
    """The runtime section with ``hospitals_per_actor`` given as text (CLI) made a number and
    a ``cost_model`` given as ``"arch=seconds,..."`` text (CLI) made a mapping."""
    if not isinstance(section, Mapping):
        return section
    out = dict(section)
    per = out.get("hospitals_per_actor")
    if isinstance(per, str) and per.strip().isdigit():
        out["hospitals_per_actor"] = int(per)
    cost = out.get("cost_model")
    if isinstance(cost, str) and "=" in cost:
        out["cost_model"] = parse_cost_table(cost)
    return out


def parse_cost_table(text: str) -> dict[str, float]:
    """``"tiny_cnn=2e-4,resnet50=0.02,poc_throughput=4000"`` → a cost table mapping."""
    table: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, number = part.partition("=")
        try:
            table[name.strip()] = float(number)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ConfigError(f"cost model entry {part!r} must look like resnet50=0.02 (seconds "
                              f"per 28 px sample) or {POC_KEY}=4000 (samples/s)")
    return table


def _whole(value: Any, where: str) -> int:
    """``value`` as an int, or :class:`ConfigError` naming ``where`` ("three", 2.7, true)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be a whole number, got {value!r}")
    return value


def from_dict(raw: Mapping[str, Any]) -> RunConfig:
    """Build and validate a :class:`RunConfig` from nested plain data (e.g. parsed YAML)."""
    raw = parse_dp_sections(raw or {})
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(raw) - known - {"sweep", "study", "description"})
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {unknown}; valid keys: {sorted(known)}")
    hospitals = raw.get("hospitals", {"weak": 1, "medium": 1, "strong": 1})
    if isinstance(hospitals, int):
        hospitals = spread_hospitals(hospitals)
    elif isinstance(hospitals, str):
        hospitals = parse_tier_counts(hospitals)
    elif isinstance(hospitals, Mapping):
        hospitals = {Tier.parse(k).label: _whole(v, f"hospitals.{k}")
                     for k, v in hospitals.items()}
    else:
        raise ConfigError("hospitals must be a number, 'weak:1,medium:1,strong:1' or a mapping")
    data = dict(raw.get("data") or {})
    if "alpha" in data:
        data["alpha"] = parse_alpha(data["alpha"])
    cfg = RunConfig(
        name=str(raw.get("name", "run")),
        seed=_whole(raw.get("seed", 42), "seed"),
        hospitals={t.label: int(hospitals.get(t.label, 0)) for t in TIERS},
        tiers=_tiers(raw.get("tiers")),
        data=_build(DataConfig, data, "data"),
        train=_build(TrainConfig, raw.get("train"), "train"),
        poc=_build(PoCConfig, raw.get("poc"), "poc"),
        chain=_build(ChainConfig, raw.get("chain"), "chain"),
        runtime=_build(RuntimeConfig, _runtime_section(raw.get("runtime")), "runtime"),
    )
    validate(cfg)
    return cfg


def read_yaml_mapping(path: str | Path, example: str = "experiments/quick.yaml"
                      ) -> dict[str, Any]:
    """The top-level mapping of a YAML experiment file (empty file: ``{}``).

    Raises
    ------
    ConfigError
        When the file is missing, not YAML, or not a mapping at the top level.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist (try {example})")
    try:
        loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {exc}") from None
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"{p} must contain a mapping at the top level")
    return dict(loaded)


def load_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> RunConfig:
    """Load a YAML experiment file (or the defaults) and apply dotted-key ``overrides``.

    Parameters
    ----------
    path:
        YAML file, or ``None`` for the built-in defaults.
    overrides:
        ``{"train.rounds": 5, "data.dataset": "synthetic", "hospitals": "weak:4"}``; ``None``
        values are ignored so CLI flags that were not given leave the file's values alone.
    """
    raw: dict[str, Any] = read_yaml_mapping(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return from_dict(raw)
