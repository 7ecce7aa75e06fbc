"""Communication cost per hospital per round, measured from the real bytes each method sends."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.methods.names import result_row
from chainlearn_ray.results.rows import RunKey

if TYPE_CHECKING:  # torch loads where models are trained, not where rows are written
    from torch import Tensor, nn

logger = logging.getLogger(__name__)

#: Bytes of one ``uint256`` weight as an ``eth_call`` returns it (one ABI word).
WEIGHT_READ_BYTES = 32

COMM_UP = "comm_bytes_up"
COMM_DOWN = "comm_bytes_down"


class CommBytes(NamedTuple):
    """Bytes one hospital sends (``up``) and receives (``down``) in one round."""

    up: int
    down: int


def state_bytes(state: nn.Module | Mapping[str, Tensor]) -> int:
    """Size of a model on the wire: ``len(hashing.state_dict_bytes(state))``."""
    from chainlearn_ray.learning.hashing import state_dict_bytes

    return len(state_dict_bytes(state))


def array_bytes(arr: np.ndarray) -> int:
    """Size of an array sent as raw float32 values (FedMD logits and consensus)."""
    return len(np.ascontiguousarray(arr, dtype=np.float32).tobytes())


def ours_comm_bytes(calldata_len: int, weight_reads: int) -> CommBytes:
    """Ours' traffic of one hospital in one round.

    Up: the length of its raw signed ``submitUpdate`` transaction (the bytes relayed to the
    chain). Down: :data:`WEIGHT_READ_BYTES` (one 32-byte ABI word) per ensemble weight read.
    Models and predictions never leave the hospital.

    Parameters
    ----------
    calldata_len:
        ``len(raw_signed_transaction)``.
    weight_reads:
        Weights read back for the ensemble (one per participating hospital).
    """
    for name, v in (("calldata_len", calldata_len), ("weight_reads", weight_reads)):
        if isinstance(v, bool) or int(v) != v or int(v) < 0:
            raise ConfigError(f"{name} must be a non-negative integer, got {v!r}")
    return CommBytes(int(calldata_len), WEIGHT_READ_BYTES * int(weight_reads))


def comm_rows(key: RunKey, method: str, round_: int, hospital: str, tier: str,
              comm: CommBytes) -> list[dict[str, Any]]:
    """The two tidy rows ``comm_bytes_up`` and ``comm_bytes_down`` of one hospital and round."""
    return [
        result_row(key, method, round_, hospital, tier, COMM_UP, comm.up),
        result_row(key, method, round_, hospital, tier, COMM_DOWN, comm.down),
    ]
