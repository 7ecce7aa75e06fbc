"""Trust mode of a run (``chain.mode: trust``): its settings checked, the deployment's
:class:`~chainlearn_ray.chain.trust.TrustConfig`, and Ours in trust mode built from them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chainlearn_ray.chain.trust import SCALE, TrustConfig
from chainlearn_ray.errors import ConfigError

if TYPE_CHECKING:
    from chainlearn_ray.experiment.config import ChainConfig, RunConfig
    from chainlearn_ray.methods.ours_trust import OursTrust

CHAIN_MODES: tuple[str, ...] = ("seed", "trust")
#: Wei amounts stay below 2**53 so result rows (float64) hold them exactly.
_MAX_EXACT_WEI = 2**53


def validate_trust(chain: ChainConfig) -> None:
    """Raise :class:`ConfigError` naming the setting to change for a bad trust setting."""
    if chain.mode not in CHAIN_MODES:
        raise ConfigError(f"chain.mode must be one of {', '.join(CHAIN_MODES)}, got "
                          f"{chain.mode!r}")
    for name in ("stake_wei", "reward_per_round_wei"):
        value = getattr(chain, name)
        if isinstance(value, bool) or not isinstance(value, int) or \
                not 0 <= value < _MAX_EXACT_WEI:
            raise ConfigError(f"chain.{name} must be an integer in 0..2**53-1 wei, got {value!r}")
    for name in ("audit_tolerance", "slash_fraction"):
        value = getattr(chain, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SCALE:
            raise ConfigError(f"chain.{name} must be an integer in 0..{SCALE}, got {value!r}")
    if not 0 < chain.audit_fraction < 1:
        raise ConfigError(f"chain.audit_fraction must be in (0, 1), got {chain.audit_fraction}")
    if chain.spot_checks is not None and chain.spot_checks < 1:
        raise ConfigError(f"chain.spot_checks must be >= 1 (or null for all steps), got "
                          f"{chain.spot_checks}")
    if chain.mode == "trust" and chain.contract:
        raise ConfigError("chain.contract: trust mode deploys its own contract; unset it")


def trust_config_of(cfg: RunConfig) -> TrustConfig:
    """The deployment parameters of ``cfg``'s trust mode: the stake is the minimum, the tier
    thresholds those of the PoC (in milli-samples/s)."""
    c = cfg.chain
    return TrustConfig(c.stake_wei, c.reward_per_round_wei, c.audit_tolerance, c.slash_fraction,
                       int(cfg.poc.weak_below * 1000), int(cfg.poc.medium_below * 1000))


def ours_trust_for(cfg: RunConfig, hardware: Mapping[str, str], data: Any,
                   **inputs: Any) -> OursTrust:
    """Ours in trust mode with ``cfg``'s settings over ``hardware`` (id -> hardware tier);
    its auditor holds a seeded ``chain.audit_fraction`` of ``data``'s test split, whose labels
    no hospital is given. ``inputs`` replace the config's (e.g. ``audit=None``,
    ``verifier_timed=False``, ``behaviours``)."""
    from chainlearn_ray.experiment.methods import ours_for
    from chainlearn_ray.methods.audit import audit_split
    from chainlearn_ray.methods.ours_trust import OursTrust

    split = None
    if cfg.chain.audit:
        split, _ = audit_split(
            data.test.images, data.test.labels, cfg.chain.audit_fraction, cfg.seed,
            n_classes=int(data.n_classes), in_channels=_channels(data, cfg),
            size=cfg.data.resize or cfg.data.size, rgb=cfg.data.rgb,
            normalize=cfg.data.normalize)
    settings: dict[str, Any] = {
        "rounds": cfg.train.rounds, "stake_wei": cfg.chain.stake_wei, "audit": split,
        "verifier_timed": cfg.chain.verifier_timed, "spot_checks": cfg.chain.spot_checks,
        **inputs}
    base = ours_for(cfg, hardware)
    return OursTrust(list(hardware), epochs=base.epochs, seed=base.seed,
                     attendance=base.attendance, deadline=base.deadline, poc=base.poc,
                     **settings)


def _channels(data: Any, cfg: RunConfig) -> int:
    return 3 if cfg.data.rgb else int(data.n_channels)
