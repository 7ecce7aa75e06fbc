"""Live progress on a terminal (rich): a run's round, hospitals trained, time and chain step;
a sweep's cells done, failures and ETA.

Runs report plain events (:class:`~chainlearn_ray.runtime.progress.RunEvent`) and sweeps
plain counts; only this module draws. Off a terminal, or with ``-q``, commands print plain
lines instead.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from chainlearn_ray.runtime.progress import RunEvent


def is_terminal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default stdout) is an interactive terminal."""
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


class _Live:
    """A rich progress display that prints lines above itself."""

    def __init__(self, console: Console | None, label: str) -> None:
        self.console = console or Console()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn(label), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"), console=self.console, transient=True,
            refresh_per_second=4)

    def __enter__(self) -> _Live:
        self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()

    def say(self, line: str) -> None:
        """Print a line above the live display."""
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


class RunDisplay(_Live):
    """``chainlearn run``: per round, hospitals trained / attending, the round's elapsed time
    and ETA, and the chain step under way."""

    def __init__(self, rounds: int, console: Console | None = None) -> None:
        super().__init__(console, "hospitals trained")
        self.rounds = rounds
        self.task: TaskID | None = None
        self.round = 0

    def event(self, ev: RunEvent) -> None:
        """Fold one run event into the display."""
        if ev.kind == "round_started":
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.round = ev.round
            what = f"round {ev.round}/{self.rounds}" if ev.round else "set-up (PoC)"
            self.task = self.progress.add_task(what, total=int(ev.data.get("hospitals", 0)),
                                               note="")
            return
        if self.task is None or ev.round != self.round:
            return
        if ev.kind == "step":
            self.progress.advance(self.task)
        elif ev.kind == "dropped":
            self.progress.advance(self.task)
            self.say(f"  {ev.data.get('hospital')} {ev.data.get('status')} in round {ev.round}")
        elif ev.kind == "restarted":
            self.say(f"  {ev.data.get('hospital')}: its process died in round {ev.round}; "
                     "restarted, training again")
        elif ev.kind == "chain":
            self.progress.update(self.task, note=f"chain: {ev.data.get('step', '')}")


class SweepDisplay(_Live):
    """``chainlearn sweep``: cells done / total, failures and ETA."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        super().__init__(console, "cells")
        self.task = self.progress.add_task("sweep", total=total, note="")
        self.started = time.monotonic()

    def update(self, done: int, total: int, failed: int, running: int) -> None:
        """The sweep's counts now."""
        note = f"{running} running" + (f", {failed} failed" if failed else "")
        self.progress.update(self.task, completed=done, total=total, note=note)


def sweep_counts(display: SweepDisplay | None) -> Any:
    """A sweep's ``counts`` callback for ``display`` (``None``: nothing to draw)."""
    return None if display is None else display.update
