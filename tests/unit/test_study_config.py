"""StudyConfig loading and validation, the cost and budget rows, and hospital behaviours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.study import STUDY_ATTACKS, StudyConfig, load_study, study_from_dict
from chainlearn_ray.hospital.spec import Behaviour, shard_positions
from chainlearn_ray.methods import names
from chainlearn_ray.methods.names import budget_rows
from chainlearn_ray.results.rows import RunKey, cost_rows

KEY = RunKey("r", "synthetic", 1.0, 42, "ours")


def test_defaults_cover_every_method_and_attack() -> None:
    study = StudyConfig()
    assert set(study.methods) == {m for m in names.METHODS if not m.startswith("attack:")}
    assert study.attacks == STUDY_ATTACKS
    assert study.attack_methods() == tuple(names.attack_method(a) for a in names.ATTACKS)
    assert (study.fedprox_mu, study.fedmd_temperature, study.fedmd_digest_epochs) == (0.01, 3.0, 2)


def test_round_trip_through_dict() -> None:
    study = StudyConfig(methods=("ours", "fedavg"), attacks=("spoof",), gas_price_gwei=5.0)
    assert study_from_dict(study.to_dict()) == study
    assert study.attack_methods() == ("attack:spoof_no_poc", "attack:spoof_poc")


@pytest.mark.parametrize(("section", "needle"), [
    ({"methods": ["ours", "fedsgd"]}, "'fedsgd'"),
    ({"attacks": ["sybil"]}, "'sybil'"),
    ({"gas_price": 3}, "valid keys are"),
    ({"methods": "ours"}, "list of names"),
    ({"fedmd_digest_epochs": 1.5}, "integer"),
    ({"fedprox_mu": "small"}, "number"),
    ({"fedmd_public_fraction": 1.0}, "between 0 and 1"),
    ({"methods": ["ours", "ours"]}, "once"),
])
def test_bad_sections_name_the_problem(section: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        study_from_dict(section)


def test_unknown_method_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        study_from_dict({"methods": ["nope"]})
    assert "fedavg" in str(err.value) and "ablation:no_ece" in str(err.value)


def test_load_study_reads_the_section(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("name: x\nstudy:\n  methods: [ours, equal_weight]\n  attacks: [lazy]\n"
                    "  eth_price_usd: 2500\n")
    study = load_study(path)
    assert study.methods == ("ours", "equal_weight") and study.attacks == ("lazy",)
    assert study.eth_price_usd == 2500.0
    bare = tmp_path / "bare.yaml"
    bare.write_text("name: x\n")
    assert load_study(bare) == StudyConfig() == load_study(None)
    with pytest.raises(ConfigError, match="does not exist"):
        load_study(tmp_path / "missing.yaml")


def test_cost_rows_price_every_gas_row() -> None:
    rows = [names.result_row(KEY, "ours", 1, "all", "", "gas_startNewRound", 50_000),
            names.result_row(KEY, "ours", 1, "h00", "weak", "accuracy", 0.9)]
    (cost,) = cost_rows(rows, gas_price_gwei=20.0, eth_price_usd=3000.0)
    assert cost["metric"] == "cost_usd_startNewRound"
    assert cost["value"] == pytest.approx(50_000 * 20e-9 * 3000.0)
    assert budget_rows(KEY, "fedavg", 5, 3)[2]["value"] == 15
    assert {r["method"] for r in budget_rows(KEY, "fedavg", 5, 3)} == {"fedavg"}


def test_behaviour_validation_and_shard_subset() -> None:
    assert Behaviour().honest and not Behaviour(total_epochs=1).honest
    for bad in ({"data_fraction": 0.0}, {"total_epochs": -1}, {"reported": (10_001, 0)},
                {"claimed_tier": "huge"}):
        with pytest.raises(ConfigError):
            Behaviour(**bad)  # type: ignore[arg-type]
    assert np.array_equal(shard_positions(50, 1.0, 42, 0), np.arange(50))
    sub = shard_positions(50, 0.1, 42, 0)
    assert len(sub) == 5 and np.array_equal(sub, np.sort(sub))
    assert np.array_equal(sub, shard_positions(50, 0.1, 42, 0))
