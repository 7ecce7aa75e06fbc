"""Tests that the figures render real PDF and PNG files from a synthetic results frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from chainlearn_ray import cli
from chainlearn_ray.results import figures, styles
from chainlearn_ray.results.schema import rows_to_frame
from chainlearn_ray.results.store import write_parquet_atomic

#: A low PNG resolution keeps the tests quick; the content is the same.
DPI = 90
METHODS = ("fedavg", "equal_weight", "ours", "ablation:no_ece", "ablation:no_poc")


def synthetic_results() -> pd.DataFrame:
    """Two datasets x two alphas x three seeds; ensemble accuracy/ECE plus bytes per round."""
    rng = np.random.default_rng(1)
    rows = []
    for dataset in ("pneumoniamnist", "dermamnist"):
        for alpha in (1.0, 0.1):
            for seed in (42, 142, 242):
                base = dict(run_id=f"{dataset}-{alpha}-{seed}", dataset=dataset, alpha=alpha)
                for i, method in enumerate(METHODS):
                    for metric, value in (("accuracy", 0.7 + 0.02 * i), ("ece", 0.1 - 0.01 * i)):
                        rows.append(
                            dict(
                                base,
                                seed=seed,
                                method=method,
                                round=3,
                                hospital="ensemble",
                                tier="",
                                metric=metric,
                                value=value + rng.normal(0, 0.01),
                            )
                        )
                for method, size in (("fedavg", 94e6), ("ours", 320.0)):
                    for rnd in (1, 2, 3):
                        for hospital in ("h00", "h01"):
                            for metric in ("comm_bytes_up", "comm_bytes_down"):
                                rows.append(
                                    dict(
                                        base,
                                        seed=seed,
                                        method=method,
                                        round=rnd,
                                        hospital=hospital,
                                        tier="weak",
                                        metric=metric,
                                        value=size,
                                    )
                                )
    return rows_to_frame(rows)


def _assert_real_files(paths: list[Path]) -> None:
    for path in paths:
        data = path.read_bytes()
        assert len(data) > 5_000, path
        if path.suffix == ".pdf":
            assert data.startswith(b"%PDF") and b"%%EOF" in data[-64:]
        else:
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
            pixels = imread(path)
            assert pixels.shape[0] > 300 and pixels.shape[1] > 600
            assert float(pixels[..., :3].std()) > 0.05  # not a blank canvas


@pytest.mark.slow
def test_make_figures_writes_every_figure_as_pdf_and_png(tmp_path: Path) -> None:
    written = figures.make_figures(synthetic_results(), tmp_path / "figs", dpi=DPI)
    names = sorted(p.name for p in written)
    stems = ("ablation", "accuracy", "communication", "ece", "sensitivity")
    assert names == sorted(f"{s}.{ext}" for s in stems for ext in ("pdf", "png"))
    _assert_real_files(written)
    assert not [p for p in (tmp_path / "figs").iterdir() if p.name.startswith(".")]


def test_figures_without_data_are_skipped(tmp_path: Path) -> None:
    df = synthetic_results()
    only_main = df[(df["metric"] == "accuracy") & ~df["method"].str.startswith("ablation:")]
    written = figures.make_figures(only_main, tmp_path, sensitivity=False, dpi=DPI)
    assert sorted(p.name for p in written) == ["accuracy.pdf", "accuracy.png"]


def test_accuracy_figure_content() -> None:
    fig = figures.metric_figure(synthetic_results(), "accuracy")
    assert fig is not None
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["dermamnist", "pneumoniamnist"]
    assert "n = 3 seeds" in fig.get_suptitle()
    assert axes[0].get_ylabel() == "test accuracy (fraction)"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["FedAvg", "EqualWt-Ens", "Ours"]  # ablations are not main methods
    # Two alphas x three methods = six bars, coloured per method.
    bars = axes[0].patches
    assert len(bars) == 6
    looks = {(tuple(b.get_facecolor()), b.get_hatch()) for b in bars}
    assert len(looks) == 3  # one look per method
    assert styles.method_style("custom") == styles.method_style("custom")


def test_png_output_is_deterministic(tmp_path: Path) -> None:
    df = synthetic_results()
    outputs = []
    for folder in ("a", "b"):
        fig = figures.metric_figure(df, "ece")
        assert fig is not None
        outputs.append(
            [p.read_bytes() for p in figures.save_figure(fig, tmp_path / folder, "ece", DPI)]
        )
    assert outputs[0] == outputs[1]


@pytest.mark.slow
def test_cli_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_parquet_atomic(synthetic_results(), tmp_path / "run" / "results.parquet")
    code = cli.main(["figures", str(tmp_path / "run"), "--no-sensitivity", "--dpi", str(DPI)])
    assert code == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 8
    for line in printed:
        assert Path(line).parent == tmp_path / "run" / "figures"
    _assert_real_files([Path(line) for line in printed])


def test_every_known_method_has_its_own_colour_blind_safe_look() -> None:
    looks = [(s.color, s.hatch) for s in styles.METHOD_STYLES.values()]
    assert len(set(looks)) == len(looks)  # colour and hatch together tell every method apart
    lines = [(s.color, s.marker) for s in styles.METHOD_STYLES.values()]
    assert len(set(lines)) == len(lines)
    assert {s.color for s in styles.METHOD_STYLES.values()} <= set(styles.PALETTE.values())
    from chainlearn_ray.methods.names import METHODS

    assert set(METHODS) <= set(styles.METHOD_STYLES)


def _rows(method: str, values: list[float], **extra: object) -> list[dict[str, object]]:
    return [dict(run_id=f"r{seed}", dataset="pneumoniamnist", alpha=0.1, seed=seed,
                 method=method, round=3, hospital="ensemble", tier="", metric="accuracy",
                 value=v, **extra) for seed, v in enumerate(values)]


def test_whiskers_are_not_clipped_and_the_majority_class_is_a_line() -> None:
    rows = _rows("ours", [0.99, 0.80, 0.99]) + _rows("fedavg", [0.7, 0.72, 0.71])
    rows += _rows("majority", [0.625, 0.625, 0.625])
    fig = figures.metric_figure(rows_to_frame(rows), "accuracy")
    assert fig is not None
    ax = fig.get_axes()[0]
    top = 0.9266666 + float(np.std([0.99, 0.80, 0.99], ddof=1))
    assert top > 1.0 and ax.get_ylim()[1] >= top  # the whisker above 1.0 stays visible
    majority = [line for line in ax.get_lines() if line.get_label() == "Majority class"]
    assert [line.get_ydata()[0] for line in majority] == [pytest.approx(0.625)]
    assert len(ax.patches) == 2  # the majority rate is no bar
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0] == "Majority class" and labels.count("Majority class") == 1


def test_attack_figure_and_sensitivity_legends_outside() -> None:
    rows = _rows("ours", [0.8, 0.82, 0.81]) + _rows("attack:inflated", [0.6, 0.62, 0.61])
    fig = figures.attack_figure(rows_to_frame(rows))
    assert fig is not None and "Attacks" in fig.get_suptitle()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["Ours", "Inflated"]
    assert figures.attack_figure(rows_to_frame(_rows("ours", [0.8]))) is None
    sens = figures.sensitivity_figure()
    for ax in sens.get_axes():
        legend = ax.get_legend()
        box = legend.get_bbox_to_anchor().transformed(ax.transAxes.inverted())
        assert box.y1 <= 0.0  # anchored below the axes: no curve is covered

