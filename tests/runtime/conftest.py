"""Fixtures of the runtime tests: one local Ray for the module set, a synthetic dataset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chainlearn_ray.experiment.loading import load_config


@pytest.fixture(scope="session")
def ray_local() -> Iterator[Any]:
    """Local Ray with 4 logical CPUs (actors time-share the real cores)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a learnable 2-class synthetic dataset in the MedMNIST format."""
    from chainlearn_ray.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("data")
    write_synthetic(root, "synthetic", n_classes=2, n_channels=1, n_train=720, n_val=120,
                    n_test=120, seed=0)
    return root


def tiny_config(data_dir: Path, **overrides: Any) -> Any:
    """A fast run config: tiny CNNs, synthetic data, small PoC."""
    base: dict[str, Any] = {
        "data.dataset": "synthetic", "data.data_dir": str(data_dir), "data.min_shard": 16,
        "data.download": False,
        "train.rounds": 2, "train.epochs": 2, "train.lr": 0.003, "poc.steps": 10, "poc.warmup": 2,
        "tiers.weak.arch": "tiny_cnn:4", "tiers.medium.arch": "tiny_cnn:8",
        "tiers.strong.arch": "tiny_cnn:8",
        "runtime.coordinator_cpus": 0.5,
        # profiles far below the machine's speed and thresholds between them, so the measured
        # tiers match the hardware tiers even when the machine is busy
        "poc.weak_below": 25.0, "poc.medium_below": 75.0,
        "tiers.weak.target_throughput": 12.0, "tiers.medium.target_throughput": 40.0,
        "tiers.strong.target_throughput": 150.0,
    }
    base.update(overrides)
    return load_config(None, base)
