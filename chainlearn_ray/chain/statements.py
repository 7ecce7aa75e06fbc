"""Statements a hospital signs for the contract: the Proof-of-Capacity registration digest.

The contract recovers the signer of :func:`poc_digest` (EIP-191) and checks it is the hospital
being registered, so the signature binds the name, the tier, the benchmark hash, the chain id and
the contract address (SPEC.md §5.2): the owner cannot list a hospital under a name or tier it
did not sign.
"""

from __future__ import annotations

from eth_hash.auto import keccak

from chainlearn_ray.errors import ChainlearnError, ConfigError
from chainlearn_ray.protocol.tiers import Tier


def poc_digest(
    hospital: str,
    tier: Tier | str | int,
    bench_hash: bytes,
    chain_id: int,
    contract: str,
    *,
    name: str,
) -> bytes:
    """The 32-byte statement a hospital signs to register.

    ``keccak256(abi.encode(address contract, uint256 chainId, address hospital,
    bytes32 keccak256(bytes(name)), uint8 capacity, bytes32 benchmarkHash))`` — binding the
    deployment, the chain, the hospital, the name it is registered under (UTF-8), its tier and
    its benchmark, so a signature cannot be replayed elsewhere or reused for another name. The
    contract recomputes it and checks an EIP-191 signature over it
    (``MessageHashUtils.toEthSignedMessageHash(digest)``).
    """
    if len(bench_hash) != 32:
        raise ConfigError("benchmark hash must be exactly 32 bytes")
    if not 0 <= int(chain_id) < 2**256:
        raise ConfigError(f"chain id {chain_id} is not a uint256")
    # abi.encode of static types: each value one 32-byte big-endian word
    words = (_address_word(contract), int(chain_id).to_bytes(32, "big"),
             _address_word(hospital), name_hash(name), int(Tier.parse(tier)).to_bytes(32, "big"),
             bytes(bench_hash))  # fmt: skip
    return bytes(keccak(b"".join(words)))


def name_hash(name: str) -> bytes:
    """``keccak256(bytes(name))``: how a signed statement binds the hospital's name."""
    if not isinstance(name, str):
        raise ConfigError(f"a hospital name must be a string, got {type(name).__name__}")
    return bytes(keccak(name.encode("utf-8")))


def _address_word(address: str) -> bytes:
    """An ``address`` as its ABI word (left-padded to 32 bytes)."""
    from chainlearn_ray.chain.signing import address_bytes

    try:
        return address_bytes(address).rjust(32, b"\0")
    except ChainlearnError as exc:
        raise ConfigError(str(exc)) from None


def sign_poc(
    private_key: bytes | str,
    tier: Tier | str | int,
    bench_hash: bytes,
    chain_id: int,
    contract: str,
    *,
    name: str,
) -> bytes:
    """Sign the PoC statement (EIP-191 ``personal_sign`` over :func:`poc_digest`).

    ``name`` is the name the hospital will be registered under (``registerHospital``'s
    ``name``); a registration under any other name is rejected.

    Returns the 65-byte ``r ‖ s ‖ v`` signature (low-s, as eth-account produces).
    """
    from chainlearn_ray.chain.signing import key_address, sign_digest

    digest = poc_digest(key_address(private_key), tier, bench_hash, chain_id, contract, name=name)
    return sign_digest(digest, private_key)
