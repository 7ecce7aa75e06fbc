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

from eth_hash.auto import keccak

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
    words = [_address_word(contract), _uint_word("chain id", chain_id), _address_word(hospital),
             name_hash(name), int(Tier.parse(tier)).to_bytes(32, "big"), bytes(bench_hash)]
    if challenge is not None:
        _check_bytes32("challenge", challenge)
        words.append(bytes(challenge))
    # abi.encode of static types: each value one 32-byte big-endian word
    return bytes(keccak(b"".join(words)))


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
    words = (ATTESTATION_TYPEHASH, _address_word(contract), _uint_word("chain id", chain_id),
             _address_word(hospital), bytes(challenge),
             _uint_word("throughput", throughput_milli))  # fmt: skip
    return bytes(keccak(b"".join(words)))


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
    words = (bytes(model_hash), _uint_word("confidence", confidence), _uint_word("ece", ece),
             int(ModelType(int(model_type))).to_bytes(32, "big"), bytes(salt))  # fmt: skip
    return bytes(keccak(b"".join(words)))


def _check_bytes32(what: str, value: bytes) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise ConfigError(f"{what} must be exactly 32 bytes")


def _uint_word(what: str, value: int) -> bytes:
    try:
        number = operator.index(value)  # ints and numpy integers, not floats
    except TypeError:
        number = -1
    if isinstance(value, bool) or not 0 <= number < 2**256:
        raise ConfigError(f"{what} {value!r} is not a uint256")
    return number.to_bytes(32, "big")


def _address_word(address: str) -> bytes:
    """An ``address`` as its ABI word (left-padded to 32 bytes)."""
    from chainlearn_ray.chain.signing import address_bytes

    try:
        return address_bytes(address).rjust(32, b"\0")
    except ChainlearnError as exc:
        raise ConfigError(str(exc)) from None
