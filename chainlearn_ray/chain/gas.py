"""Gas measurement of the FLCoordinator contract on a live chain (seed mode; trust mode in
:mod:`chainlearn_ray.chain.trust_gas`); table, JSON and Parquet forms."""

from __future__ import annotations

import hashlib
import logging
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chainlearn_ray.chain.backends import ChainConnection
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.chain.records import TxResult
from chainlearn_ray.chain.statements import sign_poc
from chainlearn_ray.chain.tx import encode_submit_update, sign_transaction
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.protocol.poc import benchmark_hash
from chainlearn_ray.protocol.tiers import Tier

logger = logging.getLogger(__name__)

#: Gas of the reference contract (Solidity 0.8.24, optimizer 200 runs, first-time writes).
REFERENCE_GAS: Final = {
    "registerHospital": 174_764,
    "startNewRound": 48_942,
    "submitUpdate": 252_464,
    "recordEnsemblePrediction": 94_931,
}
#: Reference gas of one 3-hospital round.
REFERENCE_ROUND_GAS: Final = 901_265
#: Targets of one steady 3-hospital round, by mode.
ROUND_TARGET: Final = {"seed": 300_000, "trust": 600_000}
ROUND_OPERATIONS: Final = ("startNewRound", "submitUpdate", "recordEnsemblePrediction")
OPERATIONS: Final = ("deploy", "registerHospital", *ROUND_OPERATIONS)
#: Tiers given to measured hospitals, in turn.
TIER_CYCLE: Final = (Tier.STRONG, Tier.MEDIUM, Tier.WEAK)
#: Simulated PoC throughput (samples/s) per tier, only used to form benchmark hashes.
_THROUGHPUT: Final = {Tier.WEAK: 60.0, Tier.MEDIUM: 200.0, Tier.STRONG: 450.0}
_FUNDING_WEI: Final = 10**18


def usd(gas: float, gwei: float, eth_usd: float) -> float:
    """Price of ``gas`` at ``gwei`` per gas and ``eth_usd`` dollars per ETH."""
    return float(gas) * gwei * 1e-9 * eth_usd


@dataclass(frozen=True)
class GasRow:
    """Gas of one operation: first time, steady state (mean and max of the last round)."""

    operation: str
    gas_first: int
    gas_steady: int
    gas_steady_max: int
    usd_first: float
    usd_steady: float
    reference_gas: int | None


@dataclass(frozen=True)
class GasReport:
    """Everything ``chainlearn gas`` prints or writes."""

    rows: tuple[GasRow, ...]
    round_total_first: int
    round_total_steady: int
    hospitals: int
    rounds: int
    backend: str
    chain_id: int
    gwei: float
    eth_usd: float
    coordinator_ms_per_submission: float
    receipts: tuple[TxResult, ...] = field(repr=False, default=())
    mode: str = "seed"

    def to_json(self) -> dict[str, Any]:
        """The report as one JSON-serialisable object."""
        return {
            "mode": self.mode,
            "round_total_target": ROUND_TARGET[self.mode],
            "operations": [asdict(row) for row in self.rows],
            "round_total_first": self.round_total_first,
            "round_total_steady": self.round_total_steady,
            "round_total_reference": REFERENCE_ROUND_GAS,
            "usd_round_steady": usd(self.round_total_steady, self.gwei, self.eth_usd),
            "hospitals": self.hospitals,
            "rounds": self.rounds,
            "backend": self.backend,
            "chain_id": self.chain_id,
            "gwei": self.gwei,
            "eth_usd": self.eth_usd,
            "coordinator_ms_per_submission": round(self.coordinator_ms_per_submission, 3),
        }


def measurement_hospitals(count: int, seed: int = 0) -> list[tuple[LocalAccount, Tier]]:
    """Deterministic hospital accounts with tiers Strong, Medium, Weak, Strong, ..."""
    accounts = []
    for i in range(count):
        key = hashlib.sha256(f"chainlearn-gas-{seed}-{i}".encode()).digest()
        accounts.append((Account.from_key(key), TIER_CYCLE[i % len(TIER_CYCLE)]))
    return accounts


def measure_gas(
    conn: ChainConnection,
    hospitals: int = 3,
    rounds: int = 3,
    gwei: float = 20.0,
    eth_usd: float = 2000.0,
    seed: int = 0,
) -> GasReport:
    """Deploy, register ``hospitals`` (each signs its own PoC) and run ``rounds`` full rounds.

    Steady state is the last round (mean and max over its submissions); first time is the
    first registration and round 1.

    Returns
    -------
    GasReport
        Per-operation gas, round totals and the coordinator's median time per submission.
    """
    if hospitals < 1 or rounds < 1:
        raise ConfigError("gas measurement needs at least 1 hospital and 1 round")
    client = FLCoordinatorClient.deploy(conn)
    members = measurement_hospitals(hospitals, seed)
    conn.fund_many([account.address for account, _ in members], _FUNDING_WEI)
    for i, (account, tier) in enumerate(members):
        bench = benchmark_hash(_THROUGHPUT[tier], 50, 16, tier)
        name = f"hospital-{i:03d}"
        signature = sign_poc(account.key, tier, bench, client.chain_id, client.address, name=name)
        client.register_hospital(account.address, name, tier, bench, signature)
    per_round: list[dict[str, list[int]]] = []
    coordinator_s: list[float] = []
    for rnd in range(1, rounds + 1):
        gas: dict[str, list[int]] = {op: [] for op in ROUND_OPERATIONS}
        gas["startNewRound"].append(client.start_round().gas_used)
        for i, (account, tier) in enumerate(members):
            model_hash = hashlib.sha256(f"model-{seed}-{rnd}-{i}".encode()).digest()
            confidence, ece = 8000 + (137 * (i + rnd)) % 1900, 300 + (71 * (i + rnd)) % 1500
            started = time.perf_counter()
            tx = client.prepare_submit_update(
                account.address, model_hash, confidence, ece, tier.model_type
            )
            prepared = time.perf_counter()
            expected = encode_submit_update(model_hash, confidence, ece, tier.model_type)
            raw = sign_transaction(tx, account.key, expected_data=expected)
            relayed = time.perf_counter()
            gas["submitUpdate"].append(client.send_raw(raw).gas_used)
            coordinator_s.append((prepared - started) + (time.perf_counter() - relayed))
        gas["recordEnsemblePrediction"].append(
            client.record_ensemble(hashlib.sha256(f"ensemble-{rnd}".encode()).digest(), hospitals)
            .gas_used
        )  # fmt: skip
        per_round.append(gas)
    registrations = [r.gas_used for r in client.receipts if r.operation == "registerHospital"]
    deploy = next(r.gas_used for r in client.receipts if r.operation == "deploy")
    first, last = per_round[0], per_round[-1]
    rows = [
        _row("deploy", [deploy], [deploy], gwei, eth_usd),
        _row("registerHospital", registrations[:1], registrations[-1:], gwei, eth_usd),
    ]
    rows += [_row(op, first[op], last[op], gwei, eth_usd) for op in ROUND_OPERATIONS]
    return gas_report(rows, first, last, hospitals, rounds, conn, gwei, eth_usd,
                      coordinator_s, client)


def gas_report(
    rows: Sequence[GasRow], first: Mapping[str, list[int]], last: Mapping[str, list[int]],
    hospitals: int, rounds: int, conn: ChainConnection, gwei: float, eth_usd: float,
    coordinator_s: list[float], client: FLCoordinatorClient, mode: str = "seed",
) -> GasReport:
    """The :class:`GasReport` of a measurement: rows, the first and the last (steady) round's
    gas per operation, and the run's facts."""
    return GasReport(
        rows=tuple(rows),
        round_total_first=sum(sum(v) for v in first.values()),
        round_total_steady=sum(sum(v) for v in last.values()),
        hospitals=hospitals,
        rounds=rounds,
        backend=conn.backend,
        chain_id=conn.chain_id,
        gwei=gwei,
        eth_usd=eth_usd,
        coordinator_ms_per_submission=1e3 * statistics.median(coordinator_s),
        receipts=tuple(client.receipts),
        mode=mode,
    )


def _row(
    operation: str,
    first: Sequence[int],
    steady: Sequence[int],
    gwei: float,
    eth_usd: float,
    mode: str = "seed",
) -> GasRow:
    gas_first = round(statistics.fmean(first))
    gas_steady = round(statistics.fmean(steady))
    return GasRow(
        operation=operation,
        gas_first=gas_first,
        gas_steady=gas_steady,
        gas_steady_max=max(steady),
        usd_first=usd(gas_first, gwei, eth_usd),
        usd_steady=usd(gas_steady, gwei, eth_usd),
        reference_gas=REFERENCE_GAS.get(operation) if mode == "seed" else None,
    )


def render_table(report: GasReport) -> str:
    """A fixed-width text table of the report, with the reference figures alongside."""
    header = (
        f"{'operation':<26}{'gas first':>12}{'gas steady':>12}{'steady max':>12}"
        f"{'USD steady':>12}{'reference':>12}"
    )
    mode = "" if report.mode == "seed" else f" ({report.mode} mode)"
    lines = [
        f"FLCoordinator gas{mode} on {report.backend} (chain id {report.chain_id}), "
        f"{report.hospitals} hospitals, {report.rounds} rounds, "
        f"{report.gwei:g} gwei, {report.eth_usd:g} USD/ETH",
        header,
        "-" * len(header),
    ]
    for row in report.rows:
        ref = f"{row.reference_gas:,}" if row.reference_gas else "-"
        lines.append(
            f"{row.operation:<26}{row.gas_first:>12,}{row.gas_steady:>12,}"
            f"{row.gas_steady_max:>12,}{row.usd_steady:>12.4f}{ref:>12}"
        )
    total_usd = usd(report.round_total_steady, report.gwei, report.eth_usd)
    ref_round = f"{REFERENCE_ROUND_GAS:,}" if report.hospitals == 3 else "-"
    if report.mode != "seed":
        ref_round = "-"
    lines.append("-" * len(header))
    lines.append(
        f"{'one round (all ops)':<26}{report.round_total_first:>12,}"
        f"{report.round_total_steady:>12,}{'':>12}{total_usd:>12.4f}{ref_round:>12}"
    )
    if report.mode == "seed":
        lines.append(
            "reference: Solidity 0.8.24 contract with unpacked storage, first-time writes "
            "(3-hospital round)."
        )
    else:
        lines.append(
            f"one {report.mode}-mode round: startNewRound, commitUpdate, startRevealPhase, "
            "revealUpdate and reportAudit for every hospital, recordEnsemblePrediction; target "
            f"{ROUND_TARGET[report.mode]:,} for 3 hospitals (steady)."
        )
    lines.append(
        f"coordinator time per submission (prepare + relay, median): "
        f"{report.coordinator_ms_per_submission:.1f} ms"
    )
    return "\n".join(lines)


def write_parquet(report: GasReport, path: Path) -> None:
    """Write the per-operation rows (plus a ``round`` row) to a Parquet file."""
    import pandas as pd

    rows = [asdict(row) for row in report.rows]
    rows.append(
        {
            "operation": "round",
            "gas_first": report.round_total_first,
            "gas_steady": report.round_total_steady,
            "gas_steady_max": report.round_total_steady,
            "usd_first": usd(report.round_total_first, report.gwei, report.eth_usd),
            "usd_steady": usd(report.round_total_steady, report.gwei, report.eth_usd),
            "reference_gas": (
                REFERENCE_ROUND_GAS if report.hospitals == 3 and report.mode == "seed" else None
            ),
        }
    )
    frame = pd.DataFrame(rows)
    frame["reference_gas"] = frame["reference_gas"].astype("Int64")
    for key in ("mode", "hospitals", "rounds", "backend", "chain_id", "gwei", "eth_usd"):
        frame[key] = getattr(report, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
