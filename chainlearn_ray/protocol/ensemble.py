"""Weighted softmax ensemble from on-chain integer weights, and its bytes32 prediction hash."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np

from chainlearn_ray.errors import ChainlearnError, DataError

logger = logging.getLogger(__name__)

#: Domain tag that starts the prediction-hash preimage (versioned encoding).
PREDICTION_HASH_TAG = b"chainlearn-ensemble-v1"


class ZeroWeightsError(ChainlearnError, ValueError):
    """Every ensemble weight is zero, so the weighted average is undefined."""


def weighted_ensemble(
    probs: Sequence[np.ndarray],
    weights: Sequence[int],
    *,
    on_zero: Literal["raise", "equal"] = "raise",
) -> np.ndarray:
    """Weighted average of the members' softmax outputs: ``Σ w_i p_i / Σ w_i``.

    Parameters
    ----------
    probs:
        One ``(N, C)`` probability matrix per member, all of the same shape.
    weights:
        Non-negative integer weights as read from the contract, one per member.
    on_zero:
        What to do when every weight is zero: ``"raise"`` (default) raises
        :class:`ZeroWeightsError`; ``"equal"`` falls back to the equal-weight average of all
        members (logged as a warning). A zero-weight ensemble never silently predicts class 0.

    Returns
    -------
    numpy.ndarray
        ``(N, C)`` float64 ensemble probabilities (members are summed in their given order).
    """
    if len(probs) == 0:
        raise DataError("the ensemble has no members")
    if len(probs) != len(weights):
        raise DataError(f"{len(probs)} probability matrices but {len(weights)} weights")
    if on_zero not in ("raise", "equal"):
        raise DataError(f"on_zero must be 'raise' or 'equal', got {on_zero!r}")
    ints: list[int] = []
    for w in weights:
        if isinstance(w, bool) or int(w) != w or int(w) < 0:
            raise DataError(f"ensemble weights must be non-negative integers, got {w!r}")
        ints.append(int(w))
    shape = np.shape(probs[0])
    if len(shape) != 2:
        raise DataError(f"member probabilities must be (N, C), got shape {shape}")
    for p in probs:
        if np.shape(p) != shape:
            raise DataError(f"members disagree on shape: {np.shape(p)} vs {shape}")
    total = sum(ints)
    if total == 0:
        if on_zero == "raise":
            raise ZeroWeightsError(
                "all ensemble weights are zero (no member earned weight this round); pass "
                "on_zero='equal' to fall back to equal weights"
            )
        logger.warning("all %d ensemble weights are zero: using equal weights", len(ints))
        ints = [1] * len(ints)
        total = len(ints)
    acc = np.zeros(shape, dtype=np.float64)
    for p, w in zip(probs, ints, strict=True):
        if w:
            acc += float(w) * np.asarray(p, dtype=np.float64)
    return acc / float(total)


def predict(probs: np.ndarray) -> np.ndarray:
    """Predicted labels (first argmax of each row) as int64."""
    arr = np.asarray(probs)
    if arr.ndim != 2:
        raise DataError(f"expected (N, C) probabilities, got shape {arr.shape}")
    return arr.argmax(axis=1).astype(np.int64)


def prediction_hash(preds: np.ndarray, round: int) -> bytes:
    """SHA-256 of the ensemble's predicted labels for a round, as the contract's bytes32.

    Preimage: ``b"chainlearn-ensemble-v1"`` ‖ ``round`` as an 8-byte big-endian unsigned int ‖
    each label as a 2-byte big-endian unsigned int, in sample order.

    Parameters
    ----------
    preds:
        ``(N,)`` predicted labels in ``[0, 65535]``.
    round:
        Round number the prediction belongs to.
    """
    labels = np.asarray(preds)
    if labels.ndim != 1:
        raise DataError(f"predictions must be a 1-D label array, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"predictions must be integer labels, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() > 0xFFFF):
        raise DataError("predicted labels must lie in [0, 65535]")
    if not 0 <= int(round) < 2**64:
        raise DataError(f"round must fit in an unsigned 64-bit integer, got {round}")
    body = labels.astype(">u2").tobytes()
    return hashlib.sha256(PREDICTION_HASH_TAG + int(round).to_bytes(8, "big") + body).digest()
