"""``chainlearn run`` and its results folder, as a user meets them: refusals, a failed run that
removes nothing, an interrupted run that says how to resume, and a resume that ends where an
uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: Metrics that depend on wall-clock timing (not part of the sameness check).
TIMING = ("poc_throughput", "poc_slowdown", "simulated_seconds", "wall_seconds", "round_seconds",
          "chain_seconds", "train_seconds")


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "chainlearn_ray", "run", "--dataset", "synthetic",
            "--data-dir", str(data), "--hospitals", "3", "--rounds", "3", "--epochs", "2",
            "--arch", "tiny_cnn:4", "--out", str(out), "-q", *extra]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300,
                          check=False)


def _metrics(out: Path) -> pd.DataFrame:
    frame = pd.read_parquet(out / "results.parquet")
    frame = frame[~frame.metric.isin(TIMING)]
    return frame.sort_values(["round", "hospital", "metric"]).reset_index(drop=True)


def _interrupt_after_round_one(args: list[str], out: Path) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    deadline = time.monotonic() + 240
    manifest = out / "manifest.json"
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and '"rounds_completed": 1' in manifest.read_text():
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_interrupt_resume_overwrite(tmp_path: Path) -> None:
    data = tmp_path / "data"
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert _run(_args(data, whole)).returncode == 0

    # a second run into the same folder is refused (exit 2, one line), and so is --resume of
    # a complete run or one with another config
    again = _run(_args(data, whole, "--seed", "7"))
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert "holds a run: pass --resume" in again.stderr
    changed = _run(_args(data, whole, "--seed", "7", "--resume"))
    assert changed.returncode == 2 and "seed: 42 -> 7" in changed.stderr

    # a run that fails its checks (no GPU here) with --overwrite removes nothing
    before = {p.name: p.stat().st_mtime_ns for p in (whole / "checkpoints").iterdir()}
    failed = _run(_args(data, whole, "--device", "cuda", "--overwrite"))
    assert failed.returncode == 2 and "GPU" in failed.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (whole / "checkpoints").iterdir()} == before
    assert json.loads((whole / "manifest.json").read_text())["status"] == "complete"
    # ... and one in a new folder leaves no folder behind
    fresh = tmp_path / "fresh"
    assert _run(_args(data, fresh, "--device", "cuda")).returncode == 2
    assert not fresh.exists()

    # SIGTERM after round 1: status interrupted, receipts so far, the command that resumes
    code, err = _interrupt_after_round_one(_args(data, cut), cut)
    assert code == 130, err
    manifest = json.loads((cut / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["rounds_completed"] >= 1
    receipts = json.loads((cut / "receipts.json").read_text())
    assert [r["operation"] for r in receipts].count("recordEnsemblePrediction") >= 1
    line = next(x for x in err.splitlines() if "resume with:" in x)
    command = line.split("resume with: ", 1)[1].split()
    assert command[:2] == ["chainlearn", "run"] and command[-1] == "--resume"
    assert f"--out {cut}" in line

    resumed = _run([sys.executable, "-m", "chainlearn_ray", *command[1:]])
    assert resumed.returncode == 0, resumed.stderr
    done = json.loads((cut / "manifest.json").read_text())
    assert done["status"] == "complete" and done["rounds_completed"] == 3
    assert done["resumed_after_round"] == [manifest["rounds_completed"]]
    pd.testing.assert_frame_equal(_metrics(cut), _metrics(whole))
    ops = [(r["operation"], r["sender"], r["gas_used"])
           for r in json.loads((cut / "receipts.json").read_text())]
    assert ops == [(r["operation"], r["sender"], r["gas_used"])
                   for r in json.loads((whole / "receipts.json").read_text())]

    # --overwrite replaces the run once every check has passed
    over = _run(_args(data, whole, "--seed", "7", "--overwrite"))
    assert over.returncode == 0, over.stderr
    assert json.loads((whole / "manifest.json").read_text())["config"]["seed"] == 7
