"""What the driver needs from where client steps run: the :class:`Executor` protocol.

Two executors implement it: :class:`~chainlearn_ray.runtime.actor_executor.ActorExecutor`
(the hospital actors on Ray) and :class:`~chainlearn_ray.runtime.in_process.InProcessExecutor`
(this process). Handles are opaque to the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from chainlearn_ray.errors import ChainlearnError
from chainlearn_ray.methods.messages import ClientResult, RoundConfig


class StepFailed(ChainlearnError):
    """A client step failed where it ran (its process died, or the step raised).

    ``died``: the process died (Ray restarts it from its checkpoints), rather than the step
    raising an error of its own.
    """

    def __init__(self, message: str, *, died: bool = False) -> None:
        super().__init__(message)
        self.died = died


class Ahead(Protocol):
    """The next round's early start (see :class:`~chainlearn_ray.runtime.scheduling.
    EarlyStart`)."""

    def start_ready(self, through: Callable[[str], bool]) -> None:
        """Start what may start, given who is through the current round."""
        ...


class Executor(Protocol):
    """Where client steps run. Handles are opaque to the driver."""

    def order(self, clients: Sequence[str], config: RoundConfig) -> list[str]:
        """The order the steps of ``clients`` start (and are accepted) in."""
        ...

    def start(self, client: str, config: RoundConfig) -> Any:
        """Start one client's step (or take the one started ahead for it); returns a handle."""
        ...

    def wait(self, handles: Sequence[Any], timeout: float | None) -> Any | None:
        """One finished handle of ``handles``, or ``None`` after ``timeout`` seconds."""
        ...

    def result(self, handle: Any) -> ClientResult:
        """The finished step's result; :class:`StepFailed` when it failed."""
        ...

    def await_up(self, clients: Sequence[str], timeout: float) -> dict[str, str]:
        """Wait until the processes of ``clients`` answer; client -> why, for those still
        down after ``timeout`` seconds."""
        ...

    def abandon(self, client: str) -> None:
        """Give up on a client's running step (its process is restarted)."""
        ...

    def measuring(self) -> bool:
        """Whether timed steps are still queued or running."""
        ...

    def started_ahead(self, round_: int) -> set[str]:
        """Clients whose step of ``round_`` was started ahead."""
        ...

    def ahead(self, config: RoundConfig, attending: Sequence[str],
              current: Sequence[str]) -> Ahead:
        """An early start of ``config`` for ``attending`` while ``current`` finish a round."""
        ...
