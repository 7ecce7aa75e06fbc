"""The memory estimate of a plan, and its warning when the plan cannot fit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chainlearn_ray.planning.memory import (
    GIB,
    PROCESS_GIB,
    DataShape,
    estimate_memory,
    physical_memory_bytes,
)

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"weak": 1_519_906, "medium": 4_010_110, "strong": 23_512_130}  # SPEC.md, 2 classes


def test_one_process_per_hospital_at_48_hospitals_nearly_fills_24_gib() -> None:
    hospitals = {"weak": 16, "medium": 16, "strong": 16}
    data = DataShape(4708, 524, 624, 1, 28)
    isolated = estimate_memory(48, PARAMS, hospitals, data, 24 * GIB, training_at_once=2)
    assert isolated.processes == 49
    assert isolated.processes_gib == pytest.approx(49 * PROCESS_GIB)
    assert 17 < isolated.total_gib < 24 and not isolated.exceeds
    packed = estimate_memory(2, PARAMS, hospitals, data, 24 * GIB, training_at_once=2)
    assert packed.total_gib < 4 and packed.isolated_gib == pytest.approx(isolated.total_gib)
    small = estimate_memory(48, PARAMS, hospitals, data, 16 * GIB, training_at_once=2)
    assert small.exceeds
    text = small.render()
    assert "WARNING" in text and "--hospitals-per-actor" in text and "16.0 GiB" in text
    assert "WARNING" not in isolated.render()
    unknown = estimate_memory(2, PARAMS, hospitals, None, None)
    assert not unknown.exceeds and unknown.data_gib == 0
    assert (physical_memory_bytes() or 1) > 0


@pytest.mark.slow
def test_dry_run_prints_memory_and_what_a_dead_process_costs(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "chainlearn_ray", "run", "--dataset", "synthetic",
            "--data-dir", str(tmp_path), "--hospitals", "12", "--arch", "tiny_cnn:4",
            "--dry-run"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=180,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "Memory estimate: " in done.stdout and " GiB" in done.stdout
    assert "takes every hospital it hosts out of the round" in done.stdout
    assert "--hospitals-per-actor 1 isolates" in done.stdout
