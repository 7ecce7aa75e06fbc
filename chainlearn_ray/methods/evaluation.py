"""Post-hoc methods on Ours' trained models: EqualWt-Ens, Local-*, Local-Best and the ablations.

Ours never shares parameters, so each hospital's final-round model *is* a local model trained on
its own shard with the shared budget; every method here only re-combines the models' test
probabilities with other weights. Nothing is retrained: the inputs are plain numbers and arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainlearn_ray.errors import DataError
from chainlearn_ray.methods.ablations import WeightFn, ablated_weight
from chainlearn_ray.methods.names import (
    EQUAL_WEIGHT,
    LOCAL_BEST,
    LOCAL_BY_TIER,
    MAJORITY,
    POSTHOC_ABLATIONS,
    ablation_method,
    result_row,
)
from chainlearn_ray.protocol.ensemble import weighted_ensemble
from chainlearn_ray.protocol.metrics import (
    accuracy,
    balanced_accuracy,
    confidence,
    expected_calibration_error,
    macro_f1,
)
from chainlearn_ray.protocol.tiers import TIERS, Tier
from chainlearn_ray.results.rows import RunKey
from chainlearn_ray.results.schema import ENSEMBLE

logger = logging.getLogger(__name__)

#: Methods :func:`evaluate_posthoc` computes by default.
POSTHOC_METHODS: tuple[str, ...] = (
    EQUAL_WEIGHT, *LOCAL_BY_TIER.values(), LOCAL_BEST,
    *(ablation_method(a) for a in POSTHOC_ABLATIONS),
)

#: Headline metrics, in row order.
HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "confidence", "ece")


@dataclass(frozen=True, eq=False)
class HospitalRecord:
    """One hospital's final-round outcome under Ours (plain data).

    Attributes
    ----------
    hospital_id:
        ``"h00"``, ...
    hardware_tier:
        Tier of its simulated hardware.
    tier:
        Tier it is registered with (selects its model family and its capacity multiplier).
    confidence_fixed, ece_fixed:
        Its last submitted metrics (fixed point), as the contract stores them.
    rounds_participated:
        Rounds it took part in.
    val_accuracy:
        Accuracy of its model on the validation (metric) split.
    test_probs:
        ``(N, C)`` softmax outputs of its model on the test split.
    """

    hospital_id: str
    hardware_tier: Tier
    tier: Tier
    confidence_fixed: int
    ece_fixed: int
    rounds_participated: int
    val_accuracy: float
    test_probs: np.ndarray


def headline_metrics(probs: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro-F1, confidence and ECE of ``(N, C)`` probabilities on
    the test labels: the one definition of a predictor's headline metrics.

    Confidence and ECE are measured on the same (test) predictions, as for Ours' ensemble.
    """
    return {
        "accuracy": accuracy(probs, labels),
        "balanced_accuracy": balanced_accuracy(probs, labels, n_classes),
        "macro_f1": macro_f1(probs, labels, n_classes),
        "confidence": confidence(probs),
        "ece": expected_calibration_error(probs, labels),
    }


def majority_metrics(train_counts: np.ndarray, labels: np.ndarray,
                     n_classes: int) -> dict[str, float]:
    """Majority: every test image gets the most frequent class of the pooled training data.

    The reference line below which a method has learnt nothing a class count would not tell:
    its accuracy is the test share of that class, its balanced accuracy ``1 / k``.

    Parameters
    ----------
    train_counts:
        Training samples per class, summed over the hospitals (``(C,)``; a ``(H, C)`` matrix of
        per-hospital counts is summed over hospitals). Ties go to the lower class index.
    labels:
        ``(N,)`` test labels.
    n_classes:
        Number of classes.
    """
    counts = np.asarray(train_counts)
    counts = counts.sum(axis=0) if counts.ndim == 2 else counts
    if counts.shape != (n_classes,) or counts.sum() <= 0:
        raise DataError(f"majority baseline: need {n_classes} non-negative class counts with a "
                        f"positive total, got {counts.tolist()}")
    n = len(np.asarray(labels).reshape(-1))
    probs = np.zeros((n, n_classes), dtype=np.float32)
    probs[:, int(np.argmax(counts))] = 1.0
    return headline_metrics(probs, labels, n_classes)


def majority_rows(key: RunKey, train_counts: np.ndarray, labels: np.ndarray,
                  n_classes: int) -> list[dict[str, Any]]:
    """The Majority baseline's headline rows (round 0, hospital ``"ensemble"``)."""
    metrics = majority_metrics(train_counts, labels, n_classes)
    return [result_row(key, MAJORITY, 0, ENSEMBLE, "", m, v) for m, v in metrics.items()]


def _check(records: Sequence[HospitalRecord], labels: np.ndarray) -> None:
    if not records:
        raise DataError("post-hoc evaluation needs at least one hospital record")
    ids = [r.hospital_id for r in records]
    if len(set(ids)) != len(ids):
        raise DataError(f"duplicate hospital ids in the records: {ids}")
    n = len(np.asarray(labels).reshape(-1))
    for r in records:
        if np.ndim(r.test_probs) != 2 or np.shape(r.test_probs)[0] != n:
            raise DataError(f"{r.hospital_id}: test probabilities of shape "
                            f"{np.shape(r.test_probs)} do not match {n} test labels")


def equal_weight(records: Sequence[HospitalRecord], labels: np.ndarray,
                 n_classes: int) -> dict[str, float]:
    """EqualWt-Ens: the unweighted mean of every hospital's softmax outputs."""
    _check(records, labels)
    probs = weighted_ensemble([r.test_probs for r in records], [1] * len(records))
    return headline_metrics(probs, labels, n_classes)


def local_tier(records: Sequence[HospitalRecord], tier: Tier | str | int, labels: np.ndarray,
               n_classes: int) -> dict[str, float] | None:
    """Local-<tier>: each metric averaged over the local models of hospitals registered as ``tier``.

    With one hospital per tier (the reference setting) this is that hospital's local model.
    Returns ``None`` when no hospital has that tier.
    """
    _check(records, labels)
    t = Tier.parse(tier)
    members = [r for r in records if r.tier == t]
    if not members:
        return None
    per = [headline_metrics(r.test_probs, labels, n_classes) for r in members]
    return {m: float(np.mean([p[m] for p in per])) for m in HEADLINE}


def select_local_best(records: Sequence[HospitalRecord]) -> HospitalRecord:
    """Local-Best: the hospital with the highest *validation* accuracy (ties: lowest id).

    The test split is never looked at, so the choice is not an oracle.
    """
    if not records:
        raise DataError("Local-Best needs at least one hospital record")
    return min(records, key=lambda r: (-float(r.val_accuracy), r.hospital_id))


def ablation_weights(records: Sequence[HospitalRecord], ablation: str | None,
                     weight_fn: WeightFn | None = None) -> list[int]:
    """Each hospital's weight under ``ablation`` (``None``: Ours' own weights).

    Parameters
    ----------
    weight_fn:
        ``(tier, conf, ece, rounds) -> int``; default :func:`chainlearn_ray.protocol.weights.
        compute_weight`; the runtime may pass the contract's ``calculateWeightPure``.
    """
    return [
        ablated_weight(ablation, r.tier, r.confidence_fixed, r.ece_fixed, r.rounds_participated,
                       weight_fn)
        for r in records
    ]


def weighted_metrics(records: Sequence[HospitalRecord], weights: Sequence[int],
                     labels: np.ndarray, n_classes: int) -> dict[str, float]:
    """Headline metrics of the weighted softmax ensemble (equal weights if all are zero)."""
    _check(records, labels)
    probs = weighted_ensemble([r.test_probs for r in records], weights, on_zero="equal")
    return headline_metrics(probs, labels, n_classes)


def _metric_rows(key: RunKey, method: str, round_: int, hospital: str, tier: str,
                 metrics: dict[str, float]) -> Iterable[dict[str, Any]]:
    return (result_row(key, method, round_, hospital, tier, m, metrics[m]) for m in HEADLINE)


def evaluate_posthoc(
    records: Sequence[HospitalRecord],
    labels: np.ndarray,
    n_classes: int,
    *,
    key: RunKey,
    round_: int,
    methods: Sequence[str] = POSTHOC_METHODS,
    weight_fn: WeightFn | None = None,
) -> list[dict[str, Any]]:
    """Tidy result rows of the post-hoc methods on Ours' final-round models.

    Rows per method: the headline metrics (:data:`HEADLINE`) under hospital ``"ensemble"``;
    Local-<tier> rows carry the tier label and an ``n_members`` row; Local-Best adds the
    chosen hospital's ``val_accuracy`` row under its id; each ablation adds every hospital's
    ``weight`` row.

    Parameters
    ----------
    records:
        The hospitals' final-round records.
    labels:
        Test labels.
    n_classes:
        Number of classes.
    key:
        The run's identifying columns (its ``method`` is replaced).
    round_:
        Round number written in the rows (the final round).
    methods:
        Which of :data:`POSTHOC_METHODS` to compute.
    weight_fn:
        Weight function for the ablations (see :func:`ablation_weights`).
    """
    _check(records, labels)
    unknown = [m for m in methods if m not in POSTHOC_METHODS]
    if unknown:
        raise DataError(f"not post-hoc methods: {unknown}; choose from {POSTHOC_METHODS}")
    rows: list[dict[str, Any]] = []
    for method in methods:
        if method == EQUAL_WEIGHT:
            rows.extend(_metric_rows(key, method, round_, ENSEMBLE, "",
                                     equal_weight(records, labels, n_classes)))
        elif method == LOCAL_BEST:
            best = select_local_best(records)
            metrics = headline_metrics(best.test_probs, labels, n_classes)
            rows.extend(_metric_rows(key, method, round_, ENSEMBLE, best.tier.label, metrics))
            rows.append(result_row(key, method, round_, best.hospital_id, best.tier.label,
                                   "val_accuracy", best.val_accuracy))
        elif method.startswith("ablation:"):
            weights = ablation_weights(records, method, weight_fn)
            metrics = weighted_metrics(records, weights, labels, n_classes)
            rows.extend(_metric_rows(key, method, round_, ENSEMBLE, "", metrics))
            rows.extend(result_row(key, method, round_, r.hospital_id, r.tier.label, "weight", w)
                        for r, w in zip(records, weights, strict=True))
        else:
            tier = next(t for t in TIERS if LOCAL_BY_TIER[t.label] == method)
            local = local_tier(records, tier, labels, n_classes)
            if local is None:
                logger.info("%s skipped: no hospital is registered as %s", method, tier.label)
                continue
            rows.extend(_metric_rows(key, method, round_, ENSEMBLE, tier.label, local))
            rows.append(result_row(key, method, round_, ENSEMBLE, tier.label, "n_members",
                                   sum(r.tier == tier for r in records)))
    return rows
