"""Live progress of a run on Ray: the events reach the driving process as the run goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chainlearn_ray.runtime.progress import RunEvent
from chainlearn_ray.runtime.simulation import run_simulation

from .conftest import tiny_config

pytestmark = pytest.mark.slow


def test_events_of_every_round(ray_local: Any, synth_dir: Path, tmp_path: Path) -> None:
    events: list[RunEvent] = []
    lines: list[str] = []
    summary = run_simulation(tiny_config(synth_dir), tmp_path / "run", progress=lines.append,
                             events=events.append)
    started = [(e.round, e.data["hospitals"]) for e in events if e.kind == "round_started"]
    assert started == [(0, 3), (1, 3), (2, 3)]
    for r in (1, 2):
        steps = {e.data["hospital"] for e in events if e.kind == "step" and e.round == r}
        assert steps == {"h00", "h01", "h02"}
        chain = [e.data["step"] for e in events if e.kind == "chain" and e.round == r]
        assert chain[0] == "opening the round" and chain[-1] == "recording the ensemble"
        assert chain.count("relaying a submission") == 3
    assert [e.data["step"] for e in events if e.kind == "chain" and e.round == 0].count(
        "registering a hospital") == 3
    assert len(summary.rounds) == 2 and any("ensemble acc" in line for line in lines)
