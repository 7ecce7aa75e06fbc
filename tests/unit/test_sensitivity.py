"""Tests of the weight sensitivity table against hand-computed and contract weight vectors."""

from __future__ import annotations

from math import comb

import pandas as pd
import pytest

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.results.sensitivity import (
    floor_rounds,
    sensitivity_table,
    sensitivity_wide,
)


def _weights(table: pd.DataFrame, tier: str, column: str) -> list[float]:
    return table[table["tier"] == tier].sort_values("rounds")[column].tolist()


def test_default_table_matches_hand_computed_weights() -> None:
    # base = floor(capMul * 8500 * 9000 / 1e8): Weak 6120, Medium 7650, Strong 9180;
    # + 500 per round (no cap reached within 5 rounds).
    table = sensitivity_table()
    assert len(table) == 18
    assert _weights(table, "weak", "weight") == [6120, 6620, 7120, 7620, 8120, 8620]
    assert _weights(table, "medium", "weight") == [7650, 8150, 8650, 9150, 9650, 10150]
    assert _weights(table, "strong", "weight") == [9180, 9680, 10180, 10680, 11180, 11680]


def test_dropout_expected_and_floor_variants() -> None:
    table = sensitivity_table()
    # E[w] = base + 500 * p * r while 500 * r <= 2500.
    assert _weights(table, "strong", "expected_weight") == pytest.approx(
        [9180 + 500 * 0.6 * r for r in range(6)]
    )
    assert _weights(table, "medium", "expected_weight") == pytest.approx(
        [7650 + 500 * 0.8 * r for r in range(6)]
    )
    assert _weights(table, "weak", "expected_weight") == pytest.approx(
        _weights(table, "weak", "weight")
    )
    # floor(0.6 r) = 0, 0, 1, 1, 2, 3 rounds attended.
    assert _weights(table, "strong", "floor_rounds") == [0, 0, 1, 1, 2, 3]
    assert _weights(table, "strong", "floor_weight") == [9180, 9180, 9680, 9680, 10180, 10680]
    assert _weights(table, "medium", "floor_weight") == [7650, 7650, 8150, 8650, 9150, 9650]
    assert set(table.loc[table["tier"] == "strong", "attendance"]) == {0.6}


def test_contract_vectors() -> None:
    strong = sensitivity_table(confidence=9500, ece=500, max_rounds=1)
    assert _weights(strong, "strong", "weight") == [10830, 11330]
    medium = sensitivity_table(confidence=9000, ece=1000, max_rounds=10)
    w = _weights(medium, "medium", "weight")
    assert w[0] == 8100 and w[3] == 9600 and w[5] == 10600 and w[10] == 10600
    full = sensitivity_table(confidence=10000, ece=0, max_rounds=5)
    assert _weights(full, "strong", "weight")[5] == 14500
    assert _weights(full, "weak", "weight")[5] == 10500
    assert _weights(sensitivity_table(confidence=0, ece=0), "strong", "weight")[2] == 1000


def test_expected_weight_honours_the_bonus_cap() -> None:
    table = sensitivity_table(max_rounds=8, attendance={Tier.WEAK: 0.5})
    expected = sum(comb(8, k) / 256 * (6120 + min(500 * k, 2500)) for k in range(9))
    assert _weights(table, "weak", "expected_weight")[8] == pytest.approx(expected)
    assert expected < 6120 + 500 * 0.5 * 8  # the cap binds for k > 5
    # Tiers not listed attend every round.
    assert set(table.loc[table["tier"] == "strong", "attendance"]) == {1.0}


def test_floor_rounds_has_no_float_error() -> None:
    assert floor_rounds(0.29, 100) == 29
    assert floor_rounds(0.6, 5) == 3


def test_invalid_arguments() -> None:
    with pytest.raises(ConfigError, match="attendance"):
        sensitivity_table(attendance={"weak": 1.5})
    with pytest.raises(ConfigError, match="max_rounds"):
        sensitivity_table(max_rounds=-1)
    with pytest.raises(ConfigError, match="tier"):
        sensitivity_table(attendance={"giant": 0.5})
    with pytest.raises(ConfigError):
        sensitivity_table(confidence=10001)


def test_wide_layout() -> None:
    wide = sensitivity_wide(sensitivity_table(), "weight")
    assert wide.columns.tolist() == ["Tier", "r=0", "r=1", "r=2", "r=3", "r=4", "r=5"]
    assert wide["Tier"].tolist() == ["Weak", "Medium", "Strong"]
    assert wide.iloc[2, 1:].tolist() == [9180, 9680, 10180, 10680, 11180, 11680]
