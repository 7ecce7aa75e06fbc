"""Tidy result rows of a federated run: the run key, setup rows and one round's rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import numpy as np

from chainlearn_ray.protocol.rounds import (
    ATTENDED,
    STATUS_ROWS,
    RoundOutcome,
)
from chainlearn_ray.results.schema import (
    ALL,
    DP_DELTA,
    DP_EPSILON,
    ENSEMBLE,
    class_count_metric,
)


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
    """Tidy rows of one round: per-hospital metrics and weights (and, for a hospital without a
    submission, a ``status_<why>`` row: dropout, late, crashed, timed_out or rejected; and
    ``status_restarted`` for one whose process died and that ran again within the round),
    ensemble metrics, gas, times."""
    r = outcome.round
    row = partial(result_row, key)
    rows: list[dict[str, Any]] = []
    for h in outcome.hospitals:
        rows.append(row(r, h.hospital_id, h.tier, "attended", float(h.status == ATTENDED)))
        if h.dp_epsilon is not None:
            rows.append(row(r, h.hospital_id, h.tier, DP_EPSILON, h.dp_epsilon))
            rows.append(row(r, h.hospital_id, h.tier, DP_DELTA, h.dp_delta or 0.0))
        if h.status != ATTENDED:  # why not: status_dropout, status_crashed, ... (value 1)
            why = STATUS_ROWS.get(h.status, h.status)
            rows.append(row(r, h.hospital_id, h.tier, f"status_{why}", 1.0))
            continue
        for metric in ("accuracy", "macro_f1", "confidence", "ece", "val_accuracy",
                       "simulated_seconds", "wall_seconds"):
            value = getattr(h, metric)
            if value is not None:
                rows.append(row(r, h.hospital_id, h.tier, metric, value))
        rows.append(row(r, h.hospital_id, h.tier, "weight", h.weight))
        if h.gas_submit is not None:
            rows.append(row(r, h.hospital_id, h.tier, "gas_submitUpdate", h.gas_submit))
    tiers = {h.hospital_id: h.tier for h in outcome.hospitals}
    for hid in outcome.restarted:  # its process died; it ran its step again within the round
        rows.append(row(r, hid, tiers.get(hid, ""), "status_restarted", 1.0))
    for metric, value in outcome.ensemble.items():
        rows.append(row(r, ENSEMBLE, "", metric, value))
    rows.append(row(r, ALL, "", "participants", outcome.participants))
    for op, gas in outcome.gas.items():
        rows.append(row(r, ALL, "", f"gas_{op}", gas))
    for metric in ("round_seconds", "chain_seconds", "train_seconds"):
        rows.append(row(r, ALL, "", metric, getattr(outcome, metric)))
    return rows


#: Prefix of the priced gas rows: ``cost_usd_<operation>``.
COST_PREFIX: Final = "cost_usd_"


def cost_rows(rows: list[dict[str, Any]], gas_price_gwei: float,
              eth_price_usd: float) -> list[dict[str, Any]]:
    """A ``cost_usd_<operation>`` row for every ``gas_<operation>`` row of ``rows``.

    ``usd = gas * gwei * 1e-9 * eth_usd``; the other columns are the gas row's.
    """
    factor = gas_price_gwei * 1e-9 * eth_price_usd
    return [
        {**row, "metric": COST_PREFIX + row["metric"][len("gas_"):],
         "value": float(row["value"]) * factor}
        for row in rows if str(row["metric"]).startswith("gas_")
    ]
