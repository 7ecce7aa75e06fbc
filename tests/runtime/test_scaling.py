"""The scaling study end to end (``chainlearn scale`` on local Ray) and its size/mix helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from chainlearn_ray.cli import main as cli_main
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.results.scaling_report import ROUND_METRICS, RUN_METRICS
from chainlearn_ray.runtime.scaling import (
    MemorySampler,
    parse_mix,
    parse_sizes,
    split_by_mix,
    tree_pss_bytes,
)

ROOT = Path(__file__).resolve().parents[2]


def test_sizes_and_mix_parse_and_split() -> None:
    assert parse_sizes("12, 3,6,3") == [3, 6, 12]
    for bad in ("", "3,x", "0,4"):
        with pytest.raises(ConfigError):
            parse_sizes(bad)
    mix = parse_mix("weak:1,strong:2")
    assert mix == {"weak": 1.0, "medium": 0.0, "strong": 2.0}
    assert parse_mix({"Weak": 1, "medium": "1"})["medium"] == 1.0
    for bad in ("weak", "weak:-1", "weak:0", "weak:x", "huge:1"):
        with pytest.raises(ConfigError):
            parse_mix(bad)
    even = parse_mix("weak:1,medium:1,strong:1")
    assert split_by_mix(48, even) == {"weak": 16, "medium": 16, "strong": 16}
    assert split_by_mix(4, even) == {"weak": 2, "medium": 1, "strong": 1}
    assert split_by_mix(2, even) == {"weak": 1, "medium": 1, "strong": 0}
    assert split_by_mix(7, mix) == {"weak": 2, "medium": 0, "strong": 5}
    for n in range(1, 50):
        assert sum(split_by_mix(n, parse_mix("weak:3,medium:2,strong:1")).values()) == n


def test_memory_sampler_sees_an_allocation() -> None:
    assert tree_pss_bytes() > 10 * 2**20  # this Python process alone
    with MemorySampler(every=0.05) as memory:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        memory.sample()
    del block
    assert memory.peak_tree > 64 * 2**20


@pytest.mark.slow
def test_scale_command_two_sizes(ray_local: Any, synth_dir: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scale"
    code = cli_main([
        "scale", "--config", str(ROOT / "experiments" / "scaling.yaml"), "--hospitals", "2,4",
        "--mix", "weak:1,strong:1", "--rounds", "1", "--dataset", "synthetic",
        "--data-dir", str(synth_dir),
        "--hospitals-per-actor", "2", "--out", str(out), "-q",
    ])
    assert code == 0
    frame = pd.read_parquet(out / "scaling.parquet")
    assert list(frame.columns) == ["n_hospitals", "round", "metric", "value"]
    assert sorted(frame.n_hospitals.unique()) == [2, 4]
    assert sorted(frame["round"].unique()) == [0, 1]
    wide = frame.pivot_table(index=["n_hospitals", "round"], columns="metric", values="value")
    rounds = wide.loc[wide.index.get_level_values("round") > 0]
    assert set(ROUND_METRICS) <= set(rounds.columns) and set(RUN_METRICS) <= set(wide.columns)
    # every hospital submitted in every round
    assert (rounds.participants.to_numpy() == [2, 4]).all()
    # wall time decomposes: training critical path + chain + a non-negative remainder
    assert (rounds.train_compute_sum_s >= rounds.train_compute_max_s).all()
    assert (rounds.train_critical_path_s >= rounds.train_compute_max_s).all()
    assert (rounds.chain_on_path_s > 0).all() and (rounds.chain_on_path_s <= rounds.chain_s).all()
    assert (rounds.round_wall_s >= rounds.train_critical_path_s + rounds.chain_on_path_s).all()
    assert ((rounds.overhead_share > 0) & (rounds.overhead_share < 1)).all()
    np.testing.assert_allclose(rounds.overhead_s, rounds.round_wall_s
                               - rounds.train_critical_path_s - rounds.chain_on_path_s)
    # per-hospital chain work does not grow with N
    gas = rounds.gas_per_submission.groupby(level="n_hospitals").mean()
    assert gas[4] == pytest.approx(gas[2], rel=0.05) and gas[2] > 20_000
    assert (rounds.chain_ms_per_submission > 0).all()
    # 2 per actor: N=2 is one weak + one strong actor; N=4 packs each tier's pair
    runs = wide.xs(0, level="round")
    assert runs.actors.to_dict() == {2: 2.0, 4: 2.0}
    packed = rounds.xs(4, level="n_hospitals")
    assert (packed.train_critical_path_s > packed.train_compute_max_s).all()
    assert (runs.peak_memory_gib >= 0).all() and (runs.peak_tree_memory_gib > 0).all()
    assert (runs.gas_per_registration > 0).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["sizes"] == [2, 4]
    assert manifest["runs"]["4"]["hospitals"] == {"weak": 2, "medium": 0, "strong": 2}
    for n in (2, 4):
        run = pd.read_parquet(out / f"n{n:03d}" / "results.parquet")
        assert run.hospital[run.hospital.str.match(r"h\d+$")].nunique() == n
    assert (out / "scaling.pdf").stat().st_size > 0 and (out / "scaling.png").stat().st_size > 0
    table = capsys.readouterr().out
    assert "gas/submit" in table and "chain ms/submit" in table
    assert [line.split()[0] for line in table.splitlines()[2:4]] == ["2", "4"]
