"""The trust-mode adversarial table and figure are recomputed from result rows."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from chainlearn_ray.results.defences import defence_table
from chainlearn_ray.results.defences_figure import defence_figure
from chainlearn_ray.results.rows import RunKey, result_row


def _rows() -> pd.DataFrame:
    rows = []
    for seed, (acc_open, acc_audit) in ((1, (0.6, 0.8)), (2, (0.7, 0.9))):
        for method, acc, weight, stake in (("attack:inflated_no_audit", acc_open, 13000, 10**15),
                                           ("attack:inflated_audit", acc_audit, None, 5 * 10**14)):
            key = RunKey("r", "synthetic", 1.0, seed, method)
            rows.append(result_row(key, 0, "h02", "strong", "attacker", 1.0))
            rows.append(result_row(key, 1, "h02", "strong", "weight", 999.0))  # not the last
            rows.append(result_row(key, 2, "ensemble", "", "accuracy", acc))
            rows.append(result_row(key, 2, "h02", "strong", "stake_wei", float(stake)))
            if weight is not None:  # the audited cheat is out of the last round: no weight row
                rows.append(result_row(key, 2, "h02", "strong", "weight", float(weight)))
    return pd.DataFrame(rows)


def test_defence_table_reads_the_final_round_of_each_seed() -> None:
    table = defence_table(_rows()).set_index("method")
    assert list(table.index) == ["attack:inflated_no_audit", "attack:inflated_audit"]
    open_row, audited = table.loc["attack:inflated_no_audit"], table.loc["attack:inflated_audit"]
    assert (open_row["n"], open_row["attacker_weight_mean"]) == (2, 13000.0)
    assert math.isclose(open_row["accuracy_mean"], 0.65)
    assert (audited["attacker_weight_mean"], audited["attacker_stake_wei_mean"]) == (0.0, 5e14)
    assert audited["display"] == "Inflated, audited"
    assert defence_table(pd.DataFrame(columns=_rows().columns)).empty


def test_the_main_studys_seed_mode_attacks_stay_out() -> None:
    rows = [*_rows().to_dict("records")]
    for method in ("attack:lazy", "attack:inflated", "attack:spoof_poc"):
        key = RunKey("r", "synthetic", 1.0, 1, method)
        rows.append(result_row(key, 0, "h02", "strong", "attacker", 1.0))
        rows.append(result_row(key, 2, "ensemble", "", "accuracy", 0.5))
    table = defence_table(pd.DataFrame(rows))
    assert set(table["method"]) == {"attack:inflated_no_audit", "attack:inflated_audit"}


def test_stats_prints_and_figures_draw_the_defences(tmp_path: Path) -> None:
    from chainlearn_ray.commands.stats import sections

    args = argparse.Namespace(results=tmp_path, metric="accuracy", baseline="ours", gwei=1.0,
                              eth_usd=1.0,
                              n_boot=100, seed=0)
    found = {name: text for name, _h, _t, text in sections(_rows(), args)}
    assert "Inflated, audited" in found["defences"] and "0.000500" in found["defences"]
    assert defence_figure(_rows()) is not None
