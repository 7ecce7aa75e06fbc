"""Hospital-side transaction encoding and signing (no Web3 object): ``submitUpdate`` (seed
mode) and ``depositStake``, ``commitUpdate``, ``revealUpdate``, ``withdraw`` (trust mode)."""

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

#: Solidity signature of the hospital's seed-mode transaction (enums are ``uint8`` in the ABI).
SUBMIT_UPDATE_SIGNATURE: Final = "submitUpdate(bytes32,uint256,uint256,uint8)"
SUBMIT_UPDATE_SELECTOR: Final = bytes(function_signature_to_4byte_selector(SUBMIT_UPDATE_SIGNATURE))
#: ABI types of ``submitUpdate``'s arguments, in order.
SUBMIT_UPDATE_TYPES: Final = ("bytes32", "uint256", "uint256", "uint8")
#: Solidity signatures of the hospital's trust-mode transactions.
COMMIT_UPDATE_SIGNATURE: Final = "commitUpdate(bytes32)"
REVEAL_UPDATE_SIGNATURE: Final = "revealUpdate(bytes32,uint256,uint256,uint8,bytes32)"
DEPOSIT_STAKE_SIGNATURE: Final = "depositStake()"
WITHDRAW_SIGNATURE: Final = "withdraw()"

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
    return SUBMIT_UPDATE_SELECTOR + _update_words(model_hash, confidence, ece, model_type)


def _update_words(
    model_hash: bytes, confidence: int, ece: int, model_type: ModelType | int
) -> bytes:
    """ABI words of ``(bytes32 modelHash, uint256 confidence, uint256 ece, uint8 modelType)``."""
    _check_bytes32("model hash", model_hash)
    for name, value in (("confidence", confidence), ("ece", ece)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
            raise ConfigError(f"{name} must be an integer in 0..10000, got {value!r}")
    kind = ModelType(int(model_type))
    return encode(SUBMIT_UPDATE_TYPES, (bytes(model_hash), confidence, ece, int(kind)))


def _check_bytes32(what: str, value: bytes) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise ConfigError(f"{what} must be exactly 32 bytes")


def _selector(signature: str) -> bytes:
    return bytes(function_signature_to_4byte_selector(signature))


def encode_commit_update(commitment: bytes) -> bytes:
    """Calldata of ``commitUpdate(commitment)`` (trust mode; the commitment from
    :func:`chainlearn_ray.chain.statements.update_commitment`)."""
    _check_bytes32("commitment", commitment)
    return _selector(COMMIT_UPDATE_SIGNATURE) + encode(["bytes32"], [bytes(commitment)])


def encode_reveal_update(
    model_hash: bytes, confidence: int, ece: int, model_type: ModelType | int, salt: bytes
) -> bytes:
    """Calldata of ``revealUpdate(modelHash, confidence, ece, modelType, salt)`` (trust mode)."""
    _check_bytes32("salt", salt)
    words = _update_words(model_hash, confidence, ece, model_type) + encode(["bytes32"],
                                                                             [bytes(salt)])
    return _selector(REVEAL_UPDATE_SIGNATURE) + words


def encode_deposit_stake() -> bytes:
    """Calldata of ``depositStake()`` (trust mode; the stake is the transaction's value)."""
    return _selector(DEPOSIT_STAKE_SIGNATURE)


def encode_withdraw() -> bytes:
    """Calldata of ``withdraw()`` (trust mode: stake + rewards - slashes back to the hospital)."""
    return _selector(WITHDRAW_SIGNATURE)


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
    expected_value: int = 0,
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
    expected_value:
        Wei the hospital intends to send (its stake, for ``depositStake``); refused when
        ``value`` differs. Default 0: a transaction that sends ETH is refused.

    Returns
    -------
    bytes
        The signed raw transaction.

    Raises
    ------
    ChainError
        When the transaction is incomplete, sends other value than intended, or does not match
        what was intended.
    """
    missing = [field for field in REQUIRED_FIELDS if field not in tx]
    if missing:
        raise ChainError(f"transaction to sign lacks {', '.join(missing)}")
    value = int(tx.get("value", 0))
    if value != int(expected_value):
        if int(expected_value) == 0:
            raise ChainError("refusing to sign a transaction that sends ETH")
        raise ChainError(
            f"refusing to sign: the transaction sends {value} wei, not {expected_value}"
        )
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
