"""Hospital-side signing: eth-account's bytes, and the bytes of the earlier hand-written signer.

The fixed hex vectors below were produced by the hand-written RLP / secp256k1 signer this
module replaced (commit 0baa9aa); the eth-account based one must keep producing them.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlearn_ray.chain.signing import (
    address_bytes,
    checksum_address,
    key_address,
    sign_digest,
    sign_transaction_fields,
)
from chainlearn_ray.chain.tx import (
    SUBMIT_UPDATE_SELECTOR,
    encode_submit_update,
    recover_sender,
    sign_transaction,
)
from chainlearn_ray.errors import ChainError
from chainlearn_ray.protocol.tiers import ModelType

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
keys = st.integers(min_value=1, max_value=N - 1).map(lambda k: k.to_bytes(32, "big"))

KEY1 = "0x" + "11" * 32
KEY2 = bytes(keccak(b"chainlearn test key 2"))
CONTRACT = "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"
#: ``submitUpdate(0x11…11, 9000, 1000, Heavy)`` calldata (tests/chain/test_client.py checks it).
CALLDATA = bytes.fromhex(
    "f5a428971111111111111111111111111111111111111111111111111111111111111111"
    "0000000000000000000000000000000000000000000000000000000000002328"
    "00000000000000000000000000000000000000000000000000000000000003e8"
    "0000000000000000000000000000000000000000000000000000000000000002"
)
_ARGS_RLP = "b884" + CALLDATA.hex()
TX_1559 = {"to": CONTRACT, "data": CALLDATA, "nonce": 7, "gas": 300_000, "chainId": 1337,
           "type": 2, "maxFeePerGas": 2_000_000_000, "maxPriorityFeePerGas": 1_000_000_000,
           "value": 0}
TX_LEGACY = {"to": CONTRACT, "data": CALLDATA, "nonce": 7, "gas": 300_000, "chainId": 1337,
             "gasPrice": 1_000_000_000, "value": 0}
RAW_1559 = (
    "02f8f282053907843b9aca008477359400830493e094" + "ab" * 20 + "80" + _ARGS_RLP
    + "c080a0afb3e4b38aaa3b5189696ae5cba38ae9287343cb3139186b4c4f1a2ce598921f"
    "a07c95271099137444a1597cf05665ad21dca8c93cc7233657ed10a25acc34e4dd"
)
RAW_LEGACY = (
    "f8eb07843b9aca00830493e094" + "ab" * 20 + "80" + _ARGS_RLP
    + "820a96a05632034cec1398ca59ba8ae85ccd8b780c966c2d794ccd14a255e7c62d60af18"
    "a045526ccfc1c2242d9abd8dd5870f197f12024e2eb12479f605642255f002f0cf"
)
RAW_ACCESS_LIST = (
    "02f9012b82053907843b9aca008477359400830493e094" + "ab" * 20 + "80" + _ARGS_RLP
    + "f838f794" + "ab" * 20 + "e1a0" + "00" * 31 + "01"
    + "80a08e6195885b13c007c1a3b2b3ebaa8cb1576779cdd16f2d99ca96e3e01f6f2501"
    "a06cab48de78f4b43bdb5d33739fda722ec671406de070dfa79b16f0568c76dda1"
)


def test_fixed_vectors_of_the_earlier_signer() -> None:
    assert key_address(KEY1) == "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A"
    assert key_address(KEY2) == "0x2D444Ab0C71B447863C49DA448758D749b4C1584"
    digest = bytes(keccak(b"digest"))
    assert sign_digest(digest, KEY1).hex() == (
        "27f98c38dba91b582c2409101b9fb9026312e3f8680aa20b0bda4caa16704d2e"
        "0dc51a21ee222f3012de8ef858cfb69b62d4f9d605311f5ddcd09a4dc4963a701c")
    assert sign_digest(digest, KEY2).hex() == (
        "95bb50c52faad593fc6149410c41f26c9be6493133d2f6dcdbc578a1a7572891"
        "5b77a0c4cdde8e8a3350c075b9041ee3c6a825a7b912f0aaec653ce49bfdba7e1c")
    assert sign_transaction_fields(TX_1559, KEY1).hex() == RAW_1559
    assert sign_transaction_fields(TX_LEGACY, KEY2).hex() == RAW_LEGACY
    access = dict(TX_1559, accessList=[{"address": CONTRACT,
                                        "storageKeys": ["0x" + "00" * 31 + "01"]}])
    assert sign_transaction_fields(access, KEY1).hex() == RAW_ACCESS_LIST
    as_text = dict(TX_1559, nonce="0x7", gas="0x493e0", to=CONTRACT.lower())
    assert sign_transaction_fields(as_text, KEY1).hex() == RAW_1559
    assert checksum_address(CONTRACT.lower()) == CONTRACT
    assert checksum_address(bytes(range(20))) == "0x000102030405060708090a0b0c0d0e0f10111213"


def test_fixed_vectors_of_the_earlier_submit_update_encoding() -> None:
    assert SUBMIT_UPDATE_SELECTOR.hex() == "f5a42897"
    assert encode_submit_update(b"\x11" * 32, 9000, 1000, ModelType.HEAVY) == CALLDATA
    plain = dict(TX_1559, data="0x" + CALLDATA.hex(), **{"from": key_address(KEY1)})
    assert sign_transaction(plain, KEY1, expected_data=CALLDATA, expected_to=CONTRACT).hex() \
        == RAW_1559
    assert recover_sender(bytes.fromhex(RAW_1559)) == (key_address(KEY1), 7)
    assert recover_sender(bytes.fromhex(RAW_LEGACY)) == (key_address(KEY2), 7)


@settings(max_examples=40, deadline=None)
@given(key=keys, digest=st.binary(min_size=32, max_size=32))
def test_address_and_digest_signature(key: bytes, digest: bytes) -> None:
    assert key_address(key) == Account.from_key(key).address
    ref = Account.sign_message(encode_defunct(primitive=digest), private_key=key)
    assert sign_digest(digest, key) == bytes(ref.signature)


@settings(max_examples=40, deadline=None)
@given(key=keys, data=st.binary(max_size=300), nonce=st.integers(0, 2**40),
       gas=st.integers(21_000, 30_000_000), fee=st.integers(0, 10**12),
       tip=st.integers(0, 10**10), chain=st.integers(1, 2**53))
def test_transactions(key: bytes, data: bytes, nonce: int, gas: int, fee: int, tip: int,
                      chain: int) -> None:
    to = to_checksum_address("0x" + "ab" * 20)
    tx = {"to": to, "data": data, "nonce": nonce, "gas": gas, "chainId": chain, "type": 2,
          "maxFeePerGas": fee + tip, "maxPriorityFeePerGas": tip, "value": 0}
    assert sign_transaction_fields(tx, key) == bytes(
        Account.sign_transaction(tx, key).raw_transaction)
    legacy = {"to": to, "data": data, "nonce": nonce, "gas": gas, "chainId": chain,
              "gasPrice": fee, "value": 0}
    assert sign_transaction_fields(legacy, key) == bytes(
        Account.sign_transaction(legacy, key).raw_transaction)


def test_bad_inputs() -> None:
    with pytest.raises(ChainError, match="32 bytes"):
        key_address(b"\x00" * 32)
    with pytest.raises(ChainError, match="32 bytes"):
        sign_digest(b"short", b"\x01" * 32)
    with pytest.raises(ChainError, match="lacks nonce"):
        sign_transaction_fields({"to": "0x" + "00" * 20, "chainId": 1, "type": 2}, b"\x01" * 32)
    with pytest.raises(ChainError, match="type 3"):
        sign_transaction_fields({"chainId": 1, "type": 3}, b"\x01" * 32)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(min_size=20, max_size=20))
def test_checksum_address_is_eip55(raw: bytes) -> None:
    expected = to_checksum_address(raw)
    assert checksum_address(raw) == expected == checksum_address(expected.lower())
    assert address_bytes(expected) == raw == address_bytes(expected.upper().replace("0X", "0x"))


def test_eth_keys_signs_with_coincurve() -> None:
    """coincurve stays a dependency: eth-keys picks its libsecp256k1 backend when installed."""
    from eth_keys.backends import CoinCurveECCBackend, get_backend

    assert isinstance(get_backend(), CoinCurveECCBackend)


@pytest.mark.parametrize("bad", ["0x1234", "0x" + "zz" * 20, b"\x01" * 19, "0x" + "11" * 21])
def test_address_bytes_refuses_malformed(bad: str | bytes) -> None:
    with pytest.raises(ChainError, match="20-byte"):
        address_bytes(bad)

