"""Integration on a real node: a full register -> rounds -> ensemble flow against anvil."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from chainlearn_ray.chain.anvil import find_anvil
from chainlearn_ray.chain.backends import ChainConnection, connect
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.chain.gas import GasReport, measure_gas
from chainlearn_ray.errors import ContractRevertError
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.protocol.weights import compute_weight
from tests.chain.conftest import make_hospital, register, submit

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
