"""Hospital-side secp256k1 signing: addresses, EIP-191 digests and raw transactions.

Hospitals only ever need three things from a key: its address, a ``personal_sign`` signature
over a 32-byte digest (the PoC statement) and a signed ``submitUpdate`` transaction. This module
does exactly that with ``coincurve`` and a small RLP encoder, so a hospital process does not
load a full account library (whose keystore support alone costs about a second of start-up
per process). The results are byte-identical to eth-account's (tested).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from coincurve import PrivateKey
from eth_hash.auto import keccak

from chainlearn_ray.errors import ChainError

logger = logging.getLogger(__name__)

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _key_bytes(private_key: bytes | str) -> bytes:
    if isinstance(private_key, str):
        private_key = bytes.fromhex(private_key.removeprefix("0x"))
    key = bytes(private_key)
    if len(key) != 32 or not 0 < int.from_bytes(key, "big") < _SECP256K1_N:
        raise ChainError("a private key must be 32 bytes in 1..n-1 of secp256k1")
    return key


def address_bytes(address: str | bytes) -> bytes:
    """The 20 bytes of an address given as bytes or ``0x`` hex (any case)."""
    try:
        raw = bytes(address) if isinstance(address, bytes | bytearray) else bytes.fromhex(
            str(address).removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 20:
        raise ChainError(f"{address!r} is not a 20-byte address")
    return raw


def checksum_address(address: str | bytes) -> str:
    """EIP-55 mixed-case form of an address."""
    plain = address_bytes(address).hex()
    digest = keccak(plain.encode()).hex()[:40]
    cased = (c.upper() if int(d, 16) >= 8 else c for c, d in zip(plain, digest, strict=True))
    return "0x" + "".join(cased)


def key_address(private_key: bytes | str) -> str:
    """Checksummed Ethereum address of ``private_key``."""
    public = PrivateKey(_key_bytes(private_key)).public_key.format(compressed=False)
    return checksum_address(keccak(public[1:])[-20:])


def _sign_hash(msg_hash: bytes, private_key: bytes | str) -> tuple[int, int, int]:
    """``(r, s, recovery id)`` of a deterministic (RFC 6979), low-s signature of a hash."""
    sig = PrivateKey(_key_bytes(private_key)).sign_recoverable(msg_hash, hasher=None)
    return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]


def sign_digest(digest: bytes, private_key: bytes | str) -> bytes:
    """EIP-191 ``personal_sign`` over a 32-byte digest: 65 bytes ``r ‖ s ‖ v`` (v = 27/28).

    Equals ``Account.sign_message(encode_defunct(primitive=digest), key).signature``.
    """
    if len(digest) != 32:
        raise ChainError("the signed digest must be exactly 32 bytes")
    prefixed = keccak(b"\x19Ethereum Signed Message:\n32" + bytes(digest))
    r, s, rec = _sign_hash(prefixed, private_key)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([27 + rec])


# --------------------------------------------------------------------------- RLP


def _rlp_length(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes([offset + length])
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(size)]) + size


def rlp_encode(item: bytes | int | Sequence[Any]) -> bytes:
    """Recursive-length-prefix encoding of bytes, non-negative ints and nested lists."""
    if isinstance(item, bool):
        raise ChainError("RLP has no booleans")
    if isinstance(item, int):
        if item < 0:
            raise ChainError("RLP integers must be non-negative")
        item = item.to_bytes((item.bit_length() + 7) // 8, "big") if item else b""
    if isinstance(item, bytes | bytearray):
        data = bytes(item)
        if len(data) == 1 and data[0] < 0x80:
            return data
        return _rlp_length(len(data), 0x80) + data
    payload = b"".join(rlp_encode(x) for x in item)
    return _rlp_length(len(payload), 0xC0) + payload


# --------------------------------------------------------------------------- transactions


def _address_bytes(value: Any) -> bytes:
    if value in (None, "", b""):
        return b""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return bytes.fromhex(str(value).removeprefix("0x"))


def _int(fields: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = fields.get(name, default)
    if value is None:
        raise ChainError(f"transaction to sign lacks {name}")
    if isinstance(value, str):
        return int(value, 16) if value.startswith("0x") else int(value)
    return int(value)


def _access_list(fields: Mapping[str, Any]) -> list[Any]:
    out = []
    for entry in fields.get("accessList") or []:
        keys = [_address_bytes(k) for k in entry["storageKeys"]]
        out.append([_address_bytes(entry["address"]), keys])
    return out


def sign_transaction_fields(fields: Mapping[str, Any], private_key: bytes | str) -> bytes:
    """Sign an EIP-1559 (``type`` 2, or fee fields present) or EIP-155 legacy transaction.

    ``fields`` holds ``to``, ``data`` (bytes), ``nonce``, ``gas``, ``chainId``, ``value`` and
    either ``maxFeePerGas``/``maxPriorityFeePerGas`` or ``gasPrice``. Returns the raw signed
    transaction, equal to eth-account's ``Account.sign_transaction(...).raw_transaction``.
    """
    data = bytes(fields.get("data") or b"")
    to = _address_bytes(fields.get("to"))
    chain_id = _int(fields, "chainId")
    kind = fields.get("type")
    kind = _int(fields, "type") if kind is not None else (2 if "maxFeePerGas" in fields else 0)
    if kind == 2:
        body = [chain_id, _int(fields, "nonce"), _int(fields, "maxPriorityFeePerGas"),
                _int(fields, "maxFeePerGas"), _int(fields, "gas"), to,
                _int(fields, "value", 0), data, _access_list(fields)]
        r, s, rec = _sign_hash(keccak(b"\x02" + rlp_encode(body)), private_key)
        return b"\x02" + rlp_encode([*body, rec, r, s])
    if kind == 0:
        body = [_int(fields, "nonce"), _int(fields, "gasPrice"), _int(fields, "gas"), to,
                _int(fields, "value", 0), data]
        r, s, rec = _sign_hash(keccak(rlp_encode([*body, chain_id, 0, 0])), private_key)
        return rlp_encode([*body, rec + 35 + 2 * chain_id, r, s])
    raise ChainError(f"cannot sign transactions of type {kind}: use type 2 (EIP-1559) or 0")
