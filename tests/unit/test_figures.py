"""Tests that the figures render real PDF and PNG files from a synthetic results frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from chainlearn_ray import cli
from chainlearn_ray.results import figures
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
    assert figures.method_color("ours") == "#d62728"
    assert figures.method_color("custom") == figures.method_color("custom")


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


def test_cli_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_parquet_atomic(synthetic_results(), tmp_path / "run" / "results.parquet")
    code = cli.main(["figures", str(tmp_path / "run"), "--no-sensitivity", "--dpi", str(DPI)])
    assert code == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 8
    for line in printed:
        assert Path(line).parent == tmp_path / "run" / "figures"
    _assert_real_files([Path(line) for line in printed])
