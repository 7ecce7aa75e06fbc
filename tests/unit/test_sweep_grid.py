"""Sweep grids: expansion of the sweep section into resolved cells, and its errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chainlearn_ray.data.partition import ALPHAS
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.config import PAPER_SEEDS
from chainlearn_ray.experiment.grid import cell_name, parse_grid
from chainlearn_ray.experiment.sweep_plan import (
    expand_sweep,
    load_sweep,
    repo_root,
    write_synthetic_data,
)
from chainlearn_ray.results.store import cell_path

REPO = Path(__file__).resolve().parents[2]


def _doc(**sweep: Any) -> dict[str, Any]:
    grid = {"datasets": ["pneumoniamnist"], "alphas": ["mild"], "seeds": [0]}
    grid.update(sweep)
    return {
        "name": "t", "seed": 7, "train": {"rounds": 2, "epochs": 1},
        "data": {"dataset": "pneumoniamnist", "data_dir": "data/real"},
        "tiers": {"weak": {"arch": "tiny_cnn:4"}},
        "study": {"methods": ["ours"], "attacks": []},
        "sweep": grid,
    }


def test_expansion_order_names_and_resolved_configs(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAINLEARN_DATA", raising=False)
    doc = _doc(datasets=["pneumoniamnist",
                         {"name": "derma_like", "synthetic": {"n_classes": 7, "n_channels": 3},
                          "overrides": {"train.epochs": 2}}],
               alphas=["mild", "severe", 0.3], seeds=[0, 5],
               overrides={"pneumoniamnist": {"tiers.strong.arch": "tiny_cnn:8"}})
    plan = expand_sweep(doc, tmp_path / "synth", base_dir=tmp_path)
    assert len(plan.cells) == plan.grid.size == 2 * 3 * 2
    assert [c.name for c in plan.cells[:3]] == [
        "pneumoniamnist_mild_s0", "pneumoniamnist_mild_s5", "pneumoniamnist_severe_s0"]
    assert plan.cells[-1].name == "derma_like_0.3_s5"
    for cell in plan.cells:
        cfg = cell.config
        assert (cfg.data.dataset, cfg.data.alpha, cfg.seed) == (cell.dataset, cell.alpha,
                                                                 cell.seed)
        assert cfg.train.rounds == 2 and cfg.tiers["weak"].arch == "tiny_cnn:4"
        # a cell name is a valid file stem of the results store
        assert cell_path(tmp_path, cell.dataset, cell.name).stem == cell.name
    pneu = plan.cell("pneumoniamnist_severe_s5").config
    derma = plan.cell("derma_like_mild_s0").config
    assert pneu.tiers["strong"].arch == "tiny_cnn:8" and pneu.train.epochs == 1
    assert derma.tiers["strong"].arch != "tiny_cnn:8" and derma.train.epochs == 2
    # relative data folders resolve against the base folder; synthetic data lives in the sweep
    assert pneu.data.data_dir == str((tmp_path / "data" / "real").resolve())
    assert derma.data.data_dir == str((tmp_path / "synth").resolve())
    assert derma.data.download is False
    assert plan.study.methods == ("ours",) and plan.study.attacks == ()
    assert plan.cell("derma_like_0.3_s0").alpha == pytest.approx(0.3)


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINLEARN_DATA", str(tmp_path / "env"))
    plan = expand_sweep(_doc(), tmp_path / "s", base_dir=tmp_path)
    assert plan.cells[0].config.data.data_dir == str((tmp_path / "env").resolve())
    plan = expand_sweep(_doc(), tmp_path / "s", base_dir=tmp_path, data_dir=tmp_path / "flag")
    assert plan.cells[0].config.data.data_dir == str((tmp_path / "flag").resolve())


@pytest.mark.parametrize(("sweep", "message"), [
    ({"datasets": []}, "sweep.datasets is empty"),
    ({"alphas": []}, "sweep.alphas is empty"),
    ({"seeds": []}, "sweep.seeds is empty"),
    ({"bogus": 1}, "unknown key(s) ['bogus'] in sweep"),
    ({"seeds": [0, 0]}, "repeat a seed"),
    ({"alphas": ["mild", 1.0]}, "repeat a level"),
    ({"alphas": ["extreme"]}, "unknown non-IID level"),
    ({"datasets": ["pneumoniamnist", "pneumoniamnist"]}, "twice"),
    ({"datasets": [{"name": "x", "synthetic": {"n_classes": 7, "colours": 3}}]},
     "unknown synthetic key"),
    ({"datasets": [{"name": "x", "what": 1}]}, "use a flag or"),
    ({"datasets": [{"name": "dermamnist", "synthetic": {}}]}, "is a MedMNIST flag"),
    ({"datasets": ["bad/name"]}, "use letters"),
    ({"overrides": {"dermamnist": {"train.epochs": 2}}}, "not in sweep.datasets"),
    ({"overrides": {"pneumoniamnist": {"train.nope": 2}}}, "unknown key(s) ['nope'] in train"),
    ({"max_concurrent": 0}, "max_concurrent"),
    ({"faults": ["nocell:raise"]}, "name no cell"),
    ({"seeds": [-1]}, "integer >= 0"),
])
def test_errors_say_what_is_wrong(tmp_path: Path, sweep: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        expand_sweep(_doc(**sweep), tmp_path)
    assert message in str(info.value)


def test_missing_sections_and_study_errors(tmp_path: Path) -> None:
    doc = _doc()
    del doc["sweep"]
    with pytest.raises(ConfigError, match="no sweep: section"):
        expand_sweep(doc, tmp_path)
    with pytest.raises(ConfigError, match=r"study\.methods"):
        expand_sweep({**_doc(), "study": {"methods": ["magic"]}}, tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_sweep(tmp_path / "missing.yaml", tmp_path)
    assert parse_grid({"datasets": "a", "alphas": "mild", "seeds": 3}).size == 1


def test_synthetic_datasets_written_once(tmp_path: Path) -> None:
    doc = _doc(datasets=[{"name": "tiny_synth", "synthetic": {
        "n_classes": 3, "n_channels": 3, "n_train": 30, "n_val": 9, "n_test": 9}}],
        alphas=["mild", "severe"])
    plan = expand_sweep(doc, tmp_path / "data")
    [path] = write_synthetic_data(plan)
    assert path == tmp_path / "data" / "tiny_synth.npz"
    stamp = path.stat().st_mtime_ns
    with np.load(path) as arrays:
        assert arrays["train_images"].shape == (30, 28, 28, 3)
        assert int(arrays["meta_n_classes"]) == 3
    assert write_synthetic_data(plan) == [path] and path.stat().st_mtime_ns == stamp
    bigger = expand_sweep(_doc(datasets=[{"name": "tiny_synth", "synthetic": {
        "n_classes": 3, "n_channels": 3, "n_train": 40, "n_val": 9, "n_test": 9}}]),
        tmp_path / "data")
    write_synthetic_data(bigger)
    with np.load(path) as arrays:
        assert arrays["train_images"].shape[0] == 40


def test_experiment_files_expand_to_their_grids(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAINLEARN_DATA", raising=False)
    quick = load_sweep(REPO / "experiments" / "quick.yaml", tmp_path)
    assert len(quick.cells) == 3 * 2
    assert quick.grid.datasets == ("pneumoniamnist",)
    assert quick.grid.seeds == (0, 1) and set(quick.grid.alphas) == set(ALPHAS.values())
    assert {c.config.tiers[t].arch for c in quick.cells for t in ("weak", "medium", "strong")} \
        == {"tiny_cnn:4", "tiny_cnn:8", "tiny_cnn:16"}
    pneu = quick.cell("pneumoniamnist_mild_s0").config
    assert pneu.data.data_dir == str((repo_root(REPO) / ".." / "shared" / "data").resolve())
    assert set(quick.study.attacks) == {"lazy", "inflated", "spoof"}
    assert "ablation:no_poc" in quick.study.methods and "fedmd" in quick.study.methods

    study = load_sweep(REPO / "experiments" / "cpu-study.yaml", tmp_path)
    assert len(study.cells) == 5 * 3 and study.grid.datasets == ("pneumoniamnist",)
    assert {"ours_balacc", "ours_dropout", "ablation:no_poc"} <= set(study.study.methods)

    paper = load_sweep(REPO / "experiments" / "paper.yaml", tmp_path)
    assert len(paper.cells) == 5 * 2 * 3
    assert paper.grid.seeds == PAPER_SEEDS
    assert paper.grid.datasets == ("pneumoniamnist", "dermamnist")
    cfg = paper.cells[0].config
    assert (cfg.data.resize, cfg.train.rounds, cfg.train.epochs) == (224, 5, 3)
    assert cfg.train.pretrained == "imagenet"
    assert [cfg.tiers[t].arch for t in ("weak", "medium", "strong")] == [
        "mobilenet_v3_small", "efficientnet_b0", "resnet50"]
    assert all(cfg.tiers[t].num_gpus > 0 for t in ("weak", "medium", "strong"))
    assert cell_name("dermamnist", 0.1, 442) in {c.name for c in paper.cells}
