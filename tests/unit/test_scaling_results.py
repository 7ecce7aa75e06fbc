"""Scaling results: round cost from a hand-made round, Parquet round trip, table and figure."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from chainlearn_ray.errors import DataError
from chainlearn_ray.protocol.rounds import ABSENT, ATTENDED, HospitalRound, RoundOutcome
from chainlearn_ray.results.scaling_report import (
    ROUND_METRICS,
    RUN_METRICS,
    chain_seconds_per_submission,
    format_scaling_table,
    read_scaling,
    round_cost,
    save_scaling_figure,
    scaling_frame,
    scaling_rows,
    scaling_table,
    write_scaling,
)


def _round(r: int = 1) -> RoundOutcome:
    hospitals = [
        HospitalRound("h00", "weak", ATTENDED, wall_seconds=2.0, gas_submit=70_000),
        HospitalRound("h01", "weak", ATTENDED, wall_seconds=1.0, gas_submit=72_000),
        HospitalRound("h02", "strong", ATTENDED, wall_seconds=2.5, gas_submit=71_000),
        HospitalRound("h03", "strong", ABSENT),
    ]
    return RoundOutcome(round=r, hospitals=hospitals, participants=3,
                        gas={"startNewRound": 28_000, "recordEnsemblePrediction": 56_000},
                        round_seconds=4.0, chain_seconds=0.3, train_seconds=3.4)


def test_round_cost_uses_the_slowest_actor_as_critical_path() -> None:
    packed = round_cost(_round(), [["h00", "h01"], ["h02", "h03"]])
    assert packed["train_critical_path_s"] == 3.0  # h00 then h01 in one process
    assert packed["train_compute_sum_s"] == 5.5 and packed["train_compute_max_s"] == 2.5
    assert packed["overhead_s"] == pytest.approx(4.0 - 3.0 - 0.3)
    assert packed["overhead_share"] == pytest.approx(1 - 3.0 / 4.0)
    assert packed["gas_per_submission"] == 71_000
    assert packed["gas_round"] == 28_000 + 56_000 + 213_000
    assert packed["chain_ms_per_submission"] == pytest.approx(100.0)
    assert set(packed) == set(ROUND_METRICS)
    # chain work done while others still trained is off the critical path
    outcome = _round()
    outcome.chain_overlap_seconds, outcome.chain_cpu_seconds = 0.1, 0.15
    overlapped = round_cost(outcome, [["h00", "h01"], ["h02", "h03"]])
    assert overlapped["chain_s"] == 0.3 and overlapped["chain_on_path_s"] == pytest.approx(0.2)
    assert overlapped["overhead_s"] == pytest.approx(4.0 - 3.0 - 0.2)
    assert overlapped["chain_ms_per_submission"] == pytest.approx(100.0)
    assert overlapped["chain_cpu_ms_per_submission"] == pytest.approx(50.0)
    alone = round_cost(_round())  # no groups known: every hospital its own process
    assert alone["train_critical_path_s"] == 2.5


def test_round_cost_of_an_empty_round_is_defined() -> None:
    empty = RoundOutcome(round=1, hospitals=[HospitalRound("h00", "weak", ABSENT)],
                         participants=0, round_seconds=0.5, chain_seconds=0.1)
    cost = round_cost(empty)
    assert cost["train_critical_path_s"] == 0.0 and cost["overhead_s"] == pytest.approx(0.4)
    assert math.isnan(cost["gas_per_submission"]) and math.isnan(cost["chain_ms_per_submission"])


def _frame() -> pd.DataFrame:
    rows = []
    for n, scale in ((3, 1.0), (6, 1.5), (12, 2.5)):
        outcomes = []
        for r in (1, 2):
            o = _round(r)
            o.round_seconds *= scale
            outcomes.append(o)
        rows += scaling_rows(n, outcomes, [["h00", "h01"], ["h02"]], peak_memory=n * 2**28,
                             peak_tree_memory=n * 2**29,
                             timings={"data_seconds": 1.0, "actors_seconds": 2.0,
                                      "registration_seconds": 3.0, "total_seconds": 9.0},
                             registrations=[{"gas_register": 104_000}, {"gas_register": 106_000}])
    return scaling_frame(rows)


def test_rows_take_the_critical_path_of_the_whole_rounds_phase() -> None:
    # rounds overlap: the packed actor's 3 s per round run back to back while h02's second
    # round had already started in the first, so round 2 looks shorter than its own training
    first, second = _round(1), _round(2)
    second.round_seconds = 2.0
    rows = scaling_rows(3, [first, second], [["h00", "h01"], ["h02"]], peak_memory=0.0,
                        timings={})
    per_round = {(r["round"], r["metric"]): r["value"] for r in rows if r["round"] > 0}
    assert per_round[(1, "train_critical_path_s")] == per_round[(2, "train_critical_path_s")] == 3.0
    # the share is the phase's (6 s of training in 4 + 2 s): the same in every round
    assert per_round[(1, "overhead_share")] == per_round[(2, "overhead_share")] == 0.0
    assert per_round[(2, "overhead_s")] == pytest.approx(2.0 - 3.0 - 0.3)
    # one round alone gives what round_cost gives
    rows = scaling_rows(3, [first], [["h00", "h01"], ["h02"]], peak_memory=0.0, timings={})
    alone = {r["metric"]: r["value"] for r in rows if r["round"] == 1}
    assert alone == pytest.approx(round_cost(first, [["h00", "h01"], ["h02"]]))


def test_rows_round_trip_through_parquet(tmp_path: Path) -> None:
    frame = _frame()
    assert set(frame[frame["round"] == 0].metric) == set(RUN_METRICS)
    path = write_scaling(frame, tmp_path / "out" / "scaling.parquet")
    schema = pq.read_schema(path)
    assert schema.names == ["n_hospitals", "round", "metric", "value"]
    back = read_scaling(tmp_path / "out")
    pd.testing.assert_frame_equal(back, frame)
    with pytest.raises(DataError, match="chainlearn scale"):
        read_scaling(tmp_path / "missing")
    with pytest.raises(DataError, match="lacks columns"):
        write_scaling(frame.drop(columns=["round"]), tmp_path / "bad.parquet")
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(DataError, match="not a scaling result"):
        read_scaling(tmp_path / "other.parquet")


def test_table_averages_rounds_and_keeps_run_metrics() -> None:
    table = scaling_table(_frame())
    assert list(table.index) == [3, 6, 12]
    assert table.loc[6, "round_wall_s"] == pytest.approx(6.0)
    assert table.loc[12, "peak_memory_gib"] == pytest.approx(3.0)
    assert table.loc[3, "setup_s"] == 6.0 and (table.rounds == 2).all()
    assert (table.gas_per_submission == 71_000).all()
    text = format_scaling_table(table)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["N", "actors", "round"]
    assert [line.split()[0] for line in lines[2:]] == ["3", "6", "12"]
    assert "71,000" in lines[2] and "100.0" in lines[2]


@pytest.mark.slow
def test_figure_is_written_as_pdf_and_png(tmp_path: Path) -> None:
    paths = save_scaling_figure(_frame(), tmp_path)
    assert sorted(p.name for p in paths) == ["scaling.pdf", "scaling.png"]
    assert paths[0].read_bytes().startswith(b"%PDF")
    assert paths[1].read_bytes().startswith(b"\x89PNG")
    with pytest.raises(DataError):
        save_scaling_figure(scaling_frame([]), tmp_path)


def test_chain_slope_separates_fixed_from_per_submission_time() -> None:
    rows = []
    for n in (3, 6, 12):
        o = _round()
        o.participants, o.chain_seconds = n, 0.2 + 0.04 * n  # 200 ms fixed + 40 ms each
        rows += scaling_rows(n, [o], [], peak_memory=0, timings={})
    frame = scaling_frame(rows)
    assert chain_seconds_per_submission(frame) == pytest.approx(0.04)
    assert chain_seconds_per_submission(frame[frame.n_hospitals == 3]) is None
