"""Ctrl-C of ``chainlearn sweep``: finished cells are kept and the command that resumes is the
``chainlearn sweep`` one, not Tune's ``Tuner.restore(...)``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_ctrl_c_prints_the_sweep_command_that_resumes(tmp_path: Path) -> None:
    doc = {
        "name": "isweep", "hospitals": {"strong": 1}, "tiers": {"strong": {"arch": "tiny_cnn:4"}},
        "data": {"min_shard": 16}, "train": {"rounds": 2, "epochs": 1, "lr": 0.003},
        "poc": {"steps": 5, "warmup": 1}, "runtime": {"coordinator_cpus": 0.5},
        "study": {"methods": ["ours"], "attacks": []},
        "sweep": {"datasets": [{"name": "syn", "synthetic": {"n_train": 240, "n_val": 48,
                                                             "n_test": 48}}],
                  "alphas": ["mild"], "seeds": [0, 1, 2]},
    }
    config = tmp_path / "isweep.yaml"
    config.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    args = [sys.executable, "-m", "chainlearn_ray", "sweep", str(config), "--out", str(out),
            "--max-concurrent", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if list((out / "results").glob("*/*.parquet")):  # one cell finished
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.1)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 130, stderr[-2000:]
    text = stdout + stderr
    assert "Tuner.restore(" not in text
    line = next(x for x in stderr.splitlines() if "resume with:" in x)
    assert line.endswith(f"chainlearn sweep {config} --max-concurrent 1 --out {out}")
    assert list((out / "results").glob("*/*.parquet"))  # the finished cell is kept
