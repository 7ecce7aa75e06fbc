"""The simulated clock in whole runs: the cost model repeats under load; measured mode works."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chainlearn_ray.experiment.clock import cost_model_of
from chainlearn_ray.runtime.simulation import load_partitioned, run_simulation

from .conftest import tiny_config

pytestmark = pytest.mark.slow

#: The weak profile slower than the others, so a deadline falls between them.
SLOW_WEAK = {"train.rounds": 2, "tiers.weak.target_throughput": 1.0}


@pytest.fixture
def busy_cpu() -> Iterator[None]:
    """A process spinning on one core for the duration of the test."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        burner.kill()
        burner.wait()


def _clock(summary: Any) -> list[tuple[int, str, str, float | None]]:
    return [(o.round, h.hospital_id, h.status, h.simulated_seconds)
            for o in summary.rounds for h in o.hospitals]


def _expected_seconds(cfg: Any) -> dict[str, float]:
    """Each hospital's simulated seconds per round, from the cost model by hand."""
    cost = cost_model_of(cfg)
    _data, part = load_partitioned(cfg)
    out = {}
    for i, tier in enumerate(cfg.hospital_tiers()):
        tc = cfg.tiers[tier.label]
        samples = len(part.indices[i]) * cfg.train.epochs
        out[f"h{i:02d}"] = samples * (cost.per_sample(tc.arch) * cost.slowdown(
            tc.target_throughput))
    return out


def test_cost_clock_repeats_exactly_under_load(ray_local: Any, synth_dir: Path, tmp_path: Path,
                                               request: pytest.FixtureRequest) -> None:
    expected = _expected_seconds(tiny_config(synth_dir, **SLOW_WEAK))
    assert expected["h00"] > 2 * max(expected["h01"], expected["h02"])  # exact: no margin
    deadline = (expected["h00"] * max(expected["h01"], expected["h02"])) ** 0.5
    cfg = tiny_config(synth_dir, **SLOW_WEAK, **{"runtime.deadline": deadline})
    quiet = run_simulation(cfg, tmp_path / "quiet")
    request.getfixturevalue("busy_cpu")  # the same run again beside a CPU-bound process
    busy = run_simulation(cfg, tmp_path / "busy")
    assert _clock(quiet) == _clock(busy)
    for _r, h, status, seconds in _clock(quiet):
        assert seconds == pytest.approx(expected[h], rel=1e-12)
        assert status == ("late" if h == "h00" else "submitted")
    # the PoC measured each profile's target exactly, so the tiers are the config's
    regs = {r["hospital_id"]: r for r in quiet.registrations}
    assert [regs[h]["throughput"] for h in sorted(regs)] == pytest.approx([1.0, 40.0, 150.0],
                                                                          rel=1e-12)
    assert [regs[h]["tier"] for h in sorted(regs)] == ["weak", "medium", "strong"]
    manifest = json.loads((tmp_path / "quiet" / "manifest.json").read_text())
    cost = cost_model_of(cfg)
    assert cost is not None
    assert manifest["clock"] == {"clock": "cost", "throttle": "virtual",
                                 "cost_model": cost.record()}
    assert manifest["config"]["runtime"]["cost_model"] == cost.table()


def test_measured_clock_still_works(ray_local: Any, synth_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_config(synth_dir, **{"train.rounds": 1, "runtime.clock": "measured"})
    summary = run_simulation(cfg, tmp_path / "measured")
    assert [r["tier"] for r in summary.registrations] == ["weak", "medium", "strong"]
    assert all(r["slowdown"] >= 1.0 for r in summary.registrations)
    (outcome,) = summary.rounds
    assert outcome.participants == 3
    assert all(h.simulated_seconds is not None and h.simulated_seconds > 0
               for h in outcome.hospitals)
    manifest = json.loads((tmp_path / "measured" / "manifest.json").read_text())
    assert manifest["clock"] == {"clock": "measured", "throttle": "virtual", "cost_model": None}
