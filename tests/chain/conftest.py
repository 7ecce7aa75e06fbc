"""Shared fixtures of the chain tests: an embedded chain per module and registered hospitals."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD

from chainlearn_ray.chain.backends import ChainConnection, connect
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.chain.records import TxResult
from chainlearn_ray.chain.statements import (
    milli_samples,
    sign_attestation,
    sign_poc,
    update_commitment,
)
from chainlearn_ray.chain.trust import TrustConfig
from chainlearn_ray.chain.tx import (
    encode_commit_update,
    encode_deposit_stake,
    encode_reveal_update,
    encode_submit_update,
    encode_withdraw,
    sign_transaction,
)
from chainlearn_ray.errors import ContractRevertError
from chainlearn_ray.protocol.poc import benchmark_hash
from chainlearn_ray.protocol.tiers import Tier

FUNDING_WEI = 10**18


@dataclass(frozen=True)
class Hospital:
    """A test hospital: its own key, tier and benchmark hash."""

    account: LocalAccount
    tier: Tier
    bench_hash: bytes

    @property
    def address(self) -> str:
        return str(self.account.address)


def make_hospital(seed: int, tier: Tier) -> Hospital:
    """A deterministic hospital account (key derived from ``seed``)."""
    key = hashlib.sha256(f"hospital-{seed}".encode()).digest()
    return Hospital(Account.from_key(key), tier, benchmark_hash(50.0 + seed, 50, 16, tier))


def register(client: FLCoordinatorClient, hospital: Hospital, name: str = "") -> TxResult:
    """Register ``hospital`` under ``name`` with a PoC signature it made itself."""
    name = name or f"h-{hospital.address[2:8]}"
    signature = sign_poc(hospital.account.key, hospital.tier, hospital.bench_hash,
                         client.chain_id, client.address, name=name)
    return client.register_hospital(hospital.address, name, hospital.tier, hospital.bench_hash,
                                    signature)


def submit(
    client: FLCoordinatorClient,
    hospital: Hospital,
    confidence: int = 9000,
    ece: int = 1000,
    model_hash: bytes | None = None,
    model_type: int | None = None,
) -> TxResult:
    """The hospital path: prepare (coordinator), sign (hospital), relay (coordinator)."""
    digest = model_hash or hashlib.sha256(f"{hospital.address}{confidence}{ece}".encode()).digest()
    kind = int(hospital.tier.model_type) if model_type is None else model_type
    tx = client.prepare_submit_update(hospital.address, digest, confidence, ece, kind)
    raw = sign_transaction(
        tx,
        hospital.account.key,
        expected_data=encode_submit_update(digest, confidence, ece, kind),
        expected_to=client.address,
    )
    return client.send_raw(raw)


def reverts(error: str, action: object) -> ContractRevertError:
    """Run ``action`` and check that the contract reverts with the custom error ``error``."""
    assert callable(action)
    with pytest.raises(ContractRevertError) as info:
        action()
    assert info.value.error_name == error, info.value
    return info.value


def as_sender(client: FLCoordinatorClient, account: LocalAccount) -> FLCoordinatorClient:
    """The same contract, with owner transactions signed by ``account`` instead."""
    conn = copy.copy(client.conn)
    conn.owner = account
    conn._process = None  # the copy must never stop a node it does not own
    return FLCoordinatorClient(conn, client.address, client.artifact)


@pytest.fixture(scope="module")
def chain() -> Iterator[ChainConnection]:
    """One embedded chain per test module."""
    with connect("embedded") as conn:
        yield conn


@pytest.fixture(scope="module")
def trio(chain: ChainConnection) -> list[Hospital]:
    """Strong, Medium and Weak hospitals, funded."""
    hospitals = [
        make_hospital(1, Tier.STRONG),
        make_hospital(2, Tier.MEDIUM),
        make_hospital(3, Tier.WEAK),
    ]
    chain.fund_many([h.address for h in hospitals], FUNDING_WEI)
    return hospitals


@pytest.fixture
def fresh(chain: ChainConnection) -> FLCoordinatorClient:
    """A newly deployed coordinator (for tests that change its state)."""
    return FLCoordinatorClient.deploy(chain)


@pytest.fixture
def registered(fresh: FLCoordinatorClient, trio: list[Hospital]) -> FLCoordinatorClient:
    """A new coordinator with the trio registered."""
    for hospital in trio:
        register(fresh, hospital)
    return fresh


# ---------------------------------------------------------------- trust mode
TRUST = TrustConfig(
    min_stake_wei=10**17,
    reward_per_round_wei=9 * 10**15,
    audit_tolerance=200,
    slash_fraction=2_500,
    medium_min_milli=100_000,
    strong_min_milli=300_000,
)
#: Verifier-measured throughput (samples/s) of each tier's test hospital.
THROUGHPUT = {Tier.WEAK: 60.0, Tier.MEDIUM: 200.0, Tier.STRONG: 450.0}


@dataclass(frozen=True)
class Update:
    """A hospital's update for one round, with the salt of its commitment."""

    model_hash: bytes
    confidence: int
    ece: int
    model_type: int
    salt: bytes

    @property
    def commitment(self) -> bytes:
        return update_commitment(self.model_hash, self.confidence, self.ece, self.model_type,
                                 self.salt)  # fmt: skip

    def reveal_args(self) -> tuple[bytes, int, int, int, bytes]:
        return (self.model_hash, self.confidence, self.ece, self.model_type, self.salt)


def make_update(hospital: Hospital, rnd: int, confidence: int = 9000, ece: int = 1000) -> Update:
    tag = f"{hospital.address}-{rnd}-{confidence}-{ece}"
    return Update(hashlib.sha256(f"model-{tag}".encode()).digest(), confidence, ece,
                  int(hospital.tier.model_type), hashlib.sha256(f"salt-{tag}".encode()).digest())


def hospital_tx(client: FLCoordinatorClient, hospital: Hospital, operation: str, *args: object,
                value: int = 0) -> TxResult:
    """Prepare (coordinator), sign what it intends (hospital) and relay a trust-mode hospital
    transaction: ``depositStake`` (``value``), ``commitUpdate``, ``revealUpdate``, ``withdraw``."""
    prepare, data = {
        "depositStake": (lambda: client.prepare_deposit_stake(hospital.address, value),
                         encode_deposit_stake),
        "commitUpdate": (lambda: client.prepare_commit_update(hospital.address, *args),
                         lambda: encode_commit_update(*args)),
        "revealUpdate": (lambda: client.prepare_reveal_update(hospital.address, *args),
                         lambda: encode_reveal_update(*args)),
        "withdraw": (lambda: client.prepare_withdraw(hospital.address), encode_withdraw),
    }[operation]  # type: ignore[no-untyped-call]
    raw = sign_transaction(prepare(), hospital.account.key, expected_data=data(),
                           expected_to=client.address, expected_value=value)
    return client.send_raw(raw, operation)


def commit(client: FLCoordinatorClient, hospital: Hospital, update: Update) -> TxResult:
    return hospital_tx(client, hospital, "commitUpdate", update.commitment)


def reveal(client: FLCoordinatorClient, hospital: Hospital, update: Update) -> TxResult:
    return hospital_tx(client, hospital, "revealUpdate", *update.reveal_args())


def attest(client: FLCoordinatorClient, hospital: Hospital, name: str,
           throughput: float | None = None, verifier: LocalAccount | None = None,
           ) -> tuple[bytes, bytes, int]:
    """Challenge the hospital (verifier) and return (hospital signature, attestation,
    throughput in milli-samples/s) for its registration under ``name``."""
    verifier = verifier or client.conn.owner
    client.issue_challenge(hospital.address, verifier)
    challenge = client.challenge(hospital.address)
    milli = milli_samples(THROUGHPUT[hospital.tier] if throughput is None else throughput)
    signature = sign_poc(hospital.account.key, hospital.tier, hospital.bench_hash,
                         client.chain_id, client.address, name=name, challenge=challenge)
    attestation = sign_attestation(verifier.key, hospital.address, challenge, milli,
                                   client.chain_id, client.address)
    return signature, attestation, milli


def register_attested(client: FLCoordinatorClient, hospital: Hospital, name: str = "",
                      stake: int = 0) -> TxResult:
    """Register ``hospital`` in trust mode (challenge, PoC signature, attestation); the owner
    pays ``stake`` for it."""
    name = name or f"h-{hospital.address[2:8]}"
    signature, attestation, milli = attest(client, hospital, name)
    return client.register_hospital_attested(hospital.address, name, hospital.tier,
                                             hospital.bench_hash, milli, signature, attestation,
                                             stake)


@pytest.fixture
def trusted(chain: ChainConnection, trio: list[Hospital]) -> FLCoordinatorClient:
    """A new trust-mode coordinator: the trio registered, each staking the minimum itself, and
    the reward reserve funded for three rounds."""
    client = FLCoordinatorClient.deploy(chain, trust=TRUST)
    chain.fund_many([h.address for h in trio], TRUST.min_stake_wei + 10**16)  # stake and gas
    for hospital in trio:
        register_attested(client, hospital)
        hospital_tx(client, hospital, "depositStake", value=TRUST.min_stake_wei)
    client.fund_reward_pool(3 * TRUST.reward_per_round_wei)
    return client


def run_trust_round(client: FLCoordinatorClient, hospitals: list[Hospital],
                    updates: list[Update], audits: list[tuple[int, int] | None] | None = None,
                    record: bool = True) -> int:
    """One trust-mode round: start, commit all, reveal phase, reveal all, audit (``None``: no
    audit; default: the claimed metrics), ensemble. Returns the round number."""
    client.start_round()
    rnd = client.current_round()
    for h, u in zip(hospitals, updates, strict=True):
        commit(client, h, u)
    client.start_reveal_phase()
    for h, u in zip(hospitals, updates, strict=True):
        reveal(client, h, u)
    audits = audits if audits is not None else [(u.confidence, u.ece) for u in updates]
    for h, u, audit in zip(hospitals, updates, audits, strict=True):
        if audit is not None:
            client.report_audit(rnd, h.address, u.model_hash, *audit)
    if record:
        client.record_ensemble(hashlib.sha256(f"ensemble-{rnd}".encode()).digest(),
                               len(hospitals))
    return rnd


def events(client: FLCoordinatorClient, result: TxResult, name: str) -> list[dict[str, Any]]:
    """The arguments of the ``name`` events a mined transaction emitted."""
    receipt = client.conn.w3.eth.get_transaction_receipt(result.tx_hash)  # type: ignore[arg-type]
    found = getattr(client.contract.events, name)().process_receipt(receipt, errors=DISCARD)
    return [dict(event["args"]) for event in found]


def reference_split(pool: int, weights: list[int], failed: list[bool]) -> list[int]:
    """The reward split, computed apart from the contract: cumulative shares of the kept
    (not failed) weights in reveal order."""
    total = sum(w for w, f in zip(weights, failed, strict=True) if not f)
    rewards, before = [], 0
    for w, f in zip(weights, failed, strict=True):
        if f or total == 0:
            rewards.append(0)
            continue
        rewards.append(pool * (before + w) // total - pool * before // total)
        before += w
    return rewards
