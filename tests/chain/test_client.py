"""The Python chain client: backends, hospital-side signing, relaying, receipts and errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak

from chainlearn_ray.chain.artifact import load_artifact
from chainlearn_ray.chain.backends import ChainConnection, connect
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.chain.reverts import RevertDecoder
from chainlearn_ray.chain.tx import encode_submit_update, recover_sender, sign_transaction
from chainlearn_ray.errors import ChainError, ConfigError, ContractRevertError, RpcUnreachableError
from chainlearn_ray.protocol.tiers import ModelType
from tests.chain.conftest import Hospital, register, submit


def test_tx_module_needs_no_web3() -> None:
    code = (
        "import sys, chainlearn_ray.chain.tx as t; "
        "assert 'web3' not in sys.modules, 'web3 imported'; print(t.SUBMIT_UPDATE_SELECTOR.hex())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert (
        out.stdout.strip() == keccak(text="submitUpdate(bytes32,uint256,uint256,uint8)")[:4].hex()
    )


def test_encode_submit_update_matches_abi(registered: FLCoordinatorClient) -> None:
    digest = b"\xab" * 32
    ours = encode_submit_update(digest, 9000, 1000, ModelType.MEDIUM)
    theirs = registered.contract.encode_abi("submitUpdate", [digest, 9000, 1000, 1])
    assert "0x" + ours.hex() == theirs


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((b"\x01" * 31, 1, 1, 0), "32 bytes"),
        ((b"\x01" * 32, 10001, 1, 0), "confidence"),
        ((b"\x01" * 32, 1, -1, 0), "ece"),
    ],
)
def test_encode_submit_update_validates(args: tuple, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        encode_submit_update(*args)


def test_prepared_tx_is_plain_data(registered: FLCoordinatorClient, trio: list[Hospital]) -> None:
    registered.start_round()
    h = trio[0]
    tx = registered.prepare_submit_update(h.address, b"\x01" * 32, 9000, 1000, ModelType.HEAVY)
    assert json.loads(json.dumps(tx)) == tx  # crosses process boundaries as is
    assert {"to", "data", "nonce", "gas", "chainId", "maxFeePerGas"} <= set(tx)
    assert tx["to"] == registered.address and tx["chainId"] == registered.chain_id
    assert tx["gas"] > 60_000


def test_sign_transaction_refuses_tampering(
    registered: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    registered.start_round()
    h = trio[0]
    tx = registered.prepare_submit_update(h.address, b"\x01" * 32, 9000, 1000, ModelType.HEAVY)
    intended = encode_submit_update(b"\x01" * 32, 9000, 1000, ModelType.HEAVY)
    inflated = encode_submit_update(b"\x01" * 32, 10000, 0, ModelType.HEAVY)
    with pytest.raises(ChainError, match="does not encode"):
        sign_transaction(tx, h.account.key, expected_data=inflated)
    with pytest.raises(ChainError, match="targets"):
        sign_transaction(tx, h.account.key, expected_to=trio[1].address)
    with pytest.raises(ChainError, match="sends ETH"):
        sign_transaction(dict(tx, value=1), h.account.key)
    with pytest.raises(ChainError, match="lacks"):
        sign_transaction({k: v for k, v in tx.items() if k != "nonce"}, h.account.key)
    raw = sign_transaction(tx, h.account.key, expected_data=intended, expected_to=tx["to"])
    assert recover_sender(raw) == (h.address, tx["nonce"])


def test_receipts_are_plain_data(registered: FLCoordinatorClient, trio: list[Hospital]) -> None:
    registered.start_round()
    submit(registered, trio[0])
    ops = [r.operation for r in registered.receipts]
    assert ops == ["deploy", *["registerHospital"] * 3, "startNewRound", "submitUpdate"]
    rows = [r.to_dict() for r in registered.receipts]
    assert json.loads(json.dumps(rows)) == rows
    last = registered.receipts[-1]
    receipt = registered.conn.w3.eth.get_transaction_receipt(last.tx_hash)
    assert (receipt["gasUsed"], receipt["blockNumber"]) == (last.gas_used, last.block_number)
    with pytest.raises(AttributeError):
        last.gas_used = 0  # type: ignore[misc]


def test_send_raw_many(registered: FLCoordinatorClient, trio: list[Hospital]) -> None:
    registered.start_round()
    raws = []
    for i, h in enumerate(trio):
        tx = registered.prepare_submit_update(
            h.address, bytes([i + 1]) * 32, 9000, 1000, h.tier.model_type
        )
        raws.append(sign_transaction(tx, h.account.key))
    results = registered.send_raw_many(raws)
    assert [r.sender for r in results] == [h.address for h in trio]
    assert registered.round_submitter_count(1) == 3
    registered.record_ensemble(b"\x01" * 32, 3)


def test_relayed_revert_is_decoded(registered: FLCoordinatorClient, trio: list[Hospital]) -> None:
    """A signed tx that reverts when relayed surfaces the contract's custom error."""
    registered.start_round()
    h = trio[1]
    tx = registered.prepare_submit_update(h.address, b"\x02" * 32, 9000, 1000, h.tier.model_type)
    first = sign_transaction(tx, h.account.key)
    second = sign_transaction(dict(tx, nonce=tx["nonce"] + 1), h.account.key)
    registered.send_raw(first)
    with pytest.raises(ContractRevertError) as info:
        registered.send_raw(second)  # the same submission again: prepared before the first
    assert info.value.error_name == "FLCoordinator__AlreadySubmitted"


def test_attach_checks_code(registered: FLCoordinatorClient, chain: ChainConnection) -> None:
    again = FLCoordinatorClient.attach(chain, registered.address)
    assert again.hospital_count() == 3
    with pytest.raises(ChainError, match="not this FLCoordinator"):
        FLCoordinatorClient.attach(chain, chain.owner.address)


def test_nonces_are_local(registered: FLCoordinatorClient, trio: list[Hospital]) -> None:
    owner = registered.conn.owner.address
    before = registered.conn.nonces.peek(owner)
    registered.start_round()
    assert registered.conn.nonces.peek(owner) == before + 1
    assert registered.conn.w3.eth.get_transaction_count(owner) == before + 1


def test_embedded_with_own_owner_key() -> None:
    key = "0x" + "42" * 32
    with connect("embedded", owner_key=key) as conn:
        assert conn.owner.address == Account.from_key(key).address
        client = FLCoordinatorClient.deploy(conn)
        assert client.owner() == conn.owner.address


def test_unknown_backend_and_missing_url() -> None:
    with pytest.raises(ConfigError, match="unknown chain backend"):
        connect("ganache")
    with pytest.raises(ConfigError, match="--rpc-url"):
        connect("rpc")


@pytest.mark.slow
def test_unreachable_rpc_url() -> None:
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RpcUnreachableError, match="check that the node is running"):
        connect("rpc", rpc_url=f"http://127.0.0.1:{port}")


def test_revert_decoder_standard_errors() -> None:
    decoder = RevertDecoder(load_artifact().abi)
    err = decoder.decode(keccak(text="Error(string)")[:4] + abi_encode(["string"], ["boom"]))
    assert (err.error_name, err.args_decoded) == ("Error", ("boom",))
    panic = decoder.decode(keccak(text="Panic(uint256)")[:4] + abi_encode(["uint256"], [0x11]))
    assert (panic.error_name, panic.args_decoded) == ("Panic", (0x11,))
    custom = decoder.decode(
        keccak(text="FLCoordinator__ParticipantCountMismatch(uint256,uint256,uint256)")[:4]
        + abi_encode(["uint256", "uint256", "uint256"], [4, 3, 2])
    )
    assert (custom.error_name, custom.args_decoded) == ("FLCoordinator__ParticipantCountMismatch",
                                                        (4, 3, 2))  # fmt: skip
    assert decoder.decode(b"\xde\xad\xbe\xef").error_name == "unknown"


def test_register_validates_hash_length(registered: FLCoordinatorClient) -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        registered.register_hospital(Account.create().address, "x", 0, b"\x01" * 31, b"")
    with pytest.raises(ConfigError, match="32 bytes"):
        registered.record_ensemble(b"\x01", 1)


def test_register_helper_round_trip(fresh: FLCoordinatorClient, trio: list[Hospital]) -> None:
    register(fresh, trio[2], name="Clinic")
    assert fresh.hospital_info(trio[2].address).name == "Clinic"


def test_owner_nonce_recovers_when_another_client_used_the_key(
    registered: FLCoordinatorClient,
) -> None:
    conn = registered.conn
    owner = conn.owner
    conn.nonces.peek(owner.address)  # cached locally
    outside = owner.sign_transaction(
        {
            "to": owner.address,
            "value": 0,
            "gas": 21_000,
            "nonce": conn.w3.eth.get_transaction_count(owner.address),
            "chainId": conn.chain_id,
            "type": 2,
            **conn.fee_fields(),
        }
    )
    conn.w3.eth.send_raw_transaction(outside.raw_transaction)  # the cache is now stale
    registered.start_round()
    assert registered.current_round() == 1
