"""The project's exception tree: every error a user can hit is a ``ChainlearnError``."""

from __future__ import annotations

from typing import Any


class ChainlearnError(Exception):
    """Root of every error chainlearn_ray raises on purpose; the message says what to do."""


class ConfigError(ChainlearnError, ValueError):
    """A configuration value is invalid or inconsistent."""


class DataError(ChainlearnError):
    """A dataset file is missing, malformed or cannot be partitioned as asked."""


class ModelError(ChainlearnError):
    """A model cannot be built (unknown architecture, missing pretrained weights, ...)."""


class ResourceError(ChainlearnError):
    """The requested Ray resources cannot be satisfied by the cluster."""


class ChainError(ChainlearnError):
    """Base of every blockchain-layer error."""


class RpcUnreachableError(ChainError):
    """A JSON-RPC node could not be reached after bounded retries."""


class ArtifactError(ChainError):
    """The shipped contract artifact is missing or does not match its source."""


class ContractRevertError(ChainError):
    """A contract call reverted; carries the custom error's name and decoded arguments.

    Parameters
    ----------
    error_name:
        Name of the Solidity custom error (e.g. ``"FLCoordinator__NotRegistered"``),
        or ``"Error"``/``"Panic"``/``"unknown"`` for other reverts.
    args:
        Decoded arguments of the custom error, in declaration order.
    """

    def __init__(self, error_name: str, args: tuple[Any, ...] = (), message: str | None = None):
        self.error_name = error_name
        self.args_decoded = tuple(args)
        text = message or f"contract reverted with {error_name}{tuple(args)!r}"
        super().__init__(text)


class HospitalFailure(ChainlearnError):
    """A hospital raised, died or timed out during a round."""
