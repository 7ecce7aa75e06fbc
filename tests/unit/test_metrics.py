"""Hand-computed cases for confidence, ECE (edge bins included), accuracy, macro-F1, fixed point."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import balanced_accuracy_score, f1_score

from chainlearn_ray.errors import DataError, ModelError
from chainlearn_ray.protocol.metrics import (
    SCALE,
    accuracy,
    balanced_accuracy,
    confidence,
    expected_calibration_error,
    macro_f1,
    reliability,
    to_fixed,
)


def two_class(p1: list[float]) -> np.ndarray:
    """Probabilities (1 - p, p) for each p."""
    p = np.asarray(p1, dtype=np.float64)
    return np.stack([1 - p, p], axis=1)


def test_confidence_is_mean_max_probability() -> None:
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.5, 0.5]])
    assert confidence(probs) == pytest.approx((0.9 + 0.7 + 0.5) / 3)


def test_ece_hand_computed_two_bins() -> None:
    # conf 0.95, 0.85 (bins 9 and 8); first correct, second wrong
    probs = np.array([[0.95, 0.05], [0.15, 0.85]])
    labels = np.array([0, 0])
    # bin 9: n=1, conf .95 acc 1 -> .05 ; bin 8: n=1, conf .85 acc 0 -> .85
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.05 + 0.5 * 0.85)


def test_ece_pools_samples_of_one_bin() -> None:
    # four samples in bin [0.6, 0.7): mean conf 0.65, accuracy 0.5 -> |0.65-0.5| = 0.15
    probs = two_class([0.6, 0.62, 0.68, 0.7 - 1e-9])
    labels = np.array([1, 1, 0, 0])
    assert expected_calibration_error(probs, labels) == pytest.approx(
        abs(np.mean([0.6, 0.62, 0.68, 0.7 - 1e-9]) - 0.5))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_confidence_exactly_point_nine_falls_in_the_last_bin(dtype: type) -> None:
    # 0.9 belongs to [0.9, 1.0]; 0.8999 to [0.8, 0.9). With both in one bin the gaps would
    # cancel (mean conf 0.85 vs acc 0.5 -> 0.35); in separate bins the ECE is the mean gap.
    probs = np.array([[0.1, 0.9], [0.1001, 0.8999]], dtype=dtype)
    labels = np.array([1, 0])
    ece = expected_calibration_error(probs, labels)
    conf = probs.max(axis=1).astype(np.float64)
    separate = 0.5 * abs(conf[0] - 1.0) + 0.5 * abs(conf[1] - 0.0)
    assert ece == pytest.approx(separate, abs=1e-6)
    pooled = abs(conf.mean() - 0.5)
    assert abs(ece - pooled) > 0.05


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_confidence_one_is_in_the_closed_last_bin(dtype: type) -> None:
    probs = np.array([[0.0, 1.0], [0.05, 0.95]], dtype=dtype)
    labels = np.array([1, 0])
    # both in bin 9: mean conf 0.975, accuracy 0.5
    assert expected_calibration_error(probs, labels) == pytest.approx(0.475, abs=1e-6)


def test_empty_bins_are_skipped_and_perfect_calibration_is_zero() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, np.array([0, 1])) == 0.0


def test_bin_edges_at_tenths_go_up() -> None:
    # 0.3 * 10 is not exactly 3 in floating point: 0.3 must still open [0.3, 0.4), not join
    # 0.29 in [0.2, 0.3)
    probs = np.array([[0.3, 0.25, 0.25, 0.2], [0.29, 0.24, 0.24, 0.23]])
    labels = np.array([0, 1])
    separate = 0.5 * abs(0.3 - 1.0) + 0.5 * abs(0.29 - 0.0)
    assert expected_calibration_error(probs, labels) == pytest.approx(separate)


def test_equal_confidences_share_a_bin() -> None:
    single = expected_calibration_error(np.array([[0.7, 0.3], [0.3, 0.7]]), np.array([0, 0]))
    assert single == pytest.approx(abs(0.7 - 0.5))


def test_accuracy_from_probs_and_labels() -> None:
    probs = np.array([[0.6, 0.4], [0.2, 0.8], [0.5, 0.5]])
    labels = np.array([0, 0, 0])
    assert accuracy(probs, labels) == pytest.approx(2 / 3)  # tie -> first class
    assert accuracy(np.array([1, 1, 0]), labels) == pytest.approx(1 / 3)


def test_macro_f1_hand_computed() -> None:
    labels = np.array([0, 0, 1, 1, 2])
    preds = np.array([0, 1, 1, 1, 0])
    # class 0: tp1 fp1 fn1 -> 0.5 ; class 1: tp2 fp1 fn0 -> 0.8 ; class 2: tp0 fp0 fn1 -> 0
    assert macro_f1(preds, labels, 3) == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_macro_f1_skips_classes_absent_from_both() -> None:
    labels = np.array([0, 1, 1])
    preds = np.array([0, 1, 0])
    # class 2 never occurs: average over classes 0 and 1 only
    assert macro_f1(preds, labels, 3) == pytest.approx((2 / 3 + 2 / 3) / 2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_macro_f1_matches_scikit_learn(pairs: list[tuple[int, int]]) -> None:
    labels = np.array([a for a, _ in pairs])
    preds = np.array([b for _, b in pairs])
    ref = f1_score(labels, preds, average="macro", zero_division=0)
    assert macro_f1(preds, labels, 4) == pytest.approx(ref)


def test_balanced_accuracy_of_a_one_class_model_is_one_over_k() -> None:
    labels = np.array([1] * 62 + [0] * 38)
    assert accuracy(np.ones(100, dtype=np.int64), labels) == pytest.approx(0.62)
    assert balanced_accuracy(np.ones(100, dtype=np.int64), labels, 2) == pytest.approx(0.5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_balanced_accuracy_matches_scikit_learn(pairs: list[tuple[int, int]]) -> None:
    labels = np.array([a for a, _ in pairs])
    preds = np.array([b for _, b in pairs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns of predicted classes absent from y
        ref = balanced_accuracy_score(labels, preds)
    assert balanced_accuracy(preds, labels, 4) == pytest.approx(ref)


@pytest.mark.parametrize(
    ("x", "fixed"),
    [(0.0, 0), (1.0, 10000), (0.12345, 1234), (0.99999, 9999), (0.5, 5000),
     (1.5, 10000), (-0.2, 0), (0.00009, 0), (float("inf"), 10000)],
)
def test_to_fixed_truncates_and_caps(x: float, fixed: int) -> None:
    assert to_fixed(x) == fixed


def test_to_fixed_rejects_nan() -> None:
    with pytest.raises(ModelError):
        to_fixed(float("nan"))


def test_reliability_bundles_fractions_and_fixed_point() -> None:
    probs = np.array([[0.95, 0.05], [0.15, 0.85]], dtype=np.float32)
    rel = reliability(probs, np.array([0, 0]))
    assert rel.confidence == pytest.approx(0.9, abs=1e-6)
    assert rel.ece == pytest.approx(0.45, abs=1e-6)
    assert rel.confidence_fixed == int(rel.confidence * SCALE)
    assert rel.ece_fixed == int(rel.ece * SCALE)
    assert rel.n == 2


def test_nan_probabilities_and_bad_shapes_raise() -> None:
    with pytest.raises(ModelError):
        confidence(np.array([[np.nan, 1.0]]))
    with pytest.raises(DataError):
        expected_calibration_error(np.ones((3, 2)) / 2, np.array([0, 1]))
    with pytest.raises(DataError):
        confidence(np.ones(3))
