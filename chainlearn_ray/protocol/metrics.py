"""Reliability and accuracy metrics of a hospital's model: confidence, ECE, accuracy, macro-F1."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from chainlearn_ray.errors import DataError, ModelError

logger = logging.getLogger(__name__)

#: Fixed-point scale shared with the contract (``SCALE = 10000``).
SCALE = 10_000


@dataclass(frozen=True)
class Reliability:
    """Self-reported reliability of a model on its metric split.

    Attributes
    ----------
    confidence, ece:
        The fractions in ``[0, 1]``.
    confidence_fixed, ece_fixed:
        The same numbers as the contract receives them (:func:`to_fixed`).
    n:
        Number of samples they were computed on.
    """

    confidence: float
    ece: float
    confidence_fixed: int
    ece_fixed: int
    n: int


def _check_probs(probs: np.ndarray) -> np.ndarray:
    """Validate an ``(N, C)`` probability matrix and return it as an array."""
    arr = np.asarray(probs)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"expected a non-empty (N, C) probability matrix, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"probabilities must be floating point, got {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ModelError("the model produced NaN or infinite probabilities: lower the learning "
                         "rate or check the input normalisation")
    return arr


def _check_labels(labels: np.ndarray, n: int) -> np.ndarray:
    """Validate integer labels of length ``n`` and return them as a flat int64 array."""
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DataError(f"expected {n} labels, got an array of shape {np.shape(labels)}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"labels must be integers, got {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def confidence(probs: np.ndarray) -> float:
    """Mean of the maximum class probability over samples.

    Parameters
    ----------
    probs:
        ``(N, C)`` softmax probabilities.

    Returns
    -------
    float
        The mean max-probability, computed in float64.
    """
    arr = _check_probs(probs)
    return float(np.mean(arr.max(axis=1), dtype=np.float64))


def _bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each confidence for ``n_bins`` equal-width bins ``[lo, hi)``, the last closed.

    Edges are ``k / n_bins`` rounded to the confidences' own dtype, so a float32 confidence
    of exactly ``0.9`` lands in ``[0.9, 1.0]`` as it does for a float64 one.
    """
    edges = (np.arange(n_bins + 1, dtype=np.float64) / n_bins).astype(conf.dtype)
    idx = np.searchsorted(edges, conf, side="right") - 1
    return np.clip(idx, 0, n_bins - 1)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error with equal-width confidence bins.

    ``ECE = Σ_b (n_b / N) · |mean confidence_b − accuracy_b|`` over ``n_bins`` bins
    ``[lo, hi)`` (the last bin ``[lo, 1]`` closed); empty bins are skipped. The predicted
    class is the first argmax.

    Parameters
    ----------
    probs:
        ``(N, C)`` softmax probabilities.
    labels:
        ``(N,)`` integer labels.
    n_bins:
        Number of bins (10 in the protocol).

    Returns
    -------
    float
        ECE as a fraction in ``[0, 1]``.
    """
    if n_bins < 1:
        raise DataError(f"n_bins must be at least 1, got {n_bins}")
    arr = _check_probs(probs)
    y = _check_labels(labels, arr.shape[0])
    conf = arr.max(axis=1)
    correct = (arr.argmax(axis=1) == y).astype(np.float64)
    bins = _bin_index(conf, n_bins)
    n = float(arr.shape[0])
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    conf_sum = np.bincount(bins, weights=conf.astype(np.float64), minlength=n_bins)
    acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    ece = 0.0
    for b in range(n_bins):
        if counts[b] == 0:
            continue
        gap = abs(conf_sum[b] / counts[b] - acc_sum[b] / counts[b])
        ece += (counts[b] / n) * gap
    return float(ece)


def accuracy(probs_or_preds: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of correct predictions.

    Parameters
    ----------
    probs_or_preds:
        ``(N, C)`` probabilities (the first argmax is the prediction) or ``(N,)`` labels.
    labels:
        ``(N,)`` integer labels.
    """
    arr = np.asarray(probs_or_preds)
    preds = _check_probs(arr).argmax(axis=1) if arr.ndim == 2 else arr
    y = _check_labels(labels, len(preds))
    if len(y) == 0:
        raise DataError("accuracy of an empty set is undefined")
    return float(np.mean(np.asarray(preds) == y))


def _class_pairs(preds: np.ndarray, labels: np.ndarray, n_classes: int,
                 what: str) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true labels as int arrays (probabilities become their argmax), checked:
    same length, not empty, within ``[0, n_classes)``."""
    arr = np.asarray(preds)
    p = _check_probs(arr).argmax(axis=1) if arr.ndim == 2 else arr.astype(np.int64)
    y = _check_labels(labels, len(p))
    if len(y) == 0:
        raise DataError(f"{what} of an empty set is undefined")
    if p.min() < 0 or y.min() < 0 or p.max() >= n_classes or y.max() >= n_classes:
        raise DataError(f"labels and predictions must lie in [0, {n_classes})")
    return p, y


def macro_f1(preds: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Macro-averaged F1 score.

    ``F1_c = 2·TP / (2·TP + FP + FN)`` averaged over the classes ``0 .. n_classes-1`` that occur
    in ``labels`` or ``preds`` (a class absent from both has no F1 and is skipped), matching
    scikit-learn's ``f1_score(average="macro")``.

    Parameters
    ----------
    preds:
        ``(N,)`` predicted labels, or ``(N, C)`` probabilities.
    labels:
        ``(N,)`` true labels.
    n_classes:
        Number of classes.
    """
    p, y = _class_pairs(preds, labels, n_classes, "macro-F1")
    confusion = np.bincount(y * n_classes + p, minlength=n_classes * n_classes)
    confusion = confusion.reshape(n_classes, n_classes).astype(np.float64)
    tp = np.diag(confusion)
    fn = confusion.sum(axis=1) - tp
    fp = confusion.sum(axis=0) - tp
    present = (confusion.sum(axis=1) + confusion.sum(axis=0)) > 0
    f1 = 2 * tp[present] / (2 * tp[present] + fp[present] + fn[present])
    return float(np.mean(f1))


def balanced_accuracy(preds: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Balanced accuracy: the recall of each class present in ``labels``, averaged.

    A model that predicts one class for everything scores ``1 / k`` with ``k`` classes present,
    whatever the class balance, which plain accuracy hides. Matches scikit-learn's
    ``balanced_accuracy_score`` (classes absent from ``labels`` are skipped).

    Parameters
    ----------
    preds:
        ``(N,)`` predicted labels, or ``(N, C)`` probabilities.
    labels:
        ``(N,)`` true labels.
    n_classes:
        Number of classes.
    """
    p, y = _class_pairs(preds, labels, n_classes, "balanced accuracy")
    support = np.bincount(y, minlength=n_classes).astype(np.float64)
    hits = np.bincount(y[p == y], minlength=n_classes).astype(np.float64)
    present = support > 0
    return float(np.mean(hits[present] / support[present]))


def to_fixed(x: float) -> int:
    """Fixed-point value sent to the contract: ``int(x · 10000)`` truncated, capped to [0, 10000].

    Raises
    ------
    ModelError
        If ``x`` is NaN (a diverged model).
    """
    value = float(x)
    if np.isnan(value):
        raise ModelError("a reliability metric is NaN: the model diverged; lower the learning rate")
    if value == float("inf"):
        return SCALE
    if value == float("-inf"):
        return 0
    return max(0, min(SCALE, int(value * SCALE)))


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> Reliability:
    """Confidence and ECE of ``probs`` against ``labels``, as fractions and fixed-point ints.

    Parameters
    ----------
    probs:
        ``(N, C)`` softmax probabilities on the metric (validation) split, fp32 in the protocol.
    labels:
        ``(N,)`` integer labels.
    n_bins:
        ECE bins (10 in the protocol).
    """
    conf = confidence(probs)
    ece = expected_calibration_error(probs, labels, n_bins)
    return Reliability(
        confidence=conf,
        ece=ece,
        confidence_fixed=to_fixed(conf),
        ece_fixed=to_fixed(ece),
        n=int(np.asarray(probs).shape[0]),
    )
