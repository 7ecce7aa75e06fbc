"""Integration on a real node: full seed and trust-mode flows against anvil."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from chainlearn_ray.chain.anvil import find_anvil
from chainlearn_ray.chain.backends import ChainConnection, connect
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.chain.gas import GasReport, measure_gas
from chainlearn_ray.chain.trust import AuditStatus
from chainlearn_ray.errors import ContractRevertError
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.protocol.weights import compute_weight
from tests.chain.conftest import (
    TRUST,
    hospital_tx,
    make_hospital,
    make_update,
    reference_split,
    register,
    register_attested,
    run_trust_round,
    submit,
)

pytestmark = [
    pytest.mark.anvil,
    pytest.mark.skipif(
        find_anvil() is None,
        reason="the anvil binary is missing: run `npm ci` in contracts/ (@foundry-rs/anvil)",
    ),
]


@pytest.fixture(scope="module")
def anvil() -> Iterator[ChainConnection]:
    with connect("anvil") as conn:
        yield conn


def test_full_flow_on_anvil(anvil: ChainConnection) -> None:
    assert anvil.backend == "anvil" and anvil.rpc_url
    client = FLCoordinatorClient.deploy(anvil)
    hospitals = [make_hospital(300 + i, tier) for i, tier in enumerate(Tier)]
    anvil.fund_many([h.address for h in hospitals], 10**18)
    for h in hospitals:
        register(client, h)
    assert client.hospital_count() == 3
    for rnd in (1, 2):
        client.start_round()
        for i, h in enumerate(hospitals):
            submit(client, h, 9000 - 100 * i * rnd, 1000 + 50 * rnd)
        client.record_ensemble(hashlib.sha256(bytes([rnd])).digest(), 3)
    for i, h in enumerate(hospitals):
        expected = compute_weight(h.tier, 9000 - 200 * i, 1100, 2)
        assert client.weight(h.address) == expected
        assert client.round_weight(1, h.address) == compute_weight(h.tier, 9000 - 100 * i, 1050, 1)
    assert client.ensemble_record(2).participant_count == 3
    with pytest.raises(ContractRevertError) as info:
        client.record_ensemble(b"\x01" * 32, 3)
    assert info.value.error_name == "FLCoordinator__EnsembleAlreadyRecorded"
    with pytest.raises(ContractRevertError) as info:
        submit(client, hospitals[0])
    assert info.value.error_name == "FLCoordinator__RoundClosed"


def _execution_gas(conn: ChainConnection, report: GasReport) -> list[tuple[str, int]]:
    """Each receipt's gas less its calldata's (PoC signatures differ from chain to chain: they
    sign the chain id and the contract address)."""
    out = []
    for r in report.receipts:
        data = bytes(conn.w3.eth.get_transaction(r.tx_hash)["input"])
        calldata = sum(4 if b == 0 else 16 for b in data)
        out.append((r.operation, r.gas_used - calldata))
    return out


def test_rpc_backend_and_gas_agree_with_embedded(anvil: ChainConnection) -> None:
    """The rpc backend on the same node; the EVM gas equals the embedded chain's."""
    assert anvil.rpc_url is not None
    with connect("rpc", rpc_url=anvil.rpc_url) as rpc:
        assert rpc.chain_id == anvil.chain_id == 31337
        on_node = measure_gas(rpc, hospitals=3, rounds=2, seed=7)
        node_gas = _execution_gas(rpc, on_node)
    with connect("embedded") as embedded:
        in_process = measure_gas(embedded, hospitals=3, rounds=2, seed=7)
        local_gas = _execution_gas(embedded, in_process)
    assert node_gas == local_gas
    round_ops = [(r.operation, r.gas_used) for r in on_node.receipts if r.operation != "deploy"
                 and r.operation != "registerHospital"]  # fmt: skip
    assert round_ops == [(r.operation, r.gas_used) for r in in_process.receipts
                         if r.operation not in ("deploy", "registerHospital")]  # fmt: skip
    assert on_node.round_total_steady <= 300_000


def test_close_stops_the_node() -> None:
    conn = connect("anvil")
    process = conn._process
    assert process is not None and process.poll() is None
    conn.close()
    assert process.poll() is not None


def test_relayed_revert_on_a_real_node(anvil: ChainConnection) -> None:
    """A mined, failed transaction is replayed to recover the contract's custom error."""
    from chainlearn_ray.chain.tx import sign_transaction

    client = FLCoordinatorClient.deploy(anvil)
    hospital = make_hospital(320, Tier.WEAK)
    anvil.fund(hospital.address, 10**18)
    register(client, hospital)
    client.start_round()
    tx = client.prepare_submit_update(hospital.address, b"\x01" * 32, 9000, 1000, 0)
    first = sign_transaction(tx, hospital.account.key)
    again = sign_transaction(dict(tx, nonce=tx["nonce"] + 1), hospital.account.key)
    client.send_raw(first)
    with pytest.raises(ContractRevertError) as info:
        client.send_raw(again)
    assert info.value.error_name == "FLCoordinator__AlreadySubmitted"
    assert info.value.args_decoded == (1, hospital.address)
    submit_count = client.round_submitter_count(1)
    assert submit_count == 1


def test_trust_round_on_anvil(anvil: ChainConnection) -> None:
    """One full trust-mode round on a real node: challenges from its block hashes, attested
    registration, stakes, commit, reveal, audits (one fails), the exact reward split, the
    withdrawals; the ensemble lands on a multiple of 2^32 seconds and reads back whole."""
    client = FLCoordinatorClient.deploy(anvil, trust=TRUST)
    hospitals = [make_hospital(330 + i, tier) for i, tier in enumerate(Tier)]
    anvil.fund_many([h.address for h in hospitals], 10**18)
    client.fund_reward_pool(TRUST.reward_per_round_wei)
    for h in hospitals:
        register_attested(client, h)
        hospital_tx(client, h, "depositStake", value=TRUST.min_stake_wei)
    updates = [make_update(h, 1, 9000 - 200 * i, 900) for i, h in enumerate(hospitals)]
    audits = [(u.confidence, u.ece) for u in updates]
    audits[1] = (6000, 4000)  # the Medium hospital's claim is inflated
    run_trust_round(client, hospitals, updates, audits, record=False)
    anvil.set_next_block_timestamp(2**33)
    client.record_ensemble(b"\x0b" * 32, 3)
    assert client.ensemble_record(1).timestamp == 2**33
    assert client.audit(1, hospitals[1].address).status is AuditStatus.FAILED
    weights = [compute_weight(h.tier, u.confidence, u.ece, 1)
               for h, u in zip(hospitals, updates, strict=True)]
    expected = reference_split(TRUST.reward_per_round_wei, weights, [False, True, False])
    rows = [client.round_settlement(1, h.address) for h in hospitals]
    assert [r.reward_wei for r in rows] == expected
    assert sum(expected) == TRUST.reward_per_round_wei
    slash = TRUST.min_stake_wei * TRUST.slash_fraction // 10_000
    assert [r.slashed_wei for r in rows] == [0, slash, 0]
    for h, reward, lost in zip(hospitals, expected, (0, slash, 0), strict=True):
        before = anvil.w3.eth.get_balance(h.address)
        result = hospital_tx(client, h, "withdraw")
        receipt = anvil.w3.eth.get_transaction_receipt(result.tx_hash)  # type: ignore[arg-type]
        fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
        assert anvil.w3.eth.get_balance(h.address) - before + fee == (
            TRUST.min_stake_wei - lost + reward)
    assert anvil.w3.eth.get_balance(client.address) == client.reward_reserve() == slash
    with pytest.raises(ContractRevertError) as info:
        client.report_audit(1, hospitals[0].address, updates[0].model_hash, 9000, 900)
    assert info.value.error_name == "FLCoordinator__AuditWindowClosed"
