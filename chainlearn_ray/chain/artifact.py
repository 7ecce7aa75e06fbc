"""The compiled FLCoordinator artifact shipped as package data, its loader and its hash."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from chainlearn_ray.errors import ArtifactError

logger = logging.getLogger(__name__)

#: The artifact file inside the installed package.
ARTIFACT_PATH = Path(__file__).with_name("FLCoordinator.json")

#: Environment variable that points at a ``contracts/`` folder outside the source checkout.
CONTRACTS_DIR_ENV = "CHAINLEARN_CONTRACTS_DIR"


@dataclass(frozen=True)
class ContractArtifact:
    """ABI and bytecode of the FLCoordinator contract with the provenance of the build.

    Attributes
    ----------
    abi:
        The contract ABI (functions, events and custom errors).
    bytecode:
        Creation bytecode, ``0x``-prefixed hex.
    deployed_bytecode:
        Runtime bytecode, ``0x``-prefixed hex.
    compiler_version:
        Full solc version string used for the build.
    settings:
        Compiler settings (optimizer, EVM version, ...).
    source_sha256:
        SHA-256 (hex) of ``contracts/FLCoordinator.sol`` at build time.
    immutable_ranges:
        ``(start, length)`` byte ranges of the runtime code holding immutable values, which the
        constructor fills in (zeros in ``deployed_bytecode``).
    """

    abi: tuple[dict[str, Any], ...]
    bytecode: str
    deployed_bytecode: str
    compiler_version: str
    settings: dict[str, Any]
    source_sha256: str
    immutable_ranges: tuple[tuple[int, int], ...] = ()

    def matches_deployed(self, code: bytes) -> bool:
        """Whether ``code`` (a deployed contract's runtime code) is this build's, immutable
        values aside."""
        expected = bytearray.fromhex(self.deployed_bytecode.removeprefix("0x"))
        actual = bytearray(code)
        if len(actual) != len(expected):
            return False
        for start, length in self.immutable_ranges:
            actual[start : start + length] = bytes(length)
        return actual == expected

    def error_abis(self) -> tuple[dict[str, Any], ...]:
        """The ABI entries of the contract's custom errors."""
        return tuple(item for item in self.abi if item.get("type") == "error")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(
            f"contract artifact {path} is missing: reinstall chainlearn_ray, or rebuild it with "
            "`chainlearn build-contract` (needs Node.js and `npm ci` in contracts/)"
        ) from None


def artifact_sha256(path: Path | None = None) -> str:
    """SHA-256 (hex) of the artifact file, as recorded in run manifests.

    Parameters
    ----------
    path:
        Artifact file; the shipped one by default.

    Returns
    -------
    str
        64 lowercase hex characters.
    """
    return hashlib.sha256(_read_bytes(path or ARTIFACT_PATH)).hexdigest()


@lru_cache(maxsize=4)
def _load_cached(path: Path) -> ContractArtifact:
    try:
        data = json.loads(_read_bytes(path))
        return ContractArtifact(
            abi=tuple(data["abi"]),
            bytecode=str(data["bytecode"]),
            deployed_bytecode=str(data["deployedBytecode"]),
            compiler_version=str(data["compiler"]["version"]),
            settings=dict(data["settings"]),
            source_sha256=str(data["sourceSha256"]),
            immutable_ranges=tuple(
                (int(r["start"]), int(r["length"])) for r in data.get("immutableReferences", ())
            ),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(
            f"contract artifact {path} is malformed ({exc}): rebuild it with "
            "`chainlearn build-contract`"
        ) from exc


def load_artifact(path: Path | None = None) -> ContractArtifact:
    """Load (and cache) the contract artifact.

    Parameters
    ----------
    path:
        Artifact file; the shipped package data by default.

    Returns
    -------
    ContractArtifact
        The parsed artifact.

    Raises
    ------
    ArtifactError
        When the file is missing or malformed.
    """
    return _load_cached((path or ARTIFACT_PATH).resolve())


def contracts_dir() -> Path | None:
    """The ``contracts/`` folder (Solidity source, npm build), or ``None`` when not available.

    Looks at ``$CHAINLEARN_CONTRACTS_DIR`` first, then next to the package in a source
    checkout (editable installs).
    """
    env = os.environ.get(CONTRACTS_DIR_ENV)
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "contracts")
    for candidate in candidates:
        if (candidate / "FLCoordinator.sol").is_file():
            return candidate
    return None


def source_sha256(contracts: Path) -> str:
    """SHA-256 (hex) of ``FLCoordinator.sol`` in a ``contracts/`` folder."""
    return hashlib.sha256((contracts / "FLCoordinator.sol").read_bytes()).hexdigest()
