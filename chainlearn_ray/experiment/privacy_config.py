"""The ``train.dp`` settings of a run (per tier overridable): parsing, validation before any
actor starts, which hospitals train privately, and the manifest's privacy record."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from chainlearn_ray.errors import ChainlearnError, ConfigError
from chainlearn_ray.learning.privacy import (
    ACCOUNTANT,
    SECURE_MODE,
    DPSettings,
    noise_multiplier,
    require_opacus,
)

if TYPE_CHECKING:
    from chainlearn_ray.experiment.config import RunConfig

#: Default δ of ``train.dp`` (below 1/n of any shard of at least ``data.min_shard`` samples).
DP_DELTA: Final = 1e-5
#: Default per-sample clipping bound C of ``train.dp``.
DP_MAX_GRAD_NORM: Final = 1.0
_KEYS: Final = ("epsilon", "delta", "max_grad_norm")


def _number(value: Any) -> Any:
    """YAML's ``inf`` (text) as a float; anything else as given (type-checked later)."""
    if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "infinity", ".inf"):
        return math.inf
    return value


def parse_dp(value: Any, where: str, base: DPSettings | None = None) -> DPSettings | None:
    """A ``dp`` mapping (or a bare ε) as :class:`DPSettings`, its missing keys taken from
    ``base`` (the run's ``train.dp``) or the defaults; ``None`` stays ``None``."""
    if value is None or isinstance(value, DPSettings):
        return value
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        value = {"epsilon": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping of {', '.join(_KEYS)} (or null)")
    unknown = sorted(set(value) - set(_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; valid keys: {', '.join(_KEYS)}")
    if "epsilon" not in value and base is None:
        raise ConfigError(f"{where}.epsilon is missing: give the target ε (inf: no DP)")
    fallback = {"epsilon": math.inf, "delta": DP_DELTA, "max_grad_norm": DP_MAX_GRAD_NORM}
    if base is not None:
        fallback = {k: getattr(base, k) for k in _KEYS}
    return DPSettings(**{k: _number(value.get(k, fallback[k])) for k in _KEYS})


def parse_dp_sections(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` (a run document) with ``train.dp`` and every ``tiers.<tier>.dp`` built."""
    out = dict(raw)
    train = out.get("train")
    run_dp = None
    if isinstance(train, Mapping) and "dp" in train:
        run_dp = parse_dp(train["dp"], "train.dp")
        out["train"] = {**train, "dp": run_dp}
    tiers = out.get("tiers")
    if isinstance(tiers, Mapping):
        new = {}
        for name, spec in tiers.items():
            if isinstance(spec, Mapping) and "dp" in spec:
                spec = {**spec, "dp": parse_dp(spec["dp"], f"tiers.{name}.dp", run_dp)}
            new[name] = spec
        out["tiers"] = new
    return out


def dp_for(cfg: RunConfig, tier: str | None) -> DPSettings | None:
    """The DP target of a hospital of ``tier`` (its tier's ``dp``, else ``train.dp``;
    ``None``: the run-level one), or ``None`` when it trains without DP."""
    chosen = cfg.train.dp
    if tier is not None and tier in cfg.tiers and cfg.tiers[tier].dp is not None:
        chosen = cfg.tiers[tier].dp
    return chosen if chosen is not None and chosen.enabled else None


def _private_tiers(cfg: RunConfig) -> list[str]:
    return [label for label, n in cfg.hospitals.items() if n > 0 and dp_for(cfg, label)]


def is_private(cfg: RunConfig) -> bool:
    """Whether any hospital (or the pooled trainer) of the run trains with DP; then every
    model of the run is made DP-compatible, so methods that average models share one form."""
    return bool(_private_tiers(cfg)) or dp_for(cfg, None) is not None


def _settings(cfg: RunConfig) -> list[tuple[str, DPSettings]]:
    found = [("train.dp", cfg.train.dp)] + [(f"tiers.{label}.dp", t.dp)
                                            for label, t in cfg.tiers.items()]
    return [(where, dp) for where, dp in found if dp is not None]


def check_dp(cfg: RunConfig) -> None:
    """Raise :class:`ConfigError` (one line, naming the setting) for DP settings that cannot
    work: non-positive ε, δ outside (0, 1/``data.min_shard``), a non-positive clipping bound,
    Opacus missing, or an architecture Opacus cannot make private."""
    for where, dp in _settings(cfg):
        if not dp.epsilon > 0:
            raise ConfigError(f"{where}.epsilon must be positive (inf: no DP), got {dp.epsilon}")
        if not 0 < dp.delta < 1:
            raise ConfigError(f"{where}.delta must lie in (0, 1), got {dp.delta}")
        if not 0 < dp.max_grad_norm < math.inf:
            raise ConfigError(f"{where}.max_grad_norm must be a positive number, got "
                              f"{dp.max_grad_norm}")
        if dp.enabled and not dp.delta < 1.0 / cfg.data.min_shard:
            raise ConfigError(f"{where}.delta {dp.delta:g} must be below 1/n of the smallest "
                              f"shard (data.min_shard {cfg.data.min_shard}: below "
                              f"{1.0 / cfg.data.min_shard:.3g}); lower delta")
    if not is_private(cfg):
        return
    where = "train.dp" if dp_for(cfg, None) else f"tiers.{_private_tiers(cfg)[0]}.dp"
    require_opacus(where)
    channels = 3 if cfg.data.rgb else 1
    for label, tier in cfg.tiers.items():
        try:
            converted_layers(tier.arch, channels)
        except ChainlearnError as exc:
            raise ConfigError(f"tiers.{label}.arch: {exc}") from None


@functools.lru_cache(maxsize=32)
def converted_layers(arch: str, in_channels: int = 1) -> tuple[str, ...]:
    """Layer types Opacus replaces to make ``arch`` private (raises ModelError when it cannot)."""
    from chainlearn_ray.learning.models import build_model
    from chainlearn_ray.learning.privacy import make_private_model

    model = build_model(arch, 2, in_channels, seed=0)
    return tuple(make_private_model(model, arch)[1])


def check_dp_shards(cfg: RunConfig, shard_sizes: Sequence[int]) -> None:
    """With the shards known (before any actor starts): every private hospital's δ is below
    1/n of its shard and its ε is reachable in its planned steps (all rounds × epochs)."""
    if not is_private(cfg):
        return
    epochs = cfg.train.rounds * cfg.train.epochs
    for tier, n in zip(cfg.hospital_tiers(), shard_sizes, strict=True):
        dp = dp_for(cfg, tier.label)
        if dp is not None:
            where = "train.dp" if cfg.tiers[tier.label].dp is None else f"tiers.{tier.label}.dp"
            noise_multiplier(dp, int(n), cfg.train.batch_size, epochs, f"{where}.epsilon")
    pooled = dp_for(cfg, None)
    if pooled is not None:  # Centralized's pooled trainer uses the run's train.dp
        noise_multiplier(pooled, int(sum(shard_sizes)), cfg.train.batch_size, epochs,
                         "train.dp.epsilon")


def settings_fields(cfg: RunConfig) -> dict[str, Any]:
    """The DP fields of a baseline's ``TrainSettings``: the run's target (the pooled trainer
    uses it), the epochs of the whole run and whether models are made DP-compatible."""
    return {"dp": dp_for(cfg, None), "dp_epochs": cfg.train.rounds * cfg.train.epochs,
            "private_models": is_private(cfg)}


def target_epsilon(cfg: RunConfig) -> float | None:
    """The run's ε for tables (``train.dp``'s, else the smallest tier target); ``None``
    when no DP setting is given at all, ``inf`` when one is given and off."""
    found = [dp.epsilon for _where, dp in _settings(cfg)]
    if not found:
        return None
    run = cfg.train.dp
    return run.epsilon if run is not None and run.enabled else min(found)


def privacy_record(cfg: RunConfig) -> dict[str, Any]:
    """The manifest's privacy facts: targets per tier, the accountant, secure mode (off in
    simulation) and which architectures were converted (BatchNorm → GroupNorm)."""
    if not _settings(cfg):
        return {"enabled": False}
    private = is_private(cfg)
    channels = 3 if cfg.data.rgb else 1
    return {
        "enabled": private, "accountant": ACCOUNTANT, "secure_mode": SECURE_MODE,
        "target_epsilon": target_epsilon(cfg),
        "tiers": {label: (None if dp_for(cfg, label) is None else
                          {k: getattr(dp_for(cfg, label), k) for k in _KEYS})
                  for label in cfg.tiers},
        "converted_models": ({t.arch: list(converted_layers(t.arch, channels))
                              for t in cfg.tiers.values()} if private else {}),
        "not_private": "FedMD's digest on the public split; the validation confidence and ECE "
                       "sent to the chain",
    }
