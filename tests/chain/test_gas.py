"""Gas targets of the contract, measured on the embedded chain, and the ``chainlearn gas`` verb."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from chainlearn_ray.chain.backends import ChainConnection
from chainlearn_ray.chain.gas import REFERENCE_GAS, GasReport, measure_gas, render_table, usd
from chainlearn_ray.chain.trust_gas import (
    TRUST_OPERATIONS,
    TRUST_ROUND_OPERATIONS,
    measure_trust_gas,
)
from chainlearn_ray.cli import main as cli_main


@pytest.fixture(scope="module")
def report(chain: ChainConnection) -> GasReport:
    return measure_gas(chain, hospitals=3, rounds=3)


def _row(report: GasReport, operation: str) -> dict[str, object]:
    (row,) = [r for r in report.to_json()["operations"] if r["operation"] == operation]
    return row


def test_round_target(report: GasReport) -> None:
    assert report.round_total_steady <= 300_000
    assert report.round_total_first <= 300_000


def test_operation_targets(report: GasReport) -> None:
    submit = _row(report, "submitUpdate")
    # every submission, not only the mean. Above the 80,000 of the seed-only contract: the
    # seed's UpdateSubmitted event carries confidence, ECE and model type (96 bytes more log
    # data, ~850 gas), and the trust mode's functions lengthen the selector dispatch, which
    # via-IR compiles as a linear chain (submitUpdate's selector sorts last but one, ~500 gas)
    assert submit["gas_steady_max"] <= 81_200
    assert _row(report, "registerHospital")["gas_steady"] <= 110_000
    assert _row(report, "registerHospital")["gas_first"] <= 110_000
    for operation, reference in REFERENCE_GAS.items():
        assert _row(report, operation)["gas_steady"] < reference


def test_report_is_consistent(report: GasReport) -> None:
    data = report.to_json()
    per_op = {r["operation"]: r for r in data["operations"]}
    steady = {
        op: [
            r.gas_used
            for r in report.receipts
            if r.operation == op and r.block_number >= _last_round_start(report)
        ]
        for op in ("startNewRound", "submitUpdate", "recordEnsemblePrediction")
    }
    assert data["round_total_steady"] == sum(sum(v) for v in steady.values())
    assert per_op["submitUpdate"]["gas_steady_max"] == max(steady["submitUpdate"])
    assert per_op["startNewRound"]["usd_steady"] == pytest.approx(
        usd(per_op["startNewRound"]["gas_steady"], 20, 2000)
    )
    assert (data["hospitals"], data["backend"]) == (3, "embedded")
    assert report.coordinator_ms_per_submission > 0
    text = render_table(report)
    assert "submitUpdate" in text and "252,464" in text and "901,265" in text


def _last_round_start(report: GasReport) -> int:
    starts = [r.block_number for r in report.receipts if r.operation == "startNewRound"]
    return starts[-1]


def test_gas_does_not_grow_with_hospitals(chain: ChainConnection) -> None:
    """The 50th hospital's registration and submission cost within 1 % of the 3rd's."""
    big = measure_gas(chain, hospitals=50, rounds=1)
    registrations = [r.gas_used for r in big.receipts if r.operation == "registerHospital"]
    submissions = [r.gas_used for r in big.receipts if r.operation == "submitUpdate"]
    assert len(registrations) == len(submissions) == 50
    assert abs(registrations[49] - registrations[2]) <= 0.01 * registrations[2]
    assert abs(submissions[49] - submissions[2]) <= 0.01 * submissions[2]
    # lanes are shared by three hospitals: whoever opens a lane slot pays for it, the others
    # do not; that pattern repeats without growth
    assert max(submissions[3:]) <= max(submissions[:3]) + 100
    round_ops = [
        r.gas_used
        for r in big.receipts
        if r.operation in ("startNewRound", "recordEnsemblePrediction")
    ]
    small_round = [
        row["gas_first"]
        for row in big.to_json()["operations"]
        if row["operation"] in ("startNewRound", "recordEnsemblePrediction")
    ]
    assert round_ops == small_round


def test_cli_json_and_parquet(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gas.parquet"
    code = cli_main(
        ["gas", "--hospitals", "2", "--rounds", "2", "--gwei", "10", "--json", "--out", str(out)]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert {"operations", "round_total_first", "round_total_steady", "hospitals", "backend"} <= set(
        data
    )
    assert data["hospitals"] == 2 and data["backend"] == "embedded"
    ops = {r["operation"]: r for r in data["operations"]}
    assert set(ops) == {
        "deploy",
        "registerHospital",
        "startNewRound",
        "submitUpdate",
        "recordEnsemblePrediction",
    }
    for row in ops.values():
        assert row["usd_steady"] == pytest.approx(row["gas_steady"] * 10e-9 * 2000)
    frame = pd.read_parquet(out)
    assert list(frame["operation"])[-1] == "round"
    assert (
        int(frame.loc[frame["operation"] == "round", "gas_steady"].iloc[0])
        == (data["round_total_steady"])
    )


def test_cli_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["gas", "--hospitals", "1", "--rounds", "1"]) == 0
    text = capsys.readouterr().out
    assert "recordEnsemblePrediction" in text and "USD steady" in text


def test_cli_rejects_bad_counts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["gas", "--hospitals", "0"])
    assert "at least 1" in capsys.readouterr().err


def test_command_exits_quickly_with_its_output_and_exit_code(tmp_path) -> None:
    # the installed command ends with os._exit after the exit handlers: its output must still
    # arrive whole through a pipe, and errors must keep their exit code
    run = [sys.executable, "-m", "chainlearn_ray"]
    ok = subprocess.run([*run, "gas", "--hospitals", "1", "--rounds", "1", "--json"],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["hospitals"] == 1
    bad = subprocess.run([*run, "run", "--dataset", "nope", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "nope.npz not found" in bad.stderr


# ---------------------------------------------------------------- trust mode
@pytest.fixture(scope="module")
def trust_report(chain: ChainConnection) -> GasReport:
    return measure_trust_gas(chain, hospitals=3, rounds=3)


def test_trust_round_target(trust_report: GasReport) -> None:
    """One steady 3-hospital trust round (commit, reveal and audit for every hospital) stays
    below 600,000 gas, under the reference contract's plain-protocol round."""
    assert trust_report.mode == "trust"
    assert trust_report.round_total_steady <= 600_000
    assert trust_report.round_total_first <= 600_000
    ops = {r["operation"] for r in trust_report.to_json()["operations"]}
    assert set(TRUST_OPERATIONS) == ops
    per_op = {r["operation"]: r for r in trust_report.to_json()["operations"]}
    assert all(per_op[op]["reference_gas"] is None for op in ops)
    round_ops = [r for r in trust_report.receipts if r.operation in TRUST_ROUND_OPERATIONS]
    assert len(round_ops) == 3 * (3 + 3 * 3)  # start, reveal phase, ensemble + 3 per hospital


def test_trust_gas_does_not_grow_with_hospitals(chain: ChainConnection,
                                                trust_report: GasReport) -> None:
    """The 50th hospital's commit, reveal and audit cost within 1 % of the 3rd's; the owner's
    round operations cost the same as with 3 hospitals."""
    big = measure_trust_gas(chain, hospitals=50, rounds=1)
    for op in ("commitUpdate", "revealUpdate", "reportAudit", "registerHospitalAttested",
               "depositStake", "withdraw"):
        gas = [r.gas_used for r in big.receipts if r.operation == op]
        assert len(gas) == 50, op
        assert abs(gas[49] - gas[2]) <= 0.01 * gas[2], (op, gas[2], gas[49])
    owner_ops = ("startNewRound", "startRevealPhase", "recordEnsemblePrediction")
    big_ops = {r.operation: r.gas_used for r in big.receipts if r.operation in owner_ops}
    small = {r["operation"]: r["gas_first"] for r in trust_report.to_json()["operations"]
             if r["operation"] in owner_ops}
    assert big_ops == small


def test_cli_trust_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["gas", "--mode", "trust", "--hospitals", "2", "--rounds", "1"]) == 0
    text = capsys.readouterr().out
    assert "trust mode" in text and "revealUpdate" in text and "reportAudit" in text
    assert "600,000" in text
