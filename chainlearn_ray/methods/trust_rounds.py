"""What trust mode adds to a round's bookkeeping: commits, reveals, audits, and each hospital's
stake, reward and slash once the round is settled, as tidy rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from chainlearn_ray.chain.trust import HospitalAccount, RoundSettlement
from chainlearn_ray.results.rows import RunKey, result_row

#: Per-round metrics of every hospital in trust mode (wei values exact below 2**53).
SETTLEMENT_METRICS: tuple[str, ...] = ("stake_wei", "reward_wei", "slashed_wei", "audit_failed")


class SettlementViews(Protocol):
    """The views :meth:`TrustLedger.settle` reads."""

    def settlement(self, round_: int, hospital: str) -> RoundSettlement: ...

    def account(self, hospital: str) -> HospitalAccount: ...


@dataclass
class TrustLedger:
    """Trust-mode state of the open round and the settlements of every round so far."""

    gas_commit: dict[str, int] = field(default_factory=dict)
    commitments: dict[str, bytes] = field(default_factory=dict)  # on chain, in relay order
    opened: dict[str, Any] = field(default_factory=dict)  # hospital -> the opening it reveals
    revealed: dict[str, bytes] = field(default_factory=dict)  # hospital -> revealed model hash
    audited: dict[str, tuple[int, int]] = field(default_factory=dict)
    gas_audit: dict[str, int] = field(default_factory=dict)
    settled: dict[int, dict[str, dict[str, int]]] = field(default_factory=dict)
    withdrawn: dict[str, int] = field(default_factory=dict)
    #: round -> wall seconds of its audit phase (hand-over, scoring, reports)
    audit_seconds: dict[int, float] = field(default_factory=dict)
    gas_fund: int = 0

    def open(self, round_: int) -> None:
        """A new round: nothing committed, revealed or audited yet."""
        self.gas_commit, self.revealed, self.audited, self.gas_audit = {}, {}, {}, {}
        self.commitments, self.opened = {}, {}

    def settle(self, round_: int, views: SettlementViews, addresses: Mapping[str, str]) -> None:
        """Read every hospital's settlement of the (closed) round: its stake after the round,
        the reward it earned and the stake it lost."""
        out: dict[str, dict[str, int]] = {}
        for h, address in addresses.items():
            row = views.settlement(round_, address)
            out[h] = {"stake_wei": views.account(address).stake_wei,
                      "reward_wei": row.reward_wei, "slashed_wei": row.slashed_wei,
                      "audit_failed": int(row.audit_status.name == "FAILED")}
        self.settled[round_] = out

    def rows(self, key: RunKey, round_: int, tiers: Mapping[str, str]) -> list[dict[str, Any]]:
        """One row per hospital and :data:`SETTLEMENT_METRICS` entry of ``round_``."""
        return [result_row(key, round_, h, tiers.get(h, ""), metric, float(values[metric]))
                for h, values in self.settled.get(round_, {}).items()
                for metric in SETTLEMENT_METRICS]

    def summary_rows(self, key: RunKey, tiers: Mapping[str, str]) -> list[dict[str, Any]]:
        """What each hospital withdrew after the last round (round 0 rows of the summary)."""
        last = max(self.settled, default=0)
        return [result_row(key, last, h, tiers.get(h, ""), "withdrawn_wei", float(wei))
                for h, wei in self.withdrawn.items()]
