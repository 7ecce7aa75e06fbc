"""Why a hospital has no submission in a round is recorded as a row of its own."""

from __future__ import annotations

from chainlearn_ray.protocol.rounds import (
    ABSENT,
    ATTENDED,
    FAILED,
    LATE,
    REJECTED,
    TIMED_OUT,
    HospitalRound,
    RoundOutcome,
)
from chainlearn_ray.results.rows import RunKey, round_rows
from chainlearn_ray.results.schema import METRICS


def test_every_status_has_its_row() -> None:
    statuses = [ATTENDED, ABSENT, LATE, FAILED, TIMED_OUT, REJECTED]
    outcome = RoundOutcome(2, [HospitalRound(f"h{i:02d}", "weak", s, weight=100, accuracy=0.5)
                               for i, s in enumerate(statuses)], participants=1)
    rows = round_rows(RunKey("r", "syn", 0.5, 42, "ours"), outcome)
    why = {r["hospital"]: r["metric"] for r in rows if r["metric"].startswith("status_")}
    assert why == {"h01": "status_dropout", "h02": "status_late", "h03": "status_crashed",
                   "h04": "status_timed_out", "h05": "status_rejected"}
    assert all(r["value"] == 1.0 and r["round"] == 2 for r in rows
               if r["metric"].startswith("status_"))
    attended = {r["hospital"]: r["value"] for r in rows if r["metric"] == "attended"}
    assert attended == {"h00": 1.0, **{f"h{i:02d}": 0.0 for i in range(1, 6)}}
    assert set(why.values()) <= set(METRICS)  # every status row is a documented metric
    restarted = RoundOutcome(3, [HospitalRound("h00", "weak", ATTENDED, weight=9)], 1,
                             restarted=("h00",))
    rows = round_rows(RunKey("r", "syn", 0.5, 42, "ours"), restarted)
    assert [(r["hospital"], r["tier"]) for r in rows if r["metric"] == "status_restarted"] == [
        ("h00", "weak")]
    assert "status_restarted" in METRICS
