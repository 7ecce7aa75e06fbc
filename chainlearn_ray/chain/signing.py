"""Hospital-side secp256k1 signing: addresses, EIP-191 digests and raw transactions.

Hospitals only ever need three things from a key: its address, a ``personal_sign`` signature
over a 32-byte digest (the PoC statement) and a signed ``submitUpdate`` transaction. This module
gets all three from eth-account's public API (``Account.from_key``, ``Account.sign_message``,
``Account.sign_transaction``) and addresses from eth-utils, and only adds input checks whose
errors say what is wrong. eth-keys, under eth-account, signs with its coincurve (libsecp256k1)
backend when coincurve is installed, as it is here (a project dependency).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import to_canonical_address, to_checksum_address

from chainlearn_ray.errors import ChainError

logger = logging.getLogger(__name__)

#: Transaction types :func:`sign_transaction_fields` signs: EIP-155 legacy and EIP-1559.
_TX_TYPES = (0, 2)

#: Fields each transaction type needs (besides ``to``, ``data``, ``value`` and ``accessList``).
_TX_FIELDS = {
    0: ("nonce", "gasPrice", "gas", "chainId"),
    2: ("chainId", "nonce", "maxPriorityFeePerGas", "maxFeePerGas", "gas"),
}


def _account(private_key: bytes | str) -> LocalAccount:
    try:
        return Account.from_key(private_key)
    except ValueError:  # eth-keys: wrong length, zero or >= n; binascii: not hex
        raise ChainError("a private key must be 32 bytes in 1..n-1 of secp256k1") from None


def address_bytes(address: str | bytes) -> bytes:
    """The 20 bytes of an address given as bytes or ``0x`` hex (any case)."""
    try:
        return bytes(to_canonical_address(address))
    except (TypeError, ValueError):
        raise ChainError(f"{address!r} is not a 20-byte address") from None


def checksum_address(address: str | bytes) -> str:
    """EIP-55 mixed-case form of an address (given as bytes or ``0x`` hex in any case)."""
    return str(to_checksum_address(address_bytes(address)))


def key_address(private_key: bytes | str) -> str:
    """Checksummed Ethereum address of ``private_key``."""
    return str(_account(private_key).address)


def sign_digest(digest: bytes, private_key: bytes | str) -> bytes:
    """EIP-191 ``personal_sign`` over a 32-byte digest: 65 bytes ``r ‖ s ‖ v`` (v = 27/28).

    ``Account.sign_message(encode_defunct(primitive=digest), key).signature``: the signed hash
    is ``keccak256("\\x19Ethereum Signed Message:\\n32" ‖ digest)``, which the contract
    rebuilds with ``MessageHashUtils.toEthSignedMessageHash(digest)``.
    """
    if len(digest) != 32:
        raise ChainError("the signed digest must be exactly 32 bytes")
    signed = _account(private_key).sign_message(encode_defunct(primitive=bytes(digest)))
    return bytes(signed.signature)


def _int(fields: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = fields.get(name, default)
    if value is None:
        raise ChainError(f"transaction to sign lacks {name}")
    if isinstance(value, str):
        return int(value, 16) if value.startswith("0x") else int(value)
    return int(value)


def sign_transaction_fields(fields: Mapping[str, Any], private_key: bytes | str) -> bytes:
    """Sign an EIP-1559 (``type`` 2, or fee fields present) or EIP-155 legacy transaction.

    ``fields`` holds ``to``, ``data`` (bytes), ``nonce``, ``gas``, ``chainId``, ``value`` and
    either ``maxFeePerGas``/``maxPriorityFeePerGas`` (and optionally ``accessList``) or
    ``gasPrice``; integers may be given as ``0x`` hex or decimal strings. Returns
    ``Account.sign_transaction(...).raw_transaction`` of those fields.

    Raises
    ------
    ChainError
        A missing field, a type other than 0 or 2, or fields eth-account refuses.
    """
    kind = fields.get("type")
    kind = _int(fields, "type") if kind is not None else (2 if "maxFeePerGas" in fields else 0)
    if kind not in _TX_TYPES:
        raise ChainError(f"cannot sign transactions of type {kind}: use type 2 (EIP-1559) or 0")
    tx: dict[str, Any] = {name: _int(fields, name) for name in _TX_FIELDS[kind]}
    tx["value"] = _int(fields, "value", 0)
    tx["data"] = bytes(fields.get("data") or b"")
    if fields.get("to") not in (None, "", b""):
        tx["to"] = checksum_address(fields["to"])
    if kind == 2:
        tx["type"] = 2
        tx["accessList"] = [
            {"address": checksum_address(entry["address"]),
             "storageKeys": list(entry["storageKeys"])}
            for entry in fields.get("accessList") or []
        ]
    try:
        signed = _account(private_key).sign_transaction(tx)
    except (TypeError, ValueError) as exc:
        raise ChainError(f"eth-account refused to sign the transaction: {exc}") from exc
    return bytes(signed.raw_transaction)
