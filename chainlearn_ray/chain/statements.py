"""Statements a hospital signs for the contract: the Proof-of-Capacity registration digest.

The contract recovers the signer of :func:`poc_digest` (EIP-191) and checks it is the hospital
being registered, so the signature binds the tier, the benchmark hash, the chain id and the
contract address (SPEC.md §5.2).
"""

from __future__ import annotations

from eth_abi import encode as abi_encode
from eth_utils import keccak

from chainlearn_ray.errors import ChainlearnError, ConfigError
from chainlearn_ray.protocol.tiers import Tier


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
    from chainlearn_ray.chain.signing import address_bytes

    if len(bench_hash) != 32:
        raise ConfigError("benchmark hash must be exactly 32 bytes")
    if not 0 <= int(chain_id) < 2**256:
        raise ConfigError(f"chain id {chain_id} is not a uint256")
    try:
        contract_raw, hospital_raw = address_bytes(contract), address_bytes(hospital)
    except ChainlearnError as exc:
        raise ConfigError(str(exc)) from None
    encoded = abi_encode(["address", "uint256", "address", "uint8", "bytes32"],
                         [contract_raw, int(chain_id), hospital_raw, int(Tier.parse(tier)),
                          bytes(bench_hash)])
    return bytes(keccak(encoded))


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
    from chainlearn_ray.chain.signing import key_address, sign_digest

    digest = poc_digest(key_address(private_key), tier, bench_hash, chain_id, contract)
    return sign_digest(digest, private_key)
