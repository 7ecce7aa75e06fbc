"""Sweeps on Ray Tune: cells into one Parquet dataset, resume, retry, failures, the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from chainlearn_ray.cli import main as cli_main
from chainlearn_ray.experiment.sweep_plan import load_sweep
from chainlearn_ray.results.store import cell_path, read_results
from chainlearn_ray.runtime.tune import SWEEP_MANIFEST, run_sweep

pytestmark = pytest.mark.slow


def _write(folder: Path, seeds: list[int], faults: list[str], epochs: int = 1) -> Path:
    doc = {
        # one hospital per cell: each trial then starts two actor processes, which keeps the
        # test fast on two cores; multi-hospital cells are covered by the runtime tests
        "name": "tsweep", "hospitals": {"strong": 1},
        "tiers": {"strong": {"arch": "tiny_cnn:4"}},
        "data": {"min_shard": 16},
        "train": {"rounds": 1, "epochs": epochs, "lr": 0.003},
        "poc": {"steps": 5, "warmup": 1},
        "runtime": {"coordinator_cpus": 0.5},
        "study": {"methods": ["ours"], "attacks": []},
        "sweep": {
            "datasets": [{"name": "syn", "synthetic": {"n_train": 240, "n_val": 48,
                                                       "n_test": 48}}],
            "alphas": ["mild"], "seeds": seeds, "faults": faults,
        },
    }
    path = folder / f"sweep_{len(seeds)}_e{epochs}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _stamp(path: Path) -> tuple[int, bytes]:
    return path.stat().st_mtime_ns, path.read_bytes()


@pytest.fixture(scope="module")
def first(ray_local: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two cells, two trials at once; the second cell's first attempt fails and is retried."""
    folder = tmp_path_factory.mktemp("sweep")
    config = _write(folder, [0, 1], ["syn_mild_s1:raise"])
    out = folder / "out"
    lines: list[str] = []
    summary = run_sweep(config, out, max_concurrent=2, retries=1, progress=lines.append)
    return {"folder": folder, "config": config, "out": out, "summary": summary, "lines": lines}


def test_two_cells_end_to_end_into_parquet(first: dict[str, Any], ray_local: Any) -> None:
    out, summary = first["out"], first["summary"]
    assert summary.count("finished") == 2 and summary.count("failed") == 0
    files = [cell_path(out, "syn", f"syn_mild_s{s}") for s in (0, 1)]
    assert all(f.is_file() for f in files)
    frame = read_results(out)
    assert list(frame.columns) == ["run_id", "dataset", "alpha", "seed", "method", "round",
                                   "hospital", "tier", "metric", "value"]
    assert set(frame.seed) == {0, 1} and set(frame.dataset) == {"syn"}
    assert set(frame.method) == {"ours", "majority"}
    ens = frame[(frame.hospital == "ensemble") & (frame.metric == "accuracy")]
    assert len(ens.groupby("seed")) == 2 and ens.value.between(0, 1).all()
    # both trials' placement groups held every CPU of the cluster, so the coordinator and
    # hospital actors could only run inside them: Ray would have left them pending otherwise
    reserved = sum(sum(b.get("CPU", 0.0) for b in bundles)
                   for bundles in summary.trial_bundles.values())
    assert reserved == pytest.approx(ray_local.cluster_resources()["CPU"], abs=1e-3)
    manifest = json.loads((out / SWEEP_MANIFEST).read_text())
    assert manifest["finished"] == ["syn_mild_s0", "syn_mild_s1"] and manifest["failed"] == []
    assert manifest["cells"]["syn_mild_s1"]["attempts"] == 2
    assert manifest["cells"]["syn_mild_s0"]["attempts"] == 1
    assert manifest["sweep"]["seeds"] == [0, 1] and manifest["study"]["methods"] == ["ours"]
    assert "git_revision" in manifest and "ray" in manifest["versions"]
    [retry] = [line for line in first["lines"] if "syn_mild_s1 failed" in line]
    assert "injected failure" in retry and retry.endswith("; retrying")
    assert (out / "data" / "syn.npz").is_file()


def test_rerun_skips_finished_cells(first: dict[str, Any],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = first["out"]
    files = [cell_path(out, "syn", f"syn_mild_s{s}") for s in (0, 1)]
    before = [_stamp(f) for f in files]
    experiments = sorted((out / "tune").iterdir())
    t0 = time.perf_counter()
    code = cli_main(["sweep", str(first["config"]), "--out", str(out)])
    spent = time.perf_counter() - t0
    text = capsys.readouterr().out
    assert code == 0
    assert "0 cells done, 2 skipped" in text and f"chainlearn stats {out.resolve()}" in text
    assert [_stamp(f) for f in files] == before
    assert sorted((out / "tune").iterdir()) == experiments  # no Tune experiment was started
    assert spent < 15


def test_failed_cell_keeps_finished_results(first: dict[str, Any]) -> None:
    out = first["out"]
    files = [cell_path(out, "syn", f"syn_mild_s{s}") for s in (0, 1)]
    before = [_stamp(f) for f in files]
    config = _write(first["folder"], [0, 1, 2], ["syn_mild_s2:raise"])
    summary = run_sweep(config, out, retries=0)
    assert summary.count("skipped") == 2 and summary.count("failed") == 1
    [failed] = [c for c in summary.cells if c.status == "failed"]
    assert failed.name == "syn_mild_s2" and "injected failure" in (failed.error or "")
    assert not cell_path(out, "syn", "syn_mild_s2").exists()
    assert [_stamp(f) for f in files] == before
    manifest = json.loads((out / SWEEP_MANIFEST).read_text())
    assert manifest["failed"] == ["syn_mild_s2"]
    assert manifest["finished"] == ["syn_mild_s0", "syn_mild_s1"]
    assert set(read_results(out).seed) == {0, 1}


def test_changed_config_reruns_changed_cells(first: dict[str, Any]) -> None:
    out = first["out"]
    kept = cell_path(out, "syn", "syn_mild_s1")
    before = _stamp(kept)
    # the file now says epochs 2; only cell s0 is asked for: it re-runs, s1 keeps epochs 1
    config = _write(first["folder"], [0, 1], [], epochs=2)
    lines: list[str] = []
    counts: list[tuple[int, int, int, int]] = []
    summary = run_sweep(config, out, cells=["syn_mild_s0"], progress=lines.append,
                        counts=lambda *c: counts.append(c))
    assert summary.count("finished") == 1 and summary.count("skipped") == 0
    assert counts[-1] == (1, 1, 0, 0)  # live counts: cells done, in all, failed, running
    assert any("re-running syn_mild_s0" in line for line in lines)
    assert _stamp(kept) == before
    manifest = json.loads((out / SWEEP_MANIFEST).read_text())
    cells = manifest["cells"]
    assert cells["syn_mild_s0"]["config"]["train"]["epochs"] == 2
    assert cells["syn_mild_s1"]["config"]["train"]["epochs"] == 1
    assert cells["syn_mild_s0"]["config_hash"] != cells["syn_mild_s1"]["config_hash"]
    assert manifest["cells_with_other_config"] == ["syn_mild_s1"]
    # the same file again: nothing to run
    again = run_sweep(config, out, cells=["syn_mild_s0"])
    assert again.count("skipped") == 1 and again.count("finished") == 0


def test_dry_run_prints_cells_and_trial_resources(
        first: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    config = first["config"]
    assert cli_main(["sweep", str(config), "--out", str(first["out"]), "--dry-run",
                     "--max-concurrent", "2"]) == 0
    text = capsys.readouterr().out
    assert "2 of 2 cells" in text and "syn_mild_s0" in text and "[finished]" in text
    assert "2 trial(s) at once" in text and "bundles [{'CPU': 0.5}" in text
    assert cli_main(["sweep", str(config), "--out", str(first["out"]), "--dry-run",
                     "--cells", "*_s1"]) == 0
    text = capsys.readouterr().out
    assert "1 of 2 cells" in text and "syn_mild_s1" in text and "syn_mild_s0" not in text
    assert cli_main(["sweep", str(config), "--dry-run", "--cells", "nope*"]) == 2
    assert len(load_sweep(config, first["out"] / "data").cells) == 2
