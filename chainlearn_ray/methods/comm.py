"""Communication cost, measured from the real bytes each method moves across a hospital's
boundary.

Per hospital and round, ``comm_bytes_up`` counts every byte the hospital sends and
``comm_bytes_down`` every byte it receives:

- FedAvg / FedProx: the model state up, the global model down.
- FedMD: its logits on the public set up, the consensus down.
- Ours: the signed ``submitUpdate`` transaction up, **and its softmax outputs on the evaluation
  split** up to the aggregator that forms the weighted ensemble (N × C float32); down, one
  32-byte weight per ensemble member as the aggregator reads it (the weights the ensemble needs).

Serving a trained predictor has a cost of its own, one row ``serve_bytes_per_query`` per run:
an ensemble sends each query image to every member model and gets C float32 probabilities back
from each (``members × (image bytes + 4·C)``); a single model (FedAvg, FedProx, FedMD's own
model, Centralized) answers where it is held, with 0 bytes on the network.
"""

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
#: Bytes on the network to answer one query with the method's final predictor.
SERVE = "serve_bytes_per_query"


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


def _count(name: str, v: int) -> int:
    if isinstance(v, bool) or int(v) != v or int(v) < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {v!r}")
    return int(v)


def ours_comm_bytes(calldata_len: int, weight_reads: int, prediction_bytes: int = 0) -> CommBytes:
    """Ours' traffic of one hospital in one round.

    Up: the length of its raw signed ``submitUpdate`` transaction (the bytes relayed to the
    chain) plus ``prediction_bytes``, its softmax outputs on the evaluation split sent to the
    aggregator. Down: :data:`WEIGHT_READ_BYTES` (one 32-byte ABI word) per ensemble weight read.
    The model itself never leaves the hospital.

    Parameters
    ----------
    calldata_len:
        ``len(raw_signed_transaction)``.
    weight_reads:
        Weights read back for the ensemble (one per participating hospital).
    prediction_bytes:
        ``array_bytes(test_probs)`` of the hospital's round report.
    """
    up = _count("calldata_len", calldata_len) + _count("prediction_bytes", prediction_bytes)
    return CommBytes(up, WEIGHT_READ_BYTES * _count("weight_reads", weight_reads))


def ensemble_serve_bytes(members: int, image_bytes: int, n_classes: int) -> int:
    """Bytes on the network to answer one query with an ensemble of ``members`` models held at
    their hospitals: the image to each, ``n_classes`` float32 probabilities back from each."""
    return _count("members", members) * (_count("image_bytes", image_bytes)
                                         + 4 * _count("n_classes", n_classes))


def comm_rows(key: RunKey, method: str, round_: int, hospital: str, tier: str,
              comm: CommBytes) -> list[dict[str, Any]]:
    """The two tidy rows ``comm_bytes_up`` and ``comm_bytes_down`` of one hospital and round."""
    return [
        result_row(key, method, round_, hospital, tier, COMM_UP, comm.up),
        result_row(key, method, round_, hospital, tier, COMM_DOWN, comm.down),
    ]
