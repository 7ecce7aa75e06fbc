"""Round bookkeeping of a federated run: attendance, virtual-clock deadline, tidy result rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from chainlearn_ray.results.schema import ALL, ENSEMBLE, class_count_metric

ABSENT = "absent"
ATTENDED = "submitted"
LATE = "late"
FAILED = "failed"
TIMED_OUT = "timed_out"


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


@dataclass(frozen=True)
class RunKey:
    """The identifying columns shared by every row of one run/method."""

    run_id: str
    dataset: str
    alpha: float
    seed: int
    method: str


def result_row(
    key: RunKey, round_: int, hospital: str, tier: str, metric: str, value: float
) -> dict[str, Any]:
    """One tidy row of :data:`chainlearn_ray.results.schema.SCHEMA` for ``key``'s run/method."""
    return {
        "run_id": key.run_id, "dataset": key.dataset, "alpha": float(key.alpha),
        "seed": int(key.seed), "method": key.method, "round": int(round_),
        "hospital": hospital, "tier": tier, "metric": metric, "value": float(value),
    }


def setup_rows(
    key: RunKey,
    registrations: Iterable[Mapping[str, Any]],
    class_counts: np.ndarray,
    gas_register: Mapping[str, int],
) -> list[dict[str, Any]]:
    """Round-0 rows: shard sizes, class counts, PoC throughput, hardware tier, registration gas."""
    row = partial(result_row, key)
    rows: list[dict[str, Any]] = []
    for i, reg in enumerate(registrations):
        hid, tier = str(reg["hospital_id"]), str(reg["tier"])
        counts = class_counts[i]
        rows.append(row(0, hid, tier, "shard_size", int(counts.sum())))
        rows.extend(
            row(0, hid, tier, class_count_metric(c), int(n)) for c, n in enumerate(counts)
        )
        rows.append(row(0, hid, tier, "poc_throughput", reg["throughput"]))
        rows.append(row(0, hid, tier, "poc_slowdown", reg.get("slowdown", 1.0)))
        rows.append(row(0, hid, tier, "tier_matches_hardware",
                         float(reg["tier"] == reg["hardware_tier"])))
        if hid in gas_register:
            rows.append(row(0, hid, tier, "gas_registerHospital", gas_register[hid]))
    return rows


def round_rows(key: RunKey, outcome: RoundOutcome) -> list[dict[str, Any]]:
    """Tidy rows of one round: per-hospital metrics and weights, ensemble metrics, gas, times."""
    r = outcome.round
    row = partial(result_row, key)
    rows: list[dict[str, Any]] = []
    for h in outcome.hospitals:
        rows.append(row(r, h.hospital_id, h.tier, "attended", float(h.status == ATTENDED)))
        if h.status != ATTENDED:
            continue
        for metric in ("accuracy", "macro_f1", "confidence", "ece", "val_accuracy",
                       "simulated_seconds", "wall_seconds"):
            value = getattr(h, metric)
            if value is not None:
                rows.append(row(r, h.hospital_id, h.tier, metric, value))
        rows.append(row(r, h.hospital_id, h.tier, "weight", h.weight))
        if h.gas_submit is not None:
            rows.append(row(r, h.hospital_id, h.tier, "gas_submitUpdate", h.gas_submit))
    for metric, value in outcome.ensemble.items():
        rows.append(row(r, ENSEMBLE, "", metric, value))
    rows.append(row(r, ALL, "", "participants", outcome.participants))
    for op, gas in outcome.gas.items():
        rows.append(row(r, ALL, "", f"gas_{op}", gas))
    for metric in ("round_seconds", "chain_seconds", "train_seconds"):
        rows.append(row(r, ALL, "", metric, getattr(outcome, metric)))
    return rows


def format_round(outcome: RoundOutcome) -> str:
    """A compact progress block for one round."""
    ens = outcome.ensemble
    head = (
        f"round {outcome.round}: {outcome.participants} submitted, "
        f"{outcome.round_seconds:.2f}s wall (train {outcome.train_seconds:.2f}s, "
        f"chain {outcome.chain_seconds:.2f}s)"
    )
    if "accuracy" in ens:
        head += f", ensemble acc {ens['accuracy']:.3f} F1 {ens.get('macro_f1', 0.0):.3f}"
    lines = [head]
    for h in outcome.hospitals:
        if h.status == ATTENDED:
            lines.append(
                f"  {h.hospital_id} {h.tier:<6} acc {h.accuracy:.3f} conf {h.confidence:.3f} "
                f"ece {h.ece:.3f} weight {h.weight:>5} sim {h.simulated_seconds:.1f}s"
            )
        else:
            detail = f" ({h.error})" if h.error else ""
            lines.append(f"  {h.hospital_id} {h.tier:<6} {h.status}{detail}")
    return "\n".join(lines)


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table."""
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out.extend("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells[1:])
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)
