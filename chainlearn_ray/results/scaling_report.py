"""Scaling-study results: tidy rows per round, the Parquet file, a table and a figure against N."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator, ScalarFormatter

from chainlearn_ray.errors import DataError
from chainlearn_ray.protocol.rounds import ATTENDED, RoundOutcome
from chainlearn_ray.results.atomic import write_atomic

logger = logging.getLogger(__name__)

#: Columns of ``scaling.parquet``: one value per (number of hospitals, round, metric).
SCALING_SCHEMA: Final = pa.schema([
    pa.field("n_hospitals", pa.int64(), nullable=False),
    pa.field("round", pa.int64(), nullable=False),
    pa.field("metric", pa.string(), nullable=False),
    pa.field("value", pa.float64(), nullable=True),
])
COLUMNS: Final = tuple(SCALING_SCHEMA.names)

#: Per-round metrics (round >= 1) -> what they are.
ROUND_METRICS: Final = {
    "round_wall_s": "round wall time: start on chain to ensemble recorded (s)",
    "train_phase_s": "training phase wall time as the coordinator waits for it (s)",
    "train_critical_path_s": "training critical path: slowest actor's summed hospital time (s; "
                             "in scaling_rows over all rounds, per round, as rounds overlap)",
    "train_compute_sum_s": "training compute: sum of hospitals' training wall time (s)",
    "train_compute_max_s": "slowest hospital's training wall time (s)",
    "chain_s": "coordinator chain time: start, submissions, weights, ensemble record (s)",
    "chain_on_path_s": "chain time on the critical path: chain_s less what was done while "
                       "hospitals were still training (s)",
    "overhead_s": "Ray scheduling/serialisation and bookkeeping: wall - critical path - chain "
                  "on the path (s)",
    "overhead_share": "everything but training: 1 - critical path / round wall (in "
                      "scaling_rows of the whole rounds phase, the same in every round)",
    "participants": "on-chain submissions",
    "gas_per_submission": "gas of one submitUpdate (mean over the round)",
    "gas_round": "gas of the whole round (start + submissions + ensemble record)",
    "chain_ms_per_submission": "coordinator chain time per submission (ms)",
    "chain_cpu_ms_per_submission": "coordinator CPU time of chain work per submission (ms)",
}
#: Run-level metrics (round 0) -> what they are.
RUN_METRICS: Final = {
    "peak_memory_gib": "peak system memory above the level before the run (GiB)",
    "peak_tree_memory_gib": "peak proportional memory of the driver's process tree (GiB)",
    "actors": "hospital actor processes",
    "setup_s": "data, actors, PoC and registration before round 1 (s)",
    "total_s": "whole run (s)",
    "gas_per_registration": "gas of one registerHospital (mean)",
}
#: Columns of the printed table: metric -> (header, format).
TABLE: Final = {
    "actors": ("actors", "{:.0f}"),
    "round_wall_s": ("round s", "{:.2f}"),
    "train_critical_path_s": ("train crit s", "{:.2f}"),
    "train_compute_sum_s": ("train sum s", "{:.2f}"),
    "chain_s": ("chain s", "{:.3f}"),
    "overhead_s": ("overhead s", "{:.2f}"),
    "overhead_share": ("non-train %", "{:.1%}"),
    "gas_per_submission": ("gas/submit", "{:,.0f}"),
    "chain_ms_per_submission": ("chain ms/submit", "{:.1f}"),
    "chain_cpu_ms_per_submission": ("chain CPU ms/submit", "{:.1f}"),
    "peak_memory_gib": ("peak GiB", "{:.2f}"),
    "peak_tree_memory_gib": ("tree GiB", "{:.2f}"),
}


def _row(n: int, round_: int, metric: str, value: float | None) -> dict[str, Any]:
    return {"n_hospitals": int(n), "round": int(round_), "metric": metric,
            "value": None if value is None else float(value)}


def round_cost(outcome: RoundOutcome, groups: Sequence[Sequence[str]] = ()) -> dict[str, float]:
    """The cost metrics of one round (:data:`ROUND_METRICS`).

    Parameters
    ----------
    outcome:
        The round as the coordinator returned it.
    groups:
        Hospital ids per actor process: hospitals of one actor train one after another, so the
        critical path is the largest per-actor sum. Hospitals in no group count alone.
    """
    done = _trained_seconds(outcome)
    critical = _critical_path(done, groups)
    wall, chain = float(outcome.round_seconds), float(outcome.chain_seconds)
    overlap = float(outcome.chain_overlap_seconds)
    gas_submit = [int(h.gas_submit) for h in outcome.hospitals
                  if h.status == ATTENDED and h.gas_submit is not None]
    n_sub = int(outcome.participants)
    return {
        "round_wall_s": wall,
        "train_phase_s": float(outcome.train_seconds),
        "train_critical_path_s": critical,
        "train_compute_sum_s": sum(done.values()),
        "train_compute_max_s": max(done.values(), default=0.0),
        "chain_s": chain,
        "chain_on_path_s": chain - overlap,
        "overhead_s": wall - critical - (chain - overlap),
        "overhead_share": 1.0 - critical / wall if wall > 0 else float("nan"),
        "participants": float(n_sub),
        "gas_per_submission": float(np.mean(gas_submit)) if gas_submit else float("nan"),
        "gas_round": float(sum(outcome.gas.values()) + sum(gas_submit)),
        "chain_ms_per_submission": 1000.0 * chain / n_sub if n_sub else float("nan"),
        "chain_cpu_ms_per_submission": (1000.0 * float(outcome.chain_cpu_seconds) / n_sub
                                        if n_sub else float("nan")),
    }


def _trained_seconds(outcome: RoundOutcome) -> dict[str, float]:
    """Hospital -> its training wall time in a round, for hospitals that submitted."""
    return {h.hospital_id: float(h.wall_seconds or 0.0) for h in outcome.hospitals
            if h.status == ATTENDED}


def _critical_path(done: Mapping[str, float], groups: Sequence[Sequence[str]]) -> float:
    """The largest per-actor sum of ``done`` (hospitals in no group count alone)."""
    grouped = {h for g in groups for h in g}
    paths = [sum(done.get(h, 0.0) for h in g) for g in groups]
    paths += [s for h, s in done.items() if h not in grouped]
    return max(paths, default=0.0)


def _with_overlapping_rounds(costs: list[dict[str, float]], outcomes: Sequence[RoundOutcome],
                             groups: Sequence[Sequence[str]]) -> list[dict[str, float]]:
    """Round costs with the critical path of the whole rounds phase, spread evenly.

    An actor starts its next round as soon as it is through the current one, so one round's
    wall time need not contain its own training and a per-round critical path can exceed it.
    Every round's training does lie within the rounds phase, whose critical path is the
    slowest actor's training over all rounds.
    """
    if not costs:
        return costs
    totals: dict[str, float] = {}
    for outcome in outcomes:
        for h, seconds in _trained_seconds(outcome).items():
            totals[h] = totals.get(h, 0.0) + seconds
    phase_critical = _critical_path(totals, groups)
    phase_wall = sum(cost["round_wall_s"] for cost in costs)
    share = 1.0 - phase_critical / phase_wall if phase_wall > 0 else float("nan")
    for cost in costs:
        cost["train_critical_path_s"] = phase_critical / len(costs)
        cost["overhead_s"] = (cost["round_wall_s"] - cost["train_critical_path_s"]
                              - cost["chain_on_path_s"])
        cost["overhead_share"] = share  # of the phase: a round's own share is undefined
    return costs


def scaling_rows(n: int, outcomes: Iterable[RoundOutcome], groups: Sequence[Sequence[str]],
                 *, peak_memory: float, timings: Mapping[str, float],
                 peak_tree_memory: float | None = None,
                 registrations: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """Tidy rows of one run with ``n`` hospitals: round 0 for the run, then one block per round.

    Parameters
    ----------
    peak_memory, peak_tree_memory:
        Peak memory of the run in bytes, machine-wide and of the driver's process tree (see
        ``MemorySampler``).
    timings:
        ``RunSummary.timings`` of the run.
    registrations:
        ``RunSummary.registrations`` (their ``gas_register``).
    """
    reg_gas = [int(r["gas_register"]) for r in registrations if "gas_register" in r]
    setup = sum(float(timings.get(k, 0.0)) for k in
                ("data_seconds", "actors_seconds", "registration_seconds"))
    rows = [
        _row(n, 0, "peak_memory_gib", peak_memory / 2**30),
        _row(n, 0, "peak_tree_memory_gib",
             None if peak_tree_memory is None else peak_tree_memory / 2**30),
        _row(n, 0, "actors", len(groups) if groups else None),
        _row(n, 0, "setup_s", setup),
        _row(n, 0, "total_s", timings.get("total_seconds")),
        _row(n, 0, "gas_per_registration", float(np.mean(reg_gas)) if reg_gas else None),
    ]
    outcomes = list(outcomes)
    costs = _with_overlapping_rounds([round_cost(o, groups) for o in outcomes], outcomes, groups)
    for outcome, cost in zip(outcomes, costs, strict=True):
        rows.extend(_row(n, outcome.round, m, v) for m, v in cost.items())
    return rows


def scaling_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A frame with the scaling columns and dtypes from tidy rows."""
    frame = pd.DataFrame(list(rows), columns=list(COLUMNS))
    return frame.astype({"n_hospitals": "int64", "round": "int64", "metric": "string",
                         "value": "float64"})


def write_scaling(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a scaling frame as Parquet with :data:`SCALING_SCHEMA`, atomically."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"scaling frame lacks columns {missing}; build it with scaling_frame()")
    table = pa.Table.from_pandas(scaling_frame(frame[list(COLUMNS)].to_dict("records")),
                                 schema=SCALING_SCHEMA, preserve_index=False)
    return write_atomic(Path(path), lambda handle: pq.write_table(table, handle))


def read_scaling(path: str | Path) -> pd.DataFrame:
    """Read ``scaling.parquet`` (or the folder holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / "scaling.parquet"
    if not p.is_file():
        raise DataError(f"{p} does not exist: run `chainlearn scale --out {p.parent}` first")
    frame = pd.read_parquet(p)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{p} is not a scaling result (missing columns {missing})")
    return scaling_frame(frame.to_dict("records"))


def scaling_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per number of hospitals: run metrics, and round metrics averaged over rounds."""
    runs = frame[frame["round"] == 0]
    rounds = frame[frame["round"] > 0]
    parts = [
        runs.pivot_table(index="n_hospitals", columns="metric", values="value", aggfunc="mean"),
        rounds.pivot_table(index="n_hospitals", columns="metric", values="value", aggfunc="mean"),
    ]
    table = pd.concat([p for p in parts if not p.empty], axis=1)
    table.columns = [str(c) for c in table.columns]
    counted = rounds.groupby("n_hospitals")["round"].nunique().rename("rounds")
    return table.join(counted).sort_index()


def chain_seconds_per_submission(frame: pd.DataFrame) -> float | None:
    """Marginal coordinator chain time of one more submission: the least-squares slope of a
    round's chain time against its submissions over every round of every N (None: too few).

    ``chain_ms_per_submission`` also spreads the fixed per-round transactions (start, ensemble
    record) over the submissions; the slope is what each extra hospital adds.
    """
    wide = frame[frame["round"] > 0].pivot_table(
        index=["n_hospitals", "round"], columns="metric", values="value")
    if not {"chain_s", "participants"} <= set(wide.columns):
        return None
    pts = wide[["participants", "chain_s"]].dropna()
    if pts.participants.nunique() < 2:
        return None
    slope = np.polyfit(pts.participants.to_numpy(float), pts.chain_s.to_numpy(float), 1)[0]
    return float(slope)


def format_scaling_table(table: pd.DataFrame) -> str:
    """The table as aligned text (round metrics are means over the rounds)."""
    cols = [m for m in TABLE if m in table.columns]
    header = ["N", *(TABLE[m][0] for m in cols)]
    body = [[str(int(n)), *(_cell(TABLE[m][1], row[m]) for m in cols)]
            for n, row in table.iterrows()]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(fmt: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return fmt.format(value)


#: Panels of the figure: title, y label, metrics (label of each line), log-y.
PANELS: Final = (
    ("Time per round", "seconds", {"round_wall_s": "round wall",
                                   "train_critical_path_s": "training critical path",
                                   "train_compute_sum_s": "training compute (sum)",
                                   "chain_s": "chain", "overhead_s": "Ray + bookkeeping"}, True),
    ("Share of round wall not training", "share", {"overhead_share": "non-training"}, False),
    ("Gas per submission", "gas", {"gas_per_submission": "submitUpdate"}, False),
    ("Coordinator chain time per submission", "ms", {"chain_ms_per_submission": "chain"}, False),
    ("Peak memory of the run", "GiB", {"peak_memory_gib": "machine, above baseline",
                                       "peak_tree_memory_gib": "driver's process tree (PSS)"},
     False),
    ("Setup before round 1", "seconds", {"setup_s": "data, actors, PoC, registration"}, False),
)


def scaling_figure(frame: pd.DataFrame) -> Figure:
    """Each cost against the number of hospitals (log x): mean over rounds, bars min to max."""
    if frame.empty:
        raise DataError("the scaling frame is empty: nothing to draw")
    sizes = sorted(int(n) for n in frame["n_hospitals"].unique())
    slope = chain_seconds_per_submission(frame)
    fig = Figure(figsize=(12, 7.2), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    for ax, (title, ylabel, metrics, log_y) in zip(axes, PANELS, strict=True):
        for metric, label in metrics.items():
            sub = frame[frame.metric == metric].dropna(subset=["value"])
            if sub.empty:
                continue
            stats = sub.groupby("n_hospitals")["value"].agg(["mean", "min", "max"]).sort_index()
            x = stats.index.to_numpy(dtype=float)
            err = np.vstack([stats["mean"] - stats["min"], stats["max"] - stats["mean"]])
            ax.errorbar(x, stats["mean"], yerr=err, marker="o", ms=4, capsize=3, label=label)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
        values = frame[frame.metric.isin(list(metrics))]["value"].dropna()
        top = float(values.max()) if len(values) else 0.0
        if "chain_ms_per_submission" in metrics and slope is not None:
            ax.axhline(1000 * slope, ls="--", color="grey",
                       label=f"per extra submission ({1000 * slope:.1f} ms)")
            ax.legend(fontsize=7)
            top = max(top, 1000 * slope)
        if log_y and (values > 0).all():
            ax.set_yscale("log")
        elif not log_y:
            ax.set_ylim(0, 1.15 * top if top > 0 else 1.0)
            ax.yaxis.set_major_formatter(FuncFormatter(_tick))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("hospitals (N)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len(metrics) > 1:
            ax.legend(fontsize=7)
    fig.suptitle("Cost of a federated round against the number of hospitals "
                 "(mean over rounds; bars: min-max)", fontsize=11)
    return fig


def _tick(value: float, _pos: object = None) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


def save_scaling_figure(frame: pd.DataFrame, out_dir: str | Path,
                        stem: str = "scaling") -> list[Path]:
    """Draw :func:`scaling_figure` and write ``<stem>.pdf`` and ``<stem>.png`` in ``out_dir``."""
    from chainlearn_ray.results.figures import save_figure

    return save_figure(scaling_figure(frame), out_dir, stem)
