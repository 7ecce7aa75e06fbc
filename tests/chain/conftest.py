"""Shared fixtures of the chain tests: an embedded chain per module and registered hospitals."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chainlearn_ray.chain.backends import ChainConnection, connect
from chainlearn_ray.chain.client import FLCoordinatorClient, TxResult
from chainlearn_ray.chain.statements import sign_poc
from chainlearn_ray.chain.tx import encode_submit_update, sign_transaction
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
