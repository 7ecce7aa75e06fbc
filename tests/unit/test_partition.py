"""Dirichlet label-skew partitions: coverage, determinism, skew, minimum shard size."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlearn_ray.data.partition import ALPHAS, Partition, dirichlet_partition, parse_alpha
from chainlearn_ray.errors import ConfigError, DataError

LABELS = np.random.default_rng(0).integers(0, 3, 900)


def check_exact_cover(labels: np.ndarray, part: Partition) -> None:
    """Shards are sorted, disjoint, cover every index once and match class_counts."""
    joined = np.concatenate(part.indices)
    assert sorted(joined.tolist()) == list(range(len(labels)))
    for h, idx in enumerate(part.indices):
        assert idx.dtype == np.int64
        assert np.all(np.diff(idx) > 0)
        counts = np.bincount(labels[idx], minlength=part.class_counts.shape[1])
        np.testing.assert_array_equal(counts, part.class_counts[h])


def test_parse_alpha_names_and_numbers() -> None:
    assert parse_alpha("mild") == 1.0 and parse_alpha("Moderate") == 0.5
    assert parse_alpha("severe") == 0.1 and parse_alpha(0.3) == 0.3 and parse_alpha("2") == 2.0
    for bad in ("extreme", 0, -1.0, float("nan"), True):
        with pytest.raises(ConfigError):
            parse_alpha(bad)  # type: ignore[arg-type]
    assert ALPHAS == {"mild": 1.0, "moderate": 0.5, "severe": 0.1}


@pytest.mark.parametrize("n", [1, 2, 3, 10])
@pytest.mark.parametrize("alpha", ["mild", "moderate", "severe"])
def test_every_sample_assigned_once(n: int, alpha: str) -> None:
    part = dirichlet_partition(LABELS, n, alpha, seed=42, min_size=5)
    check_exact_cover(LABELS, part)
    assert part.n_hospitals == n and part.class_counts.shape == (n, 3)
    assert part.sizes.min() >= 5 and part.alpha == ALPHAS[alpha] and part.seed == 42


def test_same_seed_same_shards_other_seed_differs() -> None:
    a = dirichlet_partition(LABELS, 5, 0.5, seed=7)
    b = dirichlet_partition(LABELS, 5, 0.5, seed=7)
    c = dirichlet_partition(LABELS, 5, 0.5, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a.indices, b.indices, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a.indices, c.indices, strict=True))


def test_lower_alpha_means_more_label_skew() -> None:
    labels = np.repeat(np.arange(4), 500)

    def skew(alpha: float) -> float:
        values = []
        for seed in range(10):
            part = dirichlet_partition(labels, 8, alpha, seed=seed, min_size=1,
                                       strategy="auto")
            frac = part.class_counts / part.sizes[:, None]
            values.append(float(np.mean(frac.max(axis=1))))
        return float(np.mean(values))

    assert skew(0.1) > skew(1.0) + 0.2
    assert skew(100.0) < 0.35  # near IID: dominant class close to 1/4


def test_proportions_follow_the_dirichlet_draw() -> None:
    # with one class and alpha large the shares approach 1/N
    labels = np.zeros(10_000, dtype=np.int64)
    part = dirichlet_partition(labels, 4, 1000.0, seed=0)
    assert np.all(np.abs(part.sizes / 10_000 - 0.25) < 0.03)


def test_resampling_reaches_min_size_and_counts_attempts() -> None:
    part = dirichlet_partition(LABELS, 10, "severe", seed=3, min_size=20)
    assert part.sizes.min() >= 20 and part.attempts >= 1 and part.topped_up == 0


def test_impossible_minimum_is_an_error() -> None:
    with pytest.raises(DataError, match="exceeds"):
        dirichlet_partition(LABELS, 100, 1.0, seed=0, min_size=10)


def test_unreachable_minimum_after_max_tries() -> None:
    labels = np.repeat(np.arange(2), 500)
    with pytest.raises(DataError, match="top_up"):
        dirichlet_partition(labels, 48, "severe", seed=0, min_size=15, max_tries=20)


@pytest.mark.parametrize("strategy", ["top_up", "auto"])
def test_top_up_meets_minimum_and_keeps_skew(strategy: str) -> None:
    labels = np.repeat(np.arange(2), 2000)
    part = dirichlet_partition(labels, 48, "severe", seed=0, min_size=30, max_tries=20,
                               strategy=strategy)  # type: ignore[arg-type]
    check_exact_cover(labels, part)
    assert part.sizes.min() == 30 and part.topped_up > 0
    frac = part.class_counts / part.sizes[:, None]
    assert np.mean(frac.max(axis=1)) > 0.85  # still strongly label-skewed
    assert part.attempts == (1 if strategy == "top_up" else 20)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), alpha=st.sampled_from([0.05, 0.1, 0.5, 1.0, 10.0]),
       min_size=st.integers(0, 25), seed=st.integers(0, 2**31))
def test_top_up_always_valid(n: int, alpha: float, min_size: int, seed: int) -> None:
    labels = np.random.default_rng(seed).integers(0, 4, 800)
    part = dirichlet_partition(labels, n, alpha, seed=seed, min_size=min_size,
                               strategy="top_up")
    check_exact_cover(labels, part)
    assert part.sizes.min() >= min_size


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        dirichlet_partition(LABELS, 0, 1.0, seed=0)
    with pytest.raises(ConfigError):
        dirichlet_partition(LABELS, 2, 1.0, seed=0, strategy="greedy")  # type: ignore[arg-type]
    with pytest.raises(DataError):
        dirichlet_partition(LABELS.astype(float), 2, 1.0, seed=0)
    with pytest.raises(DataError):
        dirichlet_partition(LABELS, 2, 1.0, seed=0, n_classes=2)
    with pytest.raises(DataError):
        dirichlet_partition(np.array([], dtype=np.int64), 1, 1.0, seed=0, min_size=0)


def test_class_counts_include_absent_classes() -> None:
    part = dirichlet_partition(np.array([0, 0, 2, 2, 2, 0]), 2, 1.0, seed=0, min_size=1,
                               n_classes=4)
    assert part.class_counts.shape == (2, 4)
    assert part.class_counts[:, 1].sum() == 0 and part.class_counts[:, 3].sum() == 0
