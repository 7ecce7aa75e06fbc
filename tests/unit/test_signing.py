"""Hospital-side signing equals eth-account's byte for byte (addresses, digests, transactions)."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlearn_ray.chain.signing import (
    address_bytes,
    checksum_address,
    key_address,
    rlp_encode,
    sign_digest,
    sign_transaction_fields,
)
from chainlearn_ray.errors import ChainError

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
keys = st.integers(min_value=1, max_value=N - 1).map(lambda k: k.to_bytes(32, "big"))


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


def test_rlp_known_vectors() -> None:
    assert rlp_encode(b"dog") == b"\x83dog"
    assert rlp_encode([b"cat", b"dog"]) == b"\xc8\x83cat\x83dog"
    assert rlp_encode(0) == b"\x80" and rlp_encode(15) == b"\x0f"
    assert rlp_encode(1024) == b"\x82\x04\x00"
    assert rlp_encode([]) == b"\xc0"
    long = b"L" * 56
    assert rlp_encode(long) == b"\xb8\x38" + long


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


@pytest.mark.parametrize("bad", ["0x1234", "0x" + "zz" * 20, b"\x01" * 19, "0x" + "11" * 21])
def test_address_bytes_refuses_malformed(bad: str | bytes) -> None:
    with pytest.raises(ChainError, match="20-byte"):
        address_bytes(bad)

