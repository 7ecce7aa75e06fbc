"""Resource validation before any actor starts, and a run against a real anvil node."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from chainlearn_ray.errors import ResourceError
from chainlearn_ray.runtime.simulation import run_simulation

from .conftest import tiny_config


def _no_actors_left(ray: Any) -> bool:
    """Every resource of the cluster is free again (no actor was left holding any)."""
    deadline = time.time() + 30
    while time.time() < deadline:
        if ray.available_resources().get("CPU") == ray.cluster_resources().get("CPU"):
            return True
        time.sleep(0.5)
    return False


def test_gpu_fraction_without_gpus_is_a_clear_error(ray_local: Any, synth_dir: Path,
                                                     tmp_path: Path) -> None:
    cfg = tiny_config(synth_dir, **{"tiers.strong.num_gpus": 0.5, "runtime.device": "auto"})
    started = time.perf_counter()
    with pytest.raises(ResourceError, match="--device cpu"):
        run_simulation(cfg, tmp_path / "gpu")
    assert time.perf_counter() - started < 60  # an error, not an endless wait
    assert not (tmp_path / "gpu").exists()  # a failed run leaves no empty folder behind
    assert _no_actors_left(ray_local)


def test_missing_custom_resource_is_named(ray_local: Any, synth_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_config(synth_dir, **{"tiers.strong.resources": {"tier_strong": 1}})
    with pytest.raises(ResourceError, match="tier_strong"):
        run_simulation(cfg, tmp_path / "custom")


def test_device_cpu_ignores_gpu_shares(ray_local: Any, synth_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_config(synth_dir, **{"tiers.strong.num_gpus": 0.5, "runtime.device": "cpu",
                                    "train.rounds": 1})
    summary = run_simulation(cfg, tmp_path / "cpu")
    assert summary.rounds[0].participants == 3


@pytest.mark.anvil
@pytest.mark.slow
def test_run_on_anvil(ray_local: Any, synth_dir: Path, tmp_path: Path) -> None:
    from chainlearn_ray.chain.anvil import find_anvil

    if find_anvil() is None and shutil.which("anvil") is None:
        pytest.skip("anvil binary not installed: run `npm ci` in contracts/")
    cfg = tiny_config(synth_dir, **{"chain.backend": "anvil", "train.rounds": 1})
    summary = run_simulation(cfg, tmp_path / "anvil")
    assert summary.chain["backend"] == "anvil" and summary.chain["chain_id"] == 31337
    assert summary.rounds[0].participants == 3
