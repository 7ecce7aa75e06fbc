"""Proof of Capacity: benchmark hash, the signed PoC statement, benchmark and hardware profiles."""

from __future__ import annotations

import struct

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.tiers import Tier

import hashlib


def benchmark_hash(throughput: float, steps: int, batch_size: int, tier: Tier | str) -> bytes:
    """SHA-256 of the PoC result, exactly as SPEC.md §2 defines the preimage.

    Preimage: throughput as an 8-byte big-endian IEEE-754 double, ``steps`` (K) as a 4-byte
    big-endian unsigned int, ``batch_size`` (B) as a 4-byte big-endian unsigned int, then the
    tier name (``"Weak"``, ``"Medium"``, ``"Strong"``) in UTF-8.

    Returns
    -------
    bytes
        32 bytes, usable as the contract's ``bytes32 benchmarkHash``.
    """
    if not 0 <= steps < 2**32 or not 0 <= batch_size < 2**32:
        raise ConfigError("PoC steps and batch size must fit in an unsigned 32-bit integer")
    name = Tier.parse(tier).display
    preimage = struct.pack(">dII", float(throughput), steps, batch_size) + name.encode("utf-8")
    return hashlib.sha256(preimage).digest()


def poc_digest(
    hospital: str, tier: Tier | str | int, bench_hash: bytes, chain_id: int, contract: str
) -> bytes:
    """The 32-byte statement a hospital signs to register.

    ``keccak256(abi.encode(address contract, uint256 chainId, address hospital,
    uint8 capacity, bytes32 benchmarkHash))`` — binding the deployment, the chain, the
    hospital, its tier and its benchmark, so a signature cannot be replayed elsewhere.
    The contract recomputes it and checks an EIP-191 signature over it
    (``MessageHashUtils.toEthSignedMessageHash(digest)``).
    """
    if len(bench_hash) != 32:
        raise ConfigError("benchmark hash must be exactly 32 bytes")
    return keccak(
        abi_encode(
            ["address", "uint256", "address", "uint8", "bytes32"],
            [
                to_checksum_address(contract),
                int(chain_id),
                to_checksum_address(hospital),
                int(Tier.parse(tier)),
                bytes(bench_hash),
            ],
        )
    )


def sign_poc(
    private_key: bytes | str,
    tier: Tier | str | int,
    bench_hash: bytes,
    chain_id: int,
    contract: str,
) -> bytes:
    """Sign the PoC statement (EIP-191 ``personal_sign`` over :func:`poc_digest`).

    Returns the 65-byte ``r ‖ s ‖ v`` signature (low-s, as eth-account produces).
    """
    account = Account.from_key(private_key)
    digest = poc_digest(account.address, tier, bench_hash, chain_id, contract)
    signed = Account.sign_message(encode_defunct(primitive=digest), private_key=private_key)
    return bytes(signed.signature)
