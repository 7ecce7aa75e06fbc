"""Privacy in sweeps and results: the ``dp_epsilons`` axis, the privacy–utility table and
figure built from Parquet, and DP errors of ``run --dry-run`` in one line before Ray starts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from chainlearn_ray import cli
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.grid import parse_grid
from chainlearn_ray.experiment.sweep_plan import expand_sweep
from chainlearn_ray.results.atomic import write_rows_atomic
from chainlearn_ray.results.privacy import (
    privacy_figure,
    privacy_spent_table,
    privacy_utility_table,
    target_rows,
)
from chainlearn_ray.results.rows import RunKey, result_row
from chainlearn_ray.results.store import read_results

TINY = {label: {"arch": "tiny_cnn:4"} for label in ("weak", "medium", "strong")}


def _doc(**sweep: Any) -> dict[str, Any]:
    grid = {"datasets": [{"name": "synth", "synthetic": {"n_train": 300}}], "alphas": ["mild"],
            "seeds": [0, 1]}
    grid.update(sweep)
    return {"name": "t", "train": {"rounds": 2, "epochs": 1}, "data": {"min_shard": 40},
            "tiers": TINY, "study": {"methods": ["ours"], "attacks": []}, "sweep": grid}


def test_dp_epsilon_axis_expands_into_cells(tmp_path: Path) -> None:
    plan = expand_sweep(_doc(dp_epsilons=["inf", 8, 3, 1]), tmp_path / "synth")
    assert plan.grid.size == len(plan.cells) == 2 * 4
    assert [c.name for c in plan.cells[:4]] == ["synth_mild_s0_epsinf", "synth_mild_s0_eps8",
                                                "synth_mild_s0_eps3", "synth_mild_s0_eps1"]
    for cell in plan.cells:
        dp = cell.config.train.dp
        assert dp is not None and dp.epsilon == cell.dp_epsilon and dp.delta == 1e-5
    assert plan.cell("synth_mild_s1_epsinf").config.train.dp.enabled is False
    assert plan.grid.to_dict()["dp_epsilons"] == ["inf", 8.0, 3.0, 1.0]
    no_axis = expand_sweep(_doc(), tmp_path / "synth")
    assert [c.name for c in no_axis.cells] == ["synth_mild_s0", "synth_mild_s1"]
    assert all(c.config.train.dp is None for c in no_axis.cells)


@pytest.mark.parametrize(("axis", "message"), [
    ([8, 8], r"repeat a value"), ([0], r"entry 0 must be a positive number or inf"),
    (["lots"], r"entry 'lots' must be"), ([], r"sweep\.dp_epsilons is empty"),
])
def test_bad_epsilon_axis_is_named(axis: list[Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_grid({**_doc()["sweep"], "dp_epsilons": axis})


def _results(tmp_path: Path) -> Path:
    """Two methods × two seeds × ε in {inf, 3}: ensemble accuracy and spent ε per round."""
    rows: list[dict[str, Any]] = []
    accuracy = {("ours", math.inf): 0.80, ("ours", 3.0): 0.70,
                ("fedavg", math.inf): 0.75, ("fedavg", 3.0): 0.60}
    for eps in (math.inf, 3.0):
        for seed in (0, 1):
            run = RunKey(f"run-{eps}-{seed}", "synth", 1.0, seed, "ours")
            rows += target_rows(run, eps)
            for method in ("ours", "fedavg"):
                key = RunKey(run.run_id, "synth", 1.0, seed, method)
                for rnd in (1, 2):
                    acc = accuracy[(method, eps)] - (0.1 if rnd == 1 else 0.0) + 0.01 * seed
                    rows.append(result_row(key, rnd, "ensemble", "", "accuracy", acc))
                    if math.isfinite(eps):
                        for h, scale in (("h00", 1.0), ("h01", 0.9)):
                            spent = eps * scale * rnd / 2
                            rows.append(result_row(key, rnd, h, "weak", "dp_epsilon", spent))
                            rows.append(result_row(key, rnd, h, "weak", "dp_delta", 1e-5))
    path = tmp_path / "results.parquet"
    write_rows_atomic(rows, path)
    return path


def test_privacy_utility_table_is_recomputed_from_parquet(tmp_path: Path) -> None:
    df = read_results(_results(tmp_path))
    table = privacy_utility_table(df)
    assert list(table["method"]) == ["fedavg", "fedavg", "ours", "ours"]  # canonical order
    assert list(table["epsilon"]) == [math.inf, 3.0, math.inf, 3.0]
    ours3 = table[(table["method"] == "ours") & (table["epsilon"] == 3.0)].iloc[0]
    assert ours3["n"] == 2 and ours3["accuracy_mean"] == pytest.approx(0.705)
    assert ours3["accuracy_std"] == pytest.approx(pd.Series([0.70, 0.71]).std())
    assert ours3["spent_epsilon"] == pytest.approx(3.0)  # the most any hospital spent
    assert math.isnan(table.iloc[0]["spent_epsilon"])  # no DP, nothing spent
    spent = privacy_spent_table(df)
    h01 = spent[(spent["method"] == "ours") & (spent["hospital"] == "h01")]
    assert list(h01["round"]) == [1, 2] and list(h01["epsilon"]) == pytest.approx([1.35, 2.7])


def test_stats_and_figures_show_privacy(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = _results(tmp_path)
    assert cli.main(["stats", str(path), "--out", str(tmp_path / "stats")]) == 0
    out = capsys.readouterr().out
    assert "## Privacy–utility" in out and "∞ (no DP)" in out
    assert "## Privacy spent" in out and "ε after round 2" in out
    saved = pd.read_parquet(tmp_path / "stats" / "privacy_utility.parquet")
    assert len(saved) == 4
    assert privacy_figure(read_results(path)) is not None
    assert cli.main(["figures", str(path), "--out", str(tmp_path / "fig"), "--no-sensitivity",
                     "--dpi", "72"]) == 0
    assert (tmp_path / "fig" / "privacy.png").is_file()
    assert (tmp_path / "fig" / "privacy.pdf").is_file()


def test_no_privacy_rows_no_privacy_sections(tmp_path: Path) -> None:
    key = RunKey("r", "synth", 1.0, 0, "ours")
    df = pd.DataFrame([result_row(key, 1, "ensemble", "", "accuracy", 0.7)])
    assert privacy_utility_table(df).empty and privacy_spent_table(df).empty
    assert privacy_figure(df) is None


def test_dry_run_refuses_an_unreachable_epsilon_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "dp.yaml"
    config.write_text("train: {rounds: 30, epochs: 2, dp: {epsilon: 1.0e-9, delta: 1.0e-5}}\n")
    out = tmp_path / "o"
    code = cli.main(["run", "--config", str(config), "--dataset", "synthetic", "--arch",
                     "tiny_cnn:4", "--data-dir", str(tmp_path / "data"), "--out", str(out),
                     "--dry-run"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err
    assert "train.dp.epsilon 1e-09 cannot be reached in the planned" in err
    assert not out.exists()


@pytest.mark.slow
def test_a_sweep_checks_private_cells_on_their_shards(tmp_path: Path) -> None:
    from chainlearn_ray.experiment.sweep_plan import write_synthetic_data
    from chainlearn_ray.runtime.tune import check_private_cells

    doc = _doc(dp_epsilons=["inf", 1e-9])
    doc["train"]["rounds"] = 30
    plan = expand_sweep(doc, tmp_path / "synth")
    write_synthetic_data(plan)
    with pytest.raises(ConfigError, match=r"sweep cell synth_mild_s0_eps1e-09: train\.dp\."
                                          r"epsilon 1e-09 cannot be reached"):
        check_private_cells(plan)
    check_private_cells(expand_sweep(_doc(dp_epsilons=["inf", 8]), tmp_path / "synth"))


def test_privacy_spent_keeps_each_target_apart(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = []
    for eps in (8.0, 1.0):
        key = RunKey(f"run-{eps}", "synth", 1.0, 0, "ours")
        rows += target_rows(key, eps)
        rows.append(result_row(key, 1, "h00", "weak", "dp_epsilon", eps))
        rows.append(result_row(key, 1, "h00", "weak", "dp_delta", 1e-5))
    path = tmp_path / "results.parquet"
    write_rows_atomic(rows, path)
    spent = privacy_spent_table(read_results(path))
    assert list(spent["target"]) == [8.0, 1.0] and list(spent["epsilon"]) == [8.0, 1.0]
