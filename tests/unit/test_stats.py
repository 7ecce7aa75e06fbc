"""Tests of the statistics, the cost tables, the Markdown renderer and ``chainlearn stats``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from chainlearn_ray import cli
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.results import significance, stats, tables
from chainlearn_ray.results.communication import communication_table
from chainlearn_ray.results.schema import rows_to_frame
from chainlearn_ray.results.store import append_cell, write_json_atomic, write_parquet_atomic

OURS = [0.80, 0.82, 0.84, 0.86, 0.88]
GAPS = [0.01, 0.02, 0.03, 0.04, 0.05]
SEEDS = [42, 142, 242, 342, 442]


def _row(method: str, seed: int, value: float, **kw: Any) -> dict[str, Any]:
    row = dict(
        run_id=f"run-{kw.get('dataset', 'pneumoniamnist')}-{kw.get('alpha', 0.5)}-{seed}",
        dataset="pneumoniamnist",
        alpha=0.5,
        seed=seed,
        method=method,
        round=5,
        hospital="ensemble",
        tier="",
        metric="accuracy",
        value=value,
    )
    row.update(kw)
    return row


def hand_frame() -> pd.DataFrame:
    """Ours 0.80..0.88 at round 5 (with decoy earlier rounds), FedAvg lower by 0.01..0.05."""
    rows = []
    for seed, acc, gap in zip(SEEDS, OURS, GAPS, strict=True):
        rows.append(_row("ours", seed, acc))
        rows.append(_row("ours", seed, 0.10, round=2))  # an earlier round: not the headline
        rows.append(_row("ours", seed, 0.99, hospital="h00", tier="weak"))  # a hospital row
        rows.append(_row("ours", seed, 0.05 + gap, metric="ece"))
        rows.append(_row("fedavg", seed, acc - gap))
        rows.append(_row("fedavg", seed, 0.07, metric="ece"))
        rows.append(_row("centralized", seed, 0.90, round=0))
    return rows_to_frame(rows)


def test_headline_takes_the_last_round_of_the_ensemble() -> None:
    values = stats.headline(hand_frame(), "accuracy")
    ours = values[values["method"] == "ours"].sort_values("seed")
    assert ours["value"].tolist() == pytest.approx(OURS)
    assert set(values["method"]) == {"ours", "fedavg", "centralized"}


def test_summary_table_hand_computed_mean_and_sample_std() -> None:
    table = stats.summary_table(hand_frame(), ["ours", "fedavg"], "accuracy")
    assert table["method"].tolist() == ["fedavg", "ours"]  # canonical order
    ours = table[table["method"] == "ours"].iloc[0]
    assert ours["n"] == 5
    assert ours["mean"] == pytest.approx(0.84)
    # deviations -0.04..0.04: sum of squares 0.004, / (n - 1) = 0.001
    assert ours["std"] == pytest.approx(math.sqrt(0.001))
    fedavg = table[table["method"] == "fedavg"].iloc[0]
    assert fedavg["mean"] == pytest.approx(0.84 - 0.03)
    assert ours["display"] == "Ours" and fedavg["display"] == "FedAvg"


def test_summary_table_single_seed_has_no_std() -> None:
    df = rows_to_frame([_row("ours", 42, 0.8)])
    table = stats.summary_table(df, None)
    assert table["n"].tolist() == [1] and math.isnan(table["std"].iloc[0])
    assert "(n=1)" in tables.summary_wide(table).iloc[0, 1]


def test_paired_tests_known_answers() -> None:
    table = stats.paired_tests(hand_frame(), baseline="ours", n_boot=2000, seed=7)
    row = table[table["method"] == "fedavg"].iloc[0]
    assert row["scope"] == "cell" and row["n"] == 5
    assert row["mean_diff"] == pytest.approx(-0.03)
    # All five differences negative and distinct: R+ = 0, exact two-sided p = 2 / 2**5.
    assert row["wilcoxon_stat"] == 0.0
    assert row["wilcoxon_p"] == pytest.approx(0.0625)
    assert row["wilcoxon_method"] == "exact"
    # Paired t: mean -0.03, sd of differences sqrt(0.00025), t = -0.03 / (sd / sqrt 5) = -3√2.
    t = -3.0 * math.sqrt(2.0)
    assert row["ttest_stat"] == pytest.approx(t)
    assert row["ttest_p"] == pytest.approx(2.0 * sps.t.sf(abs(t), df=4))
    assert row["min_p"] == pytest.approx(0.0625)
    assert bool(row["n_too_small"]) is True
    assert "n too small" in row["note"]
    # The bootstrap interval holds the true mean difference and excludes 0.
    assert row["ci_low"] <= -0.03 <= row["ci_high"] < 0.0
    assert row["ci_low"] >= -0.05 and row["ci_high"] <= -0.01


def test_paired_tests_bootstrap_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(0)
    rows = [_row("ours", s, float(v)) for s, v in enumerate(rng.uniform(0.7, 0.9, 12))]
    rows += [_row("fedavg", s, float(v)) for s, v in enumerate(rng.uniform(0.7, 0.9, 12))]
    df = rows_to_frame(rows)
    a = stats.paired_tests(df, n_boot=1000, seed=3)
    b = stats.paired_tests(df, n_boot=1000, seed=3)
    c = stats.paired_tests(df, n_boot=1000, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["ci_low"], c["ci_low"])


def test_six_pairs_can_reach_significance() -> None:
    rows = [_row("ours", s, 0.8) for s in range(6)]
    rows += [_row("fedmd", s, 0.8 + 0.01 * (s + 1)) for s in range(6)]
    row = stats.paired_tests(rows_to_frame(rows), n_boot=500).iloc[0]
    assert row["min_p"] == pytest.approx(2 / 64)
    assert row["wilcoxon_p"] == pytest.approx(2 / 64)
    assert bool(row["n_too_small"]) is False


def test_pooled_rows_are_blocked_by_seed() -> None:
    rows = []
    for alpha in (1.0, 0.1):
        for seed in SEEDS:
            rows.append(_row("ours", seed, 0.8, alpha=alpha))
            rows.append(_row("fedavg", seed, 0.78 - 0.01 * seed * (alpha == 0.1), alpha=alpha))
    table = stats.paired_tests(rows_to_frame(rows), n_boot=500)
    assert table["scope"].tolist() == ["cell", "cell", "pooled"]
    assert table["alpha"].iloc[:2].tolist() == [1.0, 0.1] and math.isnan(table["alpha"].iloc[2])
    pooled = table.iloc[2]
    # One pair per seed (the two alphas averaged first), not one per seed and alpha.
    assert pooled["n"] == len(SEEDS)
    per_seed = [(-0.02 + (-0.02 - 0.01 * s)) / 2 for s in SEEDS]
    assert pooled["mean_diff"] == pytest.approx(float(np.mean(per_seed)))
    assert pooled["wilcoxon_p"] == pytest.approx(sps.wilcoxon(per_seed).pvalue)
    assert pooled["ttest_p"] == pytest.approx(sps.ttest_1samp(per_seed, 0.0).pvalue)


def test_identical_differences_have_no_t_test() -> None:
    rows = [_row("ours", s, 0.8) for s in SEEDS] + [_row("fedavg", s, 0.78) for s in SEEDS]
    row = stats.paired_tests(rows_to_frame(rows), n_boot=500).iloc[0]
    assert row["wilcoxon_p"] == pytest.approx(2 / 2 ** len(SEEDS))
    assert row["wilcoxon_method"] == "exact (ties)"
    assert math.isnan(row["ttest_p"]) and "t-test undefined" in row["note"]


def test_fewer_than_five_pairs_give_no_interval_or_t_test() -> None:
    rows = [_row("ours", s, 0.8) for s in range(4)]
    rows += [_row("fedavg", s, 0.8 - 0.01 * (s + 1)) for s in range(4)]
    row = stats.paired_tests(rows_to_frame(rows), n_boot=500).iloc[0]
    assert row["n"] == 4
    assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
    assert math.isnan(row["ttest_p"]) and math.isnan(row["ttest_stat"])
    assert "< 5" in row["note"]
    assert row["wilcoxon_p"] == pytest.approx(2 / 16)  # the exact test still reports


def test_holm_known_answers() -> None:
    adjusted = significance.holm([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    with_nan = significance.holm([0.2, math.nan, 0.6])
    assert with_nan[0] == pytest.approx(0.4) and math.isnan(with_nan[1])
    assert with_nan[2] == pytest.approx(0.6)
    assert significance.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 0.8 * 2 capped at 1


def test_effect_sizes_known_answers() -> None:
    d = np.array([-0.01, -0.02, -0.03, -0.04, -0.05])
    dz = significance.effect_dz(d)
    assert dz == pytest.approx(d.mean() / d.std(ddof=1))
    # d_z * sqrt(n) is the paired t statistic
    assert dz * math.sqrt(d.size) == pytest.approx(sps.ttest_1samp(d, 0.0).statistic)
    assert significance.rank_biserial(d) == pytest.approx(-1.0)
    mixed = np.array([1.0, -2.0, 3.0, 4.0])  # ranks 1, 2, 3, 4: R+ = 8, R- = 2
    assert significance.rank_biserial(mixed) == pytest.approx((8 - 2) / 10)
    assert math.isnan(significance.effect_dz(np.array([0.1])))
    assert math.isnan(significance.rank_biserial(np.array([0.0])))


def test_paired_tests_adjust_p_within_each_scope() -> None:
    rng = np.random.default_rng(1)
    rows = []
    for alpha in (1.0, 0.1):
        for s in range(6):
            rows.append(_row("ours", s, 0.8, alpha=alpha))
            for m, shift in (("fedavg", -0.02), ("fedprox", 0.0), ("fedmd", 0.01)):
                rows.append(_row(m, s, 0.8 + shift + float(rng.normal(0, 0.01)), alpha=alpha))
    table = stats.paired_tests(rows_to_frame(rows), n_boot=200)
    for _, family in table.groupby("scope"):
        expected = significance.holm(family["wilcoxon_p"].to_numpy())
        assert family["wilcoxon_p_holm"].to_numpy() == pytest.approx(expected)
        assert (family["wilcoxon_p_holm"] >= family["wilcoxon_p"] - 1e-12).all()
        assert family["ttest_p_holm"].to_numpy() == pytest.approx(
            significance.holm(family["ttest_p"].to_numpy()))


def test_unmatched_seeds_and_single_pairs() -> None:
    rows = [_row("ours", 1, 0.8), _row("ours", 2, 0.8), _row("fedavg", 2, 0.7)]
    rows += [_row("fedprox", 9, 0.7)]
    table = stats.paired_tests(rows_to_frame(rows), n_boot=500).set_index("method")
    one = table.loc["fedavg"]
    assert one["n"] == 1 and one["wilcoxon_p"] == pytest.approx(1.0)
    assert math.isnan(one["ttest_p"]) and math.isnan(one["ci_low"])
    assert "1 pair(s) < 5" in one["note"]
    none = table.loc["fedprox"]
    assert none["n"] == 0 and math.isnan(none["wilcoxon_p"])
    assert "no seeds in common" in none["note"]


def test_no_baseline_gives_empty_table_and_bad_n_boot_raises() -> None:
    df = rows_to_frame([_row("fedavg", 1, 0.7)])
    assert stats.paired_tests(df, n_boot=500).empty
    with pytest.raises(ConfigError, match="n_boot"):
        stats.paired_tests(df, n_boot=10)


def test_wilcoxon_small_case_with_mixed_signs() -> None:
    # R- = 3 (the -3), subsets of 1..6 with sum <= 3: 5 of 64, two-sided 10/64.
    res = significance.wilcoxon_exact(np.array([1.0, 2.0, -3.0, 4.0, 5.0, 6.0]))
    assert res.statistic == 3.0 and res.pvalue == pytest.approx(10 / 64)


def test_wilcoxon_ties_use_the_exact_mid_rank_distribution() -> None:
    # |d| ranks 1.5, 1.5, 3, 4; R+ = 7. Of the 16 sign patterns, 5 give R+ >= 7 -> p = 10/16.
    res = significance.wilcoxon_exact(np.array([1.0, 1.0, -2.0, 3.0]))
    assert res.method == "exact (ties)"
    assert res.statistic == 3.0 and res.pvalue == pytest.approx(10 / 16)


def test_tied_enumeration_agrees_with_scipy_without_ties() -> None:
    d = np.random.default_rng(0).normal(size=9)
    expected = sps.wilcoxon(d, method="exact").pvalue
    ranks = sps.rankdata(np.abs(d))
    got = significance._tied_exact_pvalue(np.abs(d), float(ranks[d > 0].sum()))
    assert got == pytest.approx(expected)


def test_wilcoxon_zero_differences() -> None:
    res = significance.wilcoxon_exact(np.array([0.0, 0.01, 0.02]))
    assert res.n_nonzero == 2 and res.pvalue == pytest.approx(0.5)
    assert significance.wilcoxon_exact(np.zeros(4)).pvalue == 1.0
    # float noise is not a difference
    assert significance.wilcoxon_exact(np.array([0.3 - 0.1 - 0.2, 1e-17])).n_nonzero == 0


def test_bootstrap_ci_of_constant_differences_is_the_point() -> None:
    low, high = significance.bootstrap_ci(np.full(5, 0.02), n_boot=200, seed=1)
    assert low == pytest.approx(0.02) and high == pytest.approx(0.02)
    assert all(math.isnan(x) for x in significance.bootstrap_ci(np.array([0.1])))


def test_ablation_and_adversarial_tables() -> None:
    rows = []
    for seed in SEEDS[:3]:
        rows += [_row("ours", seed, 0.80), _row("ours", seed, 0.05, metric="ece")]
        rows += [
            _row("ablation:no_ece", seed, 0.75),
            _row("ablation:no_ece", seed, 0.09, metric="ece"),
        ]
        rows += [
            _row("attack:inflated", seed, 0.70),
            _row("attack:inflated", seed, 0.2, metric="ece"),
        ]
    df = rows_to_frame(rows)
    abl = stats.ablation_table(df)
    assert abl["method"].tolist() == ["ours", "ablation:no_ece"]
    no_ece = abl.iloc[1]
    assert no_ece["display"] == "No ECE" and no_ece["n"] == 3
    assert no_ece["accuracy_delta"] == pytest.approx(-0.05)
    assert no_ece["ece_delta"] == pytest.approx(0.04)
    adv = stats.adversarial_table(df)
    assert adv["method"].tolist() == ["ours", "attack:inflated"]
    assert adv.iloc[1]["accuracy_delta"] == pytest.approx(-0.10)
    assert stats.adversarial_table(hand_frame()).empty


def test_communication_table_means_per_hospital_round() -> None:
    rows = [
        _row("fedavg", 42, 100.0, hospital="h00", round=1, metric="comm_bytes_up"),
        _row("fedavg", 42, 50.0, hospital="h00", round=1, metric="comm_bytes_down"),
        _row("fedavg", 42, 300.0, hospital="h01", round=1, metric="comm_bytes_up"),
        _row("fedavg", 42, 150.0, hospital="h01", round=1, metric="comm_bytes_down"),
        _row("fedavg", 42, 100.0, hospital="h00", round=2, metric="comm_bytes_up"),
        _row("ours", 42, 400.0, hospital="h00", round=1, metric="comm_bytes_up"),
        _row("ours", 42, 3 * (784 + 8), hospital="all", round=1, metric="serve_bytes_per_query"),
        _row("fedavg", 42, 0.0, hospital="all", round=2, metric="serve_bytes_per_query"),
    ]
    table = communication_table(rows_to_frame(rows)).set_index("method")
    assert table.loc["ours", "serve_per_query"] == 3 * (784 + 8)
    assert table.loc["fedavg", "serve_per_query"] == 0
    assert table.loc["fedavg", "hospital_rounds"] == 3
    assert table.loc["fedavg", "bytes_up"] == pytest.approx(500 / 3)
    assert table.loc["fedavg", "bytes_down"] == pytest.approx(200 / 3)
    assert table.loc["fedavg", "bytes_total"] == pytest.approx(700 / 3)
    assert table.loc["ours", "bytes_total"] == pytest.approx(400.0)
    assert list(table.index) == ["fedavg", "ours"]


def test_gas_table_prices_in_usd() -> None:
    rows = [_row("ours", 42, 174_764.0, round=0, hospital="h00", metric="gas_registerHospital")]
    for rnd in (1, 2):
        rows.append(
            _row("ours", 42, 48_942.0, round=rnd, hospital="all", metric="gas_startNewRound")
        )
        rows.append(
            _row("ours", 42, 252_464.0, round=rnd, hospital="h00", metric="gas_submitUpdate")
        )
        rows.append(
            _row(
                "ours",
                42,
                94_931.0,
                round=rnd,
                hospital="all",
                metric="gas_recordEnsemblePrediction",
            )
        )
    table = tables.gas_table(rows_to_frame(rows), gwei=20, eth_usd=2000).set_index("operation")
    assert list(table.index) == [
        "registerHospital",
        "startNewRound",
        "submitUpdate",
        "recordEnsemblePrediction",
        tables.ROUND_TOTAL,
    ]
    # usd = gas * gwei * 1e-9 * eth_usd = 252464 * 20e-9 * 2000
    assert table.loc["submitUpdate", "usd"] == pytest.approx(10.09856)
    assert table.loc["submitUpdate", "n"] == 2
    assert table.loc[tables.ROUND_TOTAL, "gas_mean"] == pytest.approx(48_942 + 252_464 + 94_931)
    with pytest.raises(ConfigError, match="gwei"):
        tables.gas_table(rows_to_frame(rows), gwei=-1)


def test_formatting_helpers() -> None:
    assert tables.format_bytes(1023) == "1023 B"
    assert tables.format_bytes(1536) == "1.50 KiB"
    assert tables.format_bytes(150 * 1024**2) == "150 MiB"
    assert tables.format_bytes(3 * 1024**3) == "3.00 GiB"
    assert tables.format_usd(10.09856) == "$10.10"
    assert tables.format_mean_std(0.84, 0.0316) == "0.840 ± 0.032"
    assert tables.alpha_label(0.1) == "α=0.1 (severe)"
    assert tables.display_name("attack:spoof_poc") == "Spoof (PoC)"


def test_markdown_renderer() -> None:
    frame = pd.DataFrame({"Method": ["Ours", "A|B"], "n": [5, 12], "acc": [0.8, math.nan]})
    text = tables.to_markdown(frame, {"n": lambda v: f"{v}x"})
    assert text.splitlines() == [
        "| Method |   n |   acc |",
        "| ------ | --: | ----: |",
        "| Ours   |  5x | 0.800 |",
        "| A\\|B   | 12x |     — |",
    ]


def _write_run(folder: Path) -> None:
    rows = hand_frame()
    extra = [
        _row("ours", 42, 252_464.0, round=1, hospital="h00", metric="gas_submitUpdate"),
        _row("ours", 42, 300.0, round=1, hospital="h00", metric="comm_bytes_up"),
        _row("ablation:no_bonus", 42, 0.79),
    ]
    write_parquet_atomic(pd.concat([rows, rows_to_frame(extra)]), folder / "results.parquet")


def test_cli_stats_prints_sections_and_writes_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_run(tmp_path)
    code = cli.main(["stats", str(tmp_path), "--n-boot", "500", "--gwei", "10",
                     "--eth-usd", "2000"])
    out = capsys.readouterr().out
    assert code == 0
    for title in ("## Main", "## Ablations", "## Communication", "## Gas", "## Paired tests"):
        assert title in out
    assert "## Adversarial\n\n_Section skipped" in out
    assert "$5.05" in out  # 252464 gas at 10 gwei and 2000 USD/ETH
    assert "0.840 ± 0.032" in out
    for name in ("main", "ablations", "communication", "gas", "paired_tests", "sensitivity"):
        assert (tmp_path / "stats" / f"{name}.parquet").is_file()
        assert (tmp_path / "stats" / f"{name}.csv").is_file()
    assert not (tmp_path / "stats" / "adversarial.csv").exists()
    main = pd.read_parquet(tmp_path / "stats" / "main.parquet")
    assert main.loc[main["method"] == "ours", "mean"].iloc[0] == pytest.approx(0.84)


def test_cli_stats_on_a_sweep_folder_with_out_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = hand_frame()
    for seed in SEEDS:
        cell = frame[frame["seed"] == seed]
        append_cell(cell, tmp_path / "sweep", "pneumoniamnist", f"pneumoniamnist_a0.5_s{seed}")
    out_dir = tmp_path / "tables"
    code = cli.main(["stats", str(tmp_path / "sweep"), "--out", str(out_dir), "--n-boot", "200"])
    assert code == 0
    assert "## Gas\n\n_Section skipped" in capsys.readouterr().out
    tests = pd.read_csv(out_dir / "paired_tests.csv")
    assert tests.set_index("method").loc["fedavg", "wilcoxon_p"] == pytest.approx(0.0625)


def test_cli_stats_without_results_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["stats", str(tmp_path)]) == 2
    assert "no results found" in capsys.readouterr().err


def test_display_names_cover_exactly_the_methods_the_study_writes() -> None:
    from chainlearn_ray.methods.names import METHODS

    assert tables.METHOD_ORDER == METHODS


def test_cli_stats_prices_gas_as_the_study_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_run(tmp_path)
    assert cli.main(["stats", str(tmp_path), "--n-boot", "500"]) == 0
    # no manifest: the study defaults (20 gwei, 3000 USD/ETH): 252464 gas -> $15.15
    assert "$15.15" in capsys.readouterr().out
    write_json_atomic({"study": {"gas_price_gwei": 10.0, "eth_price_usd": 2000.0}},
                      tmp_path / "manifest.json")
    assert cli.main(["stats", str(tmp_path), "--n-boot", "500"]) == 0
    assert "$5.05" in capsys.readouterr().out



def test_main_table_shows_balanced_accuracy_macro_f1_and_majority(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = []
    for seed in SEEDS:
        rows.append(_row("ours", seed, 0.625))
        rows.append(_row("ours", seed, 0.5, metric="balanced_accuracy"))
        rows.append(_row("ours", seed, 0.38, metric="macro_f1"))
        rows.append(_row("majority", seed, 0.625, round=0))
        rows.append(_row("majority", seed, 0.5, round=0, metric="balanced_accuracy"))
    frame = rows_to_frame(rows)
    frame.to_parquet(tmp_path / "results.parquet")
    assert cli.main(["stats", str(tmp_path), "--n-boot", "200"]) == 0
    out = capsys.readouterr().out
    main_section = out.split("## Main")[1].split("## Ablations")[0]
    for title in ("**Accuracy**", "**Balanced accuracy**", "**Macro-F1**", "| Majority |"):
        assert title in main_section
    main = pd.read_parquet(tmp_path / "stats" / "main.parquet")
    got = main.set_index(["method", "metric"])["mean"]
    assert got[("majority", "balanced_accuracy")] == pytest.approx(0.5)
    assert got[("ours", "macro_f1")] == pytest.approx(0.38)


def test_findings_say_where_the_baseline_wins_loses_or_is_not_significant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = []
    for i, (seed, acc, gap) in enumerate(zip(SEEDS, OURS, GAPS, strict=True)):
        rows.append(_row("ours", seed, acc))
        rows.append(_row("fedavg", seed, acc - 0.10 - gap / 10))  # clearly worse than Ours
        rows.append(_row("fedprox", seed, acc + 0.10 + gap / 10))  # clearly better
        rows.append(_row("fedmd", seed, acc + (gap if i % 2 else -gap)))  # noise
    rows_to_frame(rows).to_parquet(tmp_path / "results.parquet")
    assert cli.main(["stats", str(tmp_path), "--n-boot", "200"]) == 0
    out = capsys.readouterr().out
    findings = out.split("## Findings")[1].split("## ")[0]
    better = findings.split("**Ours significantly better** (1)")[1].split("**")[0]
    worse = findings.split("**Ours significantly worse** (1)")[1].split("**")[0]
    unclear = findings.split("**No significant difference** (1)")[1]
    assert "FedAvg at pneumoniamnist α=0.5 (moderate)" in better and "t-test" in better
    assert "FedProx" in worse and "FedMD" in unclear
    assert not (tmp_path / "stats" / "findings.csv").exists()
