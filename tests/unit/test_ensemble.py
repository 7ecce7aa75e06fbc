"""Weighted softmax ensemble, zero-weight handling and the prediction hash."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from chainlearn_ray.errors import ChainlearnError, DataError
from chainlearn_ray.protocol.ensemble import (
    PREDICTION_HASH_TAG,
    ZeroWeightsError,
    predict,
    prediction_hash,
    weighted_ensemble,
)

P1 = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
P2 = np.array([[0.4, 0.6], [0.7, 0.3]], dtype=np.float32)


def test_weighted_average_by_hand() -> None:
    out = weighted_ensemble([P1, P2], [3, 1])
    expected = (3 * P1.astype(np.float64) + P2.astype(np.float64)) / 4
    np.testing.assert_allclose(out, expected)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert predict(out).tolist() == [0, 1]


def test_weights_change_the_prediction() -> None:
    assert predict(weighted_ensemble([P1, P2], [1, 10])).tolist() == [1, 0]
    assert predict(weighted_ensemble([P1, P2], [10, 1])).tolist() == [0, 1]


def test_zero_weight_member_is_ignored() -> None:
    np.testing.assert_allclose(weighted_ensemble([P1, P2], [5, 0]), P1.astype(np.float64))


def test_all_zero_weights_raise_by_default() -> None:
    with pytest.raises(ZeroWeightsError) as info:
        weighted_ensemble([P1, P2], [0, 0])
    assert isinstance(info.value, ChainlearnError)
    assert "on_zero" in str(info.value)


def test_all_zero_weights_equal_fallback_is_the_plain_mean() -> None:
    out = weighted_ensemble([P1, P2], [0, 0], on_zero="equal")
    np.testing.assert_allclose(out, (P1.astype(np.float64) + P2) / 2)
    # never a silent class 0: the fallback predicts what the members say
    assert predict(weighted_ensemble([P2, P2], [0, 0], on_zero="equal")).tolist() == [1, 0]


@pytest.mark.parametrize("weights", [[-1, 2], [1.5, 1], [True, 1]])
def test_bad_weights_rejected(weights: list[object]) -> None:
    with pytest.raises(DataError):
        weighted_ensemble([P1, P2], weights)  # type: ignore[arg-type]


def test_shape_mismatch_and_empty_rejected() -> None:
    with pytest.raises(DataError):
        weighted_ensemble([P1, P2[:1]], [1, 1])
    with pytest.raises(DataError):
        weighted_ensemble([], [])
    with pytest.raises(DataError):
        weighted_ensemble([P1], [1, 2])


def test_prediction_hash_preimage_is_documented_encoding() -> None:
    preds = np.array([0, 1, 258], dtype=np.int64)
    preimage = PREDICTION_HASH_TAG + (7).to_bytes(8, "big") + b"\x00\x00\x00\x01\x01\x02"
    assert prediction_hash(preds, 7) == hashlib.sha256(preimage).digest()
    assert len(prediction_hash(preds, 7)) == 32


def test_prediction_hash_depends_on_round_labels_and_order_not_dtype() -> None:
    preds = np.array([1, 0, 1])
    base = prediction_hash(preds, 1)
    assert prediction_hash(preds, 2) != base
    assert prediction_hash(np.array([0, 1, 1]), 1) != base
    assert prediction_hash(np.array([1, 0, 1, 0]), 1) != base
    assert prediction_hash(preds.astype(np.uint8), 1) == base


def test_prediction_hash_rejects_out_of_range() -> None:
    with pytest.raises(DataError):
        prediction_hash(np.array([70000]), 1)
    with pytest.raises(DataError):
        prediction_hash(np.array([-1]), 1)
    with pytest.raises(DataError):
        prediction_hash(np.array([0.5]), 1)
    with pytest.raises(DataError):
        prediction_hash(np.array([1]), -1)
