"""Weight sensitivity: ensemble weight against rounds per tier, with and without dropout."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from fractions import Fraction
from types import MappingProxyType
from typing import Final

import pandas as pd
from scipy import stats as sps

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.protocol.rounds import DROPOUT_ATTENDANCE
from chainlearn_ray.protocol.tiers import TIERS, Tier
from chainlearn_ray.protocol.weights import compute_weight

logger = logging.getLogger(__name__)

#: Per-round attendance probability of each tier in the dropout study (Ours-Dropout).
DEFAULT_ATTENDANCE: Final[Mapping[str, float]] = MappingProxyType(DROPOUT_ATTENDANCE)

COLUMNS: Final = (
    "tier",
    "rounds",
    "attendance",
    "weight",
    "expected_weight",
    "floor_rounds",
    "floor_weight",
)


def _attendance(attendance: Mapping[str | Tier, float] | None) -> dict[Tier, float]:
    """Attendance per tier (tiers not listed attend every round), validated to ``[0, 1]``."""
    given = DEFAULT_ATTENDANCE if attendance is None else attendance
    out = dict.fromkeys(TIERS, 1.0)
    for key, value in given.items():
        p = float(value)
        if not 0.0 <= p <= 1.0:
            raise ConfigError(
                f"attendance of tier {key!r} must be a probability in [0, 1], got {value!r}"
            )
        out[Tier.parse(key)] = p
    return out


def floor_rounds(attendance: float, rounds: int) -> int:
    """Rounds participated at expectation, ``floor(p * r)``, computed without float error."""
    return math.floor(Fraction(str(attendance)) * rounds)


def expected_weight(tier: Tier, confidence: int, ece: int, rounds: int, attendance: float) -> float:
    """Expected weight after ``rounds`` rounds when the tier attends each with probability p.

    Rounds participated ``K ~ Binomial(rounds, p)`` (independent attendance, as in
    Ours-Dropout, where an absent hospital gains no round); the expectation is taken over the
    weight itself, ``Σ_k P(K = k) · w(k)``, so the bonus cap is honoured.

    Parameters
    ----------
    tier:
        Hardware tier.
    confidence, ece:
        Fixed-point metrics (``0..10000``).
    rounds:
        Rounds elapsed (``>= 0``).
    attendance:
        Probability of attending one round.

    Returns
    -------
    float
        The expected fixed-point weight.
    """
    ks = range(rounds + 1)
    pmf = sps.binom.pmf(list(ks), rounds, attendance)
    return float(
        sum(
            float(p) * compute_weight(tier, confidence, ece, k)
            for k, p in zip(ks, pmf, strict=True)
        )
    )


def sensitivity_table(
    confidence: int = 8500,
    ece: int = 1000,
    max_rounds: int = 5,
    attendance: Mapping[str | Tier, float] | None = None,
) -> pd.DataFrame:
    """Weight against rounds 0..``max_rounds`` per tier at fixed confidence and ECE.

    Three columns of weights per tier and round count ``r``:

    * ``weight``: full attendance, the hospital has participated in all ``r`` rounds;
    * ``expected_weight``: dropout case, the expectation over ``K ~ Binomial(r, p)`` rounds
      participated (see :func:`expected_weight`);
    * ``floor_weight``: dropout case at the expected participation rounded down,
      ``w(floor(p * r))`` (``floor_rounds``), the weight a hospital holding exactly its
      expected share of whole rounds would get.

    All weights come from :func:`chainlearn_ray.protocol.weights.compute_weight`, the formula the
    contract mirrors.

    Parameters
    ----------
    confidence:
        Fixed-point confidence (``0..10000``).
    ece:
        Fixed-point ECE (``0..10000``).
    max_rounds:
        Largest round count shown (``>= 0``).
    attendance:
        Per-round attendance probability per tier (``"weak"``/``Tier``); default
        Weak 1.0 / Medium 0.8 / Strong 0.6; unlisted tiers attend every round.

    Returns
    -------
    pandas.DataFrame
        Columns ``tier, rounds, attendance, weight, expected_weight, floor_rounds,
        floor_weight``: one row per tier (weak, medium, strong) and round count.

    Raises
    ------
    ConfigError
        When ``max_rounds`` is negative, an attendance is outside ``[0, 1]`` or a metric is
        outside ``0..10000``.
    """
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 0:
        raise ConfigError(f"max_rounds must be a non-negative integer, got {max_rounds!r}")
    probs = _attendance(attendance)
    rows = []
    for tier in TIERS:
        p = probs[tier]
        for r in range(max_rounds + 1):
            k_floor = floor_rounds(p, r)
            rows.append(
                {
                    "tier": tier.label,
                    "rounds": r,
                    "attendance": p,
                    "weight": compute_weight(tier, confidence, ece, r),
                    "expected_weight": expected_weight(tier, confidence, ece, r, p),
                    "floor_rounds": k_floor,
                    "floor_weight": compute_weight(tier, confidence, ece, k_floor),
                }
            )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.astype(
        {"rounds": "int64", "weight": "int64", "floor_rounds": "int64", "floor_weight": "int64"}
    )


def sensitivity_wide(table: pd.DataFrame, column: str = "weight") -> pd.DataFrame:
    """One row per tier, one column per round count (``"r=0"`` ...), holding ``column``."""
    wide = table.pivot(index="tier", columns="rounds", values=column)
    wide = wide.reindex([t.label for t in TIERS if t.label in set(table["tier"])])
    wide.columns = [f"r={r}" for r in wide.columns]
    wide.insert(0, "Tier", [Tier.parse(t).display for t in wide.index])
    return wide.reset_index(drop=True)
