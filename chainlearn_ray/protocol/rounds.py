"""Round bookkeeping of the protocol: attendance draws, the virtual-clock deadline, outcomes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

ABSENT = "absent"
ATTENDED = "submitted"
LATE = "late"
FAILED = "failed"
TIMED_OUT = "timed_out"
#: The server refused the hospital's result (Ours: the chain rejected its submission).
REJECTED = "rejected"

#: Why a hospital has no submission in a round, as result rows name it (``status_<why>``).
STATUS_ROWS: dict[str, str] = {
    ABSENT: "dropout", LATE: "late", FAILED: "crashed", TIMED_OUT: "timed_out",
    REJECTED: "rejected",
}

#: Ours-Dropout's attendance probability per tier (SPEC.md §2).
DROPOUT_ATTENDANCE: dict[str, float] = {"weak": 1.0, "medium": 0.8, "strong": 0.6}


def draw_attendance(
    seed: int, round_: int, hospital_ids: Sequence[str], attendance: Mapping[str, float]
) -> dict[str, bool]:
    """Which hospitals attend round ``round_`` (seeded per round; probability per hospital).

    Parameters
    ----------
    attendance:
        Attendance probability of each hospital id (its tier's setting).
    """
    rng = np.random.default_rng([int(seed), int(round_), 0xA77E])
    draws = rng.random(len(hospital_ids))
    return {
        hid: bool(draws[i] < attendance.get(hid, 1.0)) for i, hid in enumerate(hospital_ids)
    }


def missed_deadline(simulated_seconds: float, deadline: float | None) -> bool:
    """Whether a hospital is late on the virtual clock (``deadline`` None: never)."""
    return deadline is not None and simulated_seconds > deadline


@dataclass
class HospitalRound:
    """One hospital's outcome in one round (plain data, kept by the coordinator)."""

    hospital_id: str
    tier: str
    status: str
    weight: int = 0
    accuracy: float | None = None
    macro_f1: float | None = None
    confidence: float | None = None
    ece: float | None = None
    val_accuracy: float | None = None
    simulated_seconds: float | None = None
    wall_seconds: float | None = None
    samples: int = 0
    gas_submit: int | None = None
    error: str | None = None
    #: Privacy spent so far by a hospital training with DP (``None``: no DP).
    dp_epsilon: float | None = None
    dp_delta: float | None = None


@dataclass
class RoundOutcome:
    """Everything one round produced (returned by the coordinator to the driver)."""

    round: int
    hospitals: list[HospitalRound]
    participants: int
    ensemble: dict[str, float] = field(default_factory=dict)
    gas: dict[str, int] = field(default_factory=dict)
    round_seconds: float = 0.0
    chain_seconds: float = 0.0
    train_seconds: float = 0.0
    ensemble_hash: str | None = None
    #: Part of ``chain_seconds`` spent while other hospitals were still training (preparing
    #: and requesting signatures as each finished): off the round's critical path.
    chain_overlap_seconds: float = 0.0
    #: CPU time of the coordinator process during its chain work (wall time of work done
    #: alongside training also counts the wait for a core).
    chain_cpu_seconds: float = 0.0
    #: Hospitals whose process died in the round and that started their step again in it.
    restarted: tuple[str, ...] = ()
