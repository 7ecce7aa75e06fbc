"""Statements signed or committed to for the contract: the Proof-of-Capacity registration
digest (seed and trust mode), the verifier's attestation and a submission's commitment.

The contract recovers the signer of :func:`poc_digest` (EIP-191) and checks it is the hospital
being registered, so the signature binds the name, the tier, the benchmark hash, the chain id and
the contract address (SPEC.md §5.2) and, in trust mode, the verifier's challenge: the owner
cannot list a hospital under a name or tier it did not sign.
"""

from __future__ import annotations

import operator
from typing import Final

from eth_abi import encode as abi_encode
from eth_utils import keccak

from chainlearn_ray.errors import ChainlearnError, ConfigError
from chainlearn_ray.protocol.tiers import ModelType, Tier

#: Type hash the verifier's attestation starts with (keeps it apart from any PoC statement).
ATTESTATION_TYPEHASH: Final = bytes(
    keccak(b"FLCoordinator.Attestation(address hospital,bytes32 challenge,uint256 throughput)")
)


def poc_digest(
    hospital: str,
    tier: Tier | str | int,
    bench_hash: bytes,
    chain_id: int,
    contract: str,
    *,
    name: str,
    challenge: bytes | None = None,
) -> bytes:
    """The 32-byte statement a hospital signs to register.

    ``keccak256(abi.encode(address contract, uint256 chainId, address hospital,
    bytes32 keccak256(bytes(name)), uint8 capacity, bytes32 benchmarkHash))`` — binding the
    deployment, the chain, the hospital, the name it is registered under (UTF-8), its tier and
    its benchmark, so a signature cannot be replayed elsewhere or reused for another name. In
    trust mode (``challenge`` given) the verifier's 32-byte challenge is appended
    (``registerHospitalAttested``). The contract recomputes it and checks an EIP-191 signature
    over it (``MessageHashUtils.toEthSignedMessageHash(digest)``).
    """
    _check_bytes32("benchmark hash", bench_hash)
    types = ["address", "uint256", "address", "bytes32", "uint8", "bytes32"]
    values: list[object] = [_address(contract), _uint("chain id", chain_id), _address(hospital),
                            name_hash(name), int(Tier.parse(tier)), bytes(bench_hash)]
    if challenge is not None:
        _check_bytes32("challenge", challenge)
        types.append("bytes32")
        values.append(bytes(challenge))
    return bytes(keccak(abi_encode(types, values)))


def name_hash(name: str) -> bytes:
    """``keccak256(bytes(name))``: how a signed statement binds the hospital's name."""
    if not isinstance(name, str):
        raise ConfigError(f"a hospital name must be a string, got {type(name).__name__}")
    return bytes(keccak(name.encode("utf-8")))


def sign_poc(
    private_key: bytes | str,
    tier: Tier | str | int,
    bench_hash: bytes,
    chain_id: int,
    contract: str,
    *,
    name: str,
    challenge: bytes | None = None,
) -> bytes:
    """Sign the PoC statement (EIP-191 ``personal_sign`` over :func:`poc_digest`).

    ``name`` is the name the hospital will be registered under (``registerHospital``'s
    ``name``); a registration under any other name is rejected. ``challenge`` is the verifier's
    challenge in trust mode (``getChallenge``), ``None`` in seed mode.

    Returns the 65-byte ``r ‖ s ‖ v`` signature (low-s, as eth-account produces).
    """
    from chainlearn_ray.chain.signing import key_address, sign_digest

    digest = poc_digest(key_address(private_key), tier, bench_hash, chain_id, contract,
                        name=name, challenge=challenge)  # fmt: skip
    return sign_digest(digest, private_key)


def attestation_digest(
    hospital: str, challenge: bytes, throughput_milli: int, chain_id: int, contract: str
) -> bytes:
    """The 32-byte statement the verifier signs for a registration in trust mode.

    ``keccak256(abi.encode(ATTESTATION_TYPEHASH, address contract, uint256 chainId,
    address hospital, bytes32 challenge, uint256 throughput))``, ``throughput`` being what the
    verifier measured, in milli-samples per second (:func:`milli_samples`).
    """
    _check_bytes32("challenge", challenge)
    encoded = abi_encode(
        ["bytes32", "address", "uint256", "address", "bytes32", "uint256"],
        [ATTESTATION_TYPEHASH, _address(contract), _uint("chain id", chain_id),
         _address(hospital), bytes(challenge), _uint("throughput", throughput_milli)])
    return bytes(keccak(encoded))


def sign_attestation(
    verifier_key: bytes | str,
    hospital: str,
    challenge: bytes,
    throughput_milli: int,
    chain_id: int,
    contract: str,
) -> bytes:
    """The verifier's EIP-191 signature over :func:`attestation_digest` (65 bytes)."""
    from chainlearn_ray.chain.signing import sign_digest

    digest = attestation_digest(hospital, challenge, throughput_milli, chain_id, contract)
    return sign_digest(digest, verifier_key)


def milli_samples(throughput: float) -> int:
    """A throughput in samples per second as the contract takes it: milli-samples per second,
    rounded down."""
    value = float(throughput)
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"a throughput must be a finite non-negative number, got {throughput!r}")
    return int(value * 1000)


def update_commitment(
    model_hash: bytes, confidence: int, ece: int, model_type: ModelType | int, salt: bytes
) -> bytes:
    """A trust-mode commitment: ``keccak256(abi.encode(bytes32 modelHash, uint256 confidence,
    uint256 ece, uint8 modelType, bytes32 salt))``.

    ``salt`` must be 32 secret random bytes (``secrets.token_bytes(32)``), kept until the reveal.
    """
    _check_bytes32("model hash", model_hash)
    _check_bytes32("salt", salt)
    encoded = abi_encode(
        ["bytes32", "uint256", "uint256", "uint8", "bytes32"],
        [bytes(model_hash), _uint("confidence", confidence), _uint("ece", ece),
         int(ModelType(int(model_type))), bytes(salt)])
    return bytes(keccak(encoded))


def _check_bytes32(what: str, value: bytes) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise ConfigError(f"{what} must be exactly 32 bytes")


def _uint(what: str, value: int) -> int:
    """``value`` checked as a uint256 (ints and numpy integers, not floats or bools)."""
    try:
        number = operator.index(value)
    except TypeError:
        number = -1
    if isinstance(value, bool) or not 0 <= number < 2**256:
        raise ConfigError(f"{what} {value!r} is not a uint256")
    return number


def _address(address: str) -> bytes:
    """An ``address`` as its 20 bytes, checked."""
    from chainlearn_ray.chain.signing import address_bytes

    try:
        return address_bytes(address)
    except ChainlearnError as exc:
        raise ConfigError(str(exc)) from None
