"""Trust mode of a run (``chain.mode: trust``): its settings checked and the deployment's
:class:`~chainlearn_ray.chain.trust.TrustConfig` (Ours in trust mode is built by
:mod:`chainlearn_ray.experiment.trust_method`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chainlearn_ray.chain.trust import SCALE, TrustConfig
from chainlearn_ray.errors import ConfigError

if TYPE_CHECKING:
    from chainlearn_ray.experiment.config import ChainConfig, RunConfig

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
