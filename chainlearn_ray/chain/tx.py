"""Hospital-side transaction encoding and signing (no Web3 object)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import rlp
from eth_abi import encode
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import function_signature_to_4byte_selector
from hexbytes import HexBytes

from chainlearn_ray.chain.signing import address_bytes, checksum_address, sign_transaction_fields
from chainlearn_ray.errors import ChainError, ConfigError
from chainlearn_ray.protocol.tiers import ModelType

logger = logging.getLogger(__name__)

#: Solidity signature of the hospital's only transaction (enums are ``uint8`` in the ABI).
SUBMIT_UPDATE_SIGNATURE: Final = "submitUpdate(bytes32,uint256,uint256,uint8)"
SUBMIT_UPDATE_SELECTOR: Final = bytes(function_signature_to_4byte_selector(SUBMIT_UPDATE_SIGNATURE))

#: ABI types of ``submitUpdate``'s arguments, in order.
SUBMIT_UPDATE_TYPES: Final = ("bytes32", "uint256", "uint256", "uint8")

#: Fields a transaction dict must carry before a hospital signs it.
REQUIRED_FIELDS: Final = ("to", "data", "nonce", "gas", "chainId")


def encode_submit_update(
    model_hash: bytes, confidence: int, ece: int, model_type: ModelType | int
) -> bytes:
    """Calldata of ``submitUpdate(modelHash, confidence, ece, modelType)``.

    Parameters
    ----------
    model_hash:
        32-byte model hash.
    confidence, ece:
        Fixed-point metrics (``0..10000``).
    model_type:
        The model family trained (:class:`ModelType` or its integer value).

    Returns
    -------
    bytes
        4-byte selector followed by the ABI-encoded arguments.
    """
    if len(model_hash) != 32:
        raise ConfigError("model hash must be exactly 32 bytes")
    for name, value in (("confidence", confidence), ("ece", ece)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
            raise ConfigError(f"{name} must be an integer in 0..10000, got {value!r}")
    kind = ModelType(int(model_type))
    args = (bytes(model_hash), confidence, ece, int(kind))
    return SUBMIT_UPDATE_SELECTOR + encode(SUBMIT_UPDATE_TYPES, args)


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, str):
        return bytes.fromhex(data.removeprefix("0x"))
    raise ChainError(f"transaction data must be bytes or hex, got {type(data).__name__}")


def sign_transaction(
    tx: Mapping[str, Any],
    private_key: bytes | str,
    *,
    expected_data: bytes | None = None,
    expected_to: str | None = None,
) -> bytes:
    """Sign a prepared transaction with the hospital's own key.

    The hospital never holds a Web3 object: it receives the plain dict built by the
    coordinator, checks it, signs it and hands back the raw bytes.

    Parameters
    ----------
    tx:
        Unsigned transaction (``to``, ``data``, ``nonce``, ``gas``, ``chainId`` and fee fields).
    private_key:
        The hospital's private key.
    expected_data:
        Calldata the hospital intends to send (from :func:`encode_submit_update`); the
        transaction is refused when its ``data`` differs.
    expected_to:
        Contract address the hospital intends to call; refused when ``to`` differs.

    Returns
    -------
    bytes
        The signed raw transaction.

    Raises
    ------
    ChainError
        When the transaction is incomplete, sends value, or does not match what was intended.
    """
    missing = [field for field in REQUIRED_FIELDS if field not in tx]
    if missing:
        raise ChainError(f"transaction to sign lacks {', '.join(missing)}")
    if int(tx.get("value", 0)) != 0:
        raise ChainError("refusing to sign a transaction that sends ETH")
    data = _as_bytes(tx["data"])
    if expected_data is not None and data != bytes(expected_data):
        raise ChainError(
            "refusing to sign: the transaction's data does not encode the intended submission"
        )
    if expected_to is not None and address_bytes(tx["to"]) != address_bytes(expected_to):
        raise ChainError(
            f"refusing to sign: the transaction targets {tx['to']}, not the contract {expected_to}"
        )
    fields = dict(tx)
    fields["data"] = data
    fields.pop("from", None)
    return sign_transaction_fields(fields, private_key)


def recover_sender(raw: bytes) -> tuple[str, int]:
    """The sender and nonce of a signed raw transaction (typed or legacy).

    The sender is ``Account.recover_transaction(raw)``; the nonce is read with eth-account's
    ``TypedTransaction`` (typed envelopes) or ``rlp`` (legacy: the list's first item).
    """
    sender = Account.recover_transaction(raw)
    if raw and raw[0] < 0x7F:
        nonce = int(TypedTransaction.from_bytes(HexBytes(raw)).as_dict()["nonce"])
    else:
        nonce = int.from_bytes(rlp.decode(raw)[0], "big")
    return checksum_address(sender), nonce
