"""A private run on Ray: every hospital actor trains with DP-SGD and reaches its tier's ε after
the last round; the spent budget is in the Parquet rows, the manifest and the summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from chainlearn_ray.runtime.simulation import format_summary, run_simulation

from .conftest import tiny_config

pytestmark = pytest.mark.slow


def test_private_run_on_ray(ray_local: Any, synth_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_config(synth_dir, **{"train.dp": {"epsilon": 3, "delta": 1e-4},
                                    "tiers.strong.dp": {"epsilon": 8}})
    out = tmp_path / "run"
    summary = run_simulation(cfg, out)
    frame = pd.read_parquet(out / "results.parquet")
    eps = frame[frame.metric == "dp_epsilon"].pivot(index="hospital", columns="round",
                                                    values="value")
    target = {"h00": 3.0, "h01": 3.0, "h02": 8.0}
    for hospital, row in eps.iterrows():
        assert 0 < row[1] < row[2]
        assert abs(row[2] - target[str(hospital)]) <= 0.05 * target[str(hospital)]
    assert set(frame[frame.metric == "dp_delta"].value) == {1e-4}
    assert frame[frame.metric == "dp_target_epsilon"].value.tolist() == [3.0]
    manifest = json.loads((out / "manifest.json").read_text())
    privacy = manifest["privacy"]
    assert privacy["secure_mode"] is False and privacy["accountant"] == "rdp"
    assert privacy["converted_models"] == {"tiny_cnn:4": ["BatchNorm2d"],
                                           "tiny_cnn:8": ["BatchNorm2d"]}
    assert "ε spent" in format_summary(summary)
