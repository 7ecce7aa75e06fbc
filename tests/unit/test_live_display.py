"""Live progress on a terminal: what the run and sweep displays show, and the resume hints."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from rich.console import Console

from chainlearn_ray.commands.live import RunDisplay, SweepDisplay, is_terminal
from chainlearn_ray.commands.run import resume_command
from chainlearn_ray.runtime.progress import CHAIN_STEPS, ObservedPort, RunEvent
from chainlearn_ray.runtime.tune import _NoRestoreHint


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=160), out


def test_run_display_counts_hospitals_and_shows_the_chain_step() -> None:
    console, out = _console()
    with RunDisplay(3, console) as live:
        live.event(RunEvent("round_started", 0, {"hospitals": 2}))
        assert live.progress.tasks[-1].description == "set-up (PoC)"
        live.event(RunEvent("round_started", 1, {"hospitals": 3}))
        live.event(RunEvent("step", 1, {"hospital": "h00", "phase": "train"}))
        live.event(RunEvent("step", 2, {"hospital": "h01", "phase": "train"}))  # ahead: not yet
        live.event(RunEvent("chain", 1, {"step": "relaying a submission"}))
        live.event(RunEvent("dropped", 1, {"hospital": "h02", "status": "timed_out"}))
        [task] = live.progress.tasks
        assert task.description == "round 1/3" and task.total == 3 and task.completed == 2
        assert task.fields["note"] == "chain: relaying a submission"
        live.say("round 1: 2 submitted")
        live.progress.refresh()
    text = out.getvalue()
    assert "h02 timed_out in round 1" in text and "round 1: 2 submitted" in text
    assert "hospitals trained" in text and "ETA" in text
    assert not is_terminal(io.StringIO())


def test_sweep_display_counts_cells_and_failures() -> None:
    console, out = _console()
    with SweepDisplay(0, console) as live:
        live.update(3, 12, 1, 2)
        [task] = live.progress.tasks
        assert (task.completed, task.total) == (3, 12)
        assert task.fields["note"] == "2 running, 1 failed"
        live.progress.refresh()
    assert "3/12" in out.getvalue()


def test_chain_steps_are_reported_before_they_happen() -> None:
    seen: list[tuple[str, int, dict[str, object]]] = []

    class Port:
        contract = "0xabc"

        def submit(self, raw: bytes) -> int:
            seen.append(("submitted", 0, {}))
            return 7

    port = ObservedPort(Port(), lambda *e: seen.append(e))
    port.round = 4
    assert port.submit(b"x") == 7 and port.contract == "0xabc"
    assert seen == [("chain", 4, {"step": CHAIN_STEPS["submit"]}), ("submitted", 0, {})]


def test_sweep_resume_hint_is_the_chainlearn_command(tmp_path: Path) -> None:
    argv = ["sweep", "experiments/quick.yaml", "--no-resume", "--max-concurrent", "2"]
    assert resume_command(tmp_path, argv, verb="sweep", add=()) == (
        f"chainlearn sweep experiments/quick.yaml --max-concurrent 2 --out {tmp_path}")
    quiet = _NoRestoreHint()

    def record(text: str) -> logging.LogRecord:
        return logging.LogRecord("ray.tune.tune", logging.WARNING, __file__, 1, text, None, None)

    assert not quiet.filter(record('Resume experiment with: Tuner.restore(path="x")'))
    assert quiet.filter(record("Trials did not complete"))
