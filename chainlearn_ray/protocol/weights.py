"""The fixed-point ensemble weight formula (SPEC.md §2), mirrored by the contract."""

from __future__ import annotations

import enum
import logging
from types import MappingProxyType
from typing import Final

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.protocol.tiers import Tier

logger = logging.getLogger(__name__)

#: Fixed-point scale of confidence, ECE, capacity multipliers and weights (1.0 == 10000).
SCALE: Final[int] = 10_000

#: Capacity multiplier per tier (fixed point): Weak 0.8, Medium 1.0, Strong 1.2.
CAP_MUL: Final = MappingProxyType({Tier.WEAK: 8_000, Tier.MEDIUM: 10_000, Tier.STRONG: 12_000})

#: Participation bonus per round taken part in.
BONUS_PER_ROUND: Final[int] = 500

#: Upper bound of the participation bonus (reached after 5 rounds).
MAX_BONUS: Final[int] = 2_500

#: Upper bound of a weight.
MAX_WEIGHT: Final[int] = 15_000

#: Capacity multiplier used when the capacity term is switched off (the "No CapMul" ablation).
NEUTRAL_CAP_MUL: Final[int] = SCALE


class WeightScore(enum.IntEnum):
    """What the score term of the weight formula (the submission's ``confidence`` field) holds;
    chosen per deployment, as the contract's ``WeightScore``.

    ``CONFIDENCE`` is the seed protocol's (mean max-softmax on the validation split).
    ``BALANCED_ACCURACY`` is the mean per-class recall on the validation split: a model that
    predicts one class for everything scores ``1 / k`` and earns a small weight however
    confident it is. The formula is the same fixed-point one for both.
    """

    CONFIDENCE = 0
    BALANCED_ACCURACY = 1

    @property
    def label(self) -> str:
        """``"confidence"`` or ``"balanced_accuracy"``."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: WeightScore | str | int) -> WeightScore:
        """A score from its label, name or number; a one-line :class:`ConfigError` otherwise."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            for member in cls:
                if value.strip().lower() == member.label:
                    return member
        elif isinstance(value, int) and not isinstance(value, bool) and value in {m.value
                                                                                   for m in cls}:
            return cls(value)
        raise ConfigError(f"weight score {value!r} is not one of "
                          f"{', '.join(m.label for m in cls)}")


#: Labels of :class:`WeightScore`, for configuration checks.
WEIGHT_SCORES: Final[tuple[str, ...]] = tuple(m.label for m in WeightScore)


def _check_metric(name: str, value: int) -> int:
    """Validate a fixed-point metric (an int in ``0..SCALE``) and return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"{name} must be an integer in fixed point 0..{SCALE} (int(x * {SCALE})), got {value!r}"
        )
    if not 0 <= value <= SCALE:
        raise ConfigError(f"{name} must be within 0..{SCALE} (fixed point), got {value}")
    return int(value)


def participation_bonus(rounds: int) -> int:
    """Bonus for ``rounds`` rounds of participation: ``min(500 * rounds, 2500)``.

    Parameters
    ----------
    rounds:
        Number of rounds the hospital has taken part in (``>= 0``).

    Returns
    -------
    int
        The bonus in fixed point.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ConfigError(f"rounds participated must be a non-negative integer, got {rounds!r}")
    return min(BONUS_PER_ROUND * rounds, MAX_BONUS)


def compute_weight(
    tier: Tier | str | int,
    confidence: int,
    ece: int,
    rounds: int,
    *,
    use_capmul: bool = True,
    use_confidence: bool = True,
    use_ece: bool = True,
    use_bonus: bool = True,
) -> int:
    """A hospital's ensemble weight, bit-identical to the contract's ``calculateWeightPure``.

    ``w = min(floor(capMul * conf * (SCALE - ece) / SCALE**2) + min(500 * rounds, 2500), 15000)``
    with ``capMul`` = 8000 / 10000 / 12000 for Weak / Medium / Strong.

    Parameters
    ----------
    tier:
        Hardware tier (``Tier``, ``"weak"``/``"Weak"`` or ``0..2``).
    confidence:
        Mean max-softmax in fixed point, ``int(x * 10000)``, within ``0..10000``.
    ece:
        Expected calibration error in fixed point, within ``0..10000``.
    rounds:
        Rounds the hospital has participated in (``>= 0``).
    use_capmul:
        ``False`` for the "No CapMul" ablation: every tier gets the neutral multiplier 10000.
    use_confidence:
        ``False`` for the "No Conf" ablation: confidence is taken as 10000.
    use_ece:
        ``False`` for the "No ECE" ablation: ECE is taken as 0.
    use_bonus:
        ``False`` for the "No Bonus" ablation: the participation bonus is 0.

    Returns
    -------
    int
        The weight in fixed point, within ``0..15000``.

    Raises
    ------
    ConfigError
        When a metric is outside ``0..10000``, ``rounds`` is negative or the tier is unknown.
    """
    parsed = Tier.parse(tier)
    conf = _check_metric("confidence", confidence)
    err = _check_metric("ece", ece)
    bonus = participation_bonus(rounds)
    cap_mul = CAP_MUL[parsed] if use_capmul else NEUTRAL_CAP_MUL
    if not use_confidence:
        conf = SCALE
    if not use_ece:
        err = 0
    if not use_bonus:
        bonus = 0
    base = (cap_mul * conf * (SCALE - err)) // (SCALE * SCALE)
    return min(base + bonus, MAX_WEIGHT)
