"""Study settings: which methods and attacks a study cell runs, and their knobs."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Final

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.loading import read_yaml_mapping
from chainlearn_ray.methods import names

logger = logging.getLogger(__name__)

#: Attack families a study may run ("spoof" runs with and without PoC).
STUDY_ATTACKS: Final[tuple[str, ...]] = ("lazy", "inflated", "spoof")


@dataclass(frozen=True)
class StudyConfig:
    """What one study cell runs beyond Ours, and the settings of the baselines and costs.

    Attributes
    ----------
    methods:
        Method names (constants of :mod:`chainlearn_ray.methods.names`, e.g. ``"fedavg"``,
        ``"ablation:no_ece"``). Default: every method of the study. Attack methods
        (``"attack:..."``) are selected through ``attacks`` instead.
    attacks:
        Subset of ``("lazy", "inflated", "spoof")``; default all three.
    fedprox_mu:
        FedProx proximal coefficient μ.
    fedmd_public_fraction, fedmd_temperature, fedmd_digest_epochs, fedmd_digest_lr:
        FedMD public split fraction, distillation temperature, digest epochs and learning rate.
    gas_price_gwei, eth_price_usd:
        Prices of the cost rows.
    """

    methods: tuple[str, ...] = tuple(m for m in names.METHODS if not m.startswith("attack:"))
    attacks: tuple[str, ...] = STUDY_ATTACKS
    fedprox_mu: float = 0.01
    fedmd_public_fraction: float = 0.1
    fedmd_temperature: float = 3.0
    fedmd_digest_epochs: int = 2
    fedmd_digest_lr: float = 1e-4
    gas_price_gwei: float = 20.0
    eth_price_usd: float = 3000.0

    def __post_init__(self) -> None:
        valid = tuple(m for m in names.METHODS if not m.startswith("attack:"))
        for method in self.methods:
            if method not in valid:
                raise ConfigError(
                    f"study.methods: unknown method {method!r}; use some of {', '.join(valid)} "
                    f"(attacks are chosen with study.attacks)")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError("study.methods: list each method once")
        for attack in self.attacks:
            if attack not in STUDY_ATTACKS:
                raise ConfigError(f"study.attacks: unknown attack {attack!r}; use some of "
                                  f"{', '.join(STUDY_ATTACKS)}")
        if len(set(self.attacks)) != len(self.attacks):
            raise ConfigError("study.attacks: list each attack once")
        _check_positive("fedprox_mu", self.fedprox_mu, allow_zero=True)
        if not 0.0 < self.fedmd_public_fraction < 1.0:
            raise ConfigError("study.fedmd_public_fraction must lie strictly between 0 and 1 "
                              f"(got {self.fedmd_public_fraction})")
        _check_positive("fedmd_temperature", self.fedmd_temperature)
        if self.fedmd_digest_epochs < 0:
            raise ConfigError("study.fedmd_digest_epochs must be >= 0 "
                              f"(got {self.fedmd_digest_epochs})")
        _check_positive("fedmd_digest_lr", self.fedmd_digest_lr)
        _check_positive("gas_price_gwei", self.gas_price_gwei, allow_zero=True)
        _check_positive("eth_price_usd", self.eth_price_usd, allow_zero=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists for tuples) that :func:`study_from_dict` reads back."""
        out = asdict(self)
        out["methods"] = list(self.methods)
        out["attacks"] = list(self.attacks)
        return out

    def attack_methods(self) -> tuple[str, ...]:
        """Result-table method names of the selected attacks (``spoof`` gives two)."""
        out: list[str] = []
        for attack in self.attacks:
            if attack == "spoof":
                out += [names.attack_method("spoof_no_poc"), names.attack_method("spoof_poc")]
            else:
                out.append(names.attack_method(attack))
        return tuple(out)


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"study.{name} must be a finite number {bound} (got {value!r})")


_FLOAT_FIELDS: Final = ("fedprox_mu", "fedmd_public_fraction", "fedmd_temperature",
                        "fedmd_digest_lr", "gas_price_gwei", "eth_price_usd")


def study_from_dict(section: Mapping[str, Any] | None) -> StudyConfig:
    """Build a :class:`StudyConfig` from the top-level ``study:`` section of a YAML file.

    Parameters
    ----------
    section:
        The mapping (``None``: every default).

    Returns
    -------
    StudyConfig

    Raises
    ------
    ConfigError
        An unknown key, method or attack, or a value of the wrong type; the message names it
        and the valid choices.
    """
    if section is None:
        return StudyConfig()
    if not isinstance(section, Mapping):
        raise ConfigError(f"study: expected a mapping of settings, got {type(section).__name__}")
    known = [f.name for f in fields(StudyConfig)]
    kwargs: dict[str, Any] = {}
    for key, value in section.items():
        if key not in known:
            raise ConfigError(f"study: unknown key {key!r}; valid keys are {', '.join(known)}")
        if key in ("methods", "attacks"):
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise ConfigError(f"study.{key}: expected a list of names, got {value!r}")
            if not all(isinstance(v, str) for v in value):
                raise ConfigError(f"study.{key}: every entry must be a name string ({value!r})")
            kwargs[key] = tuple(value)
        elif key == "fedmd_digest_epochs":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"study.{key}: expected an integer, got {value!r}")
            kwargs[key] = value
        elif key in _FLOAT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"study.{key}: expected a number, got {value!r}")
            kwargs[key] = float(value)
    return StudyConfig(**kwargs)


def load_study(path: str | Path | None) -> StudyConfig:
    """Read the ``study:`` section of an experiments YAML file.

    Parameters
    ----------
    path:
        The YAML file; ``None`` or a file without a ``study:`` section gives the defaults.

    Raises
    ------
    ConfigError
        The file is missing or unreadable, or the section is invalid.
    """
    if path is None:
        return StudyConfig()
    doc = read_yaml_mapping(path)
    logger.debug("study section of %s: %s", path, doc.get("study"))
    return study_from_dict(doc.get("study"))
