"""Paired significance tests and effect sizes: exact Wilcoxon (ties included), paired t,
percentile bootstrap, Holm's adjustment, Cohen's d_z and the rank-biserial correlation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy import stats as sps

#: Differences are rounded to this many decimals before ranking, so float noise is not a rank.
DIFF_DECIMALS: Final = 12
#: Largest number of non-zero tied differences whose exact null distribution is enumerated.
_MAX_EXACT_TIES: Final = 200


@dataclass(frozen=True)
class WilcoxonResult:
    """Outcome of a two-sided Wilcoxon signed-rank test of paired differences."""

    statistic: float
    pvalue: float
    n_nonzero: int
    method: str


def _tied_exact_pvalue(abs_diffs: np.ndarray, r_plus: float) -> float:
    """Exact two-sided p of ``r_plus`` under the sign-flip null with mid-ranks (ties allowed).

    Doubled mid-ranks are integers, so the null distribution of ``2 * r_plus`` is built exactly
    by convolving each rank's two equally likely signs.
    """
    ranks2 = np.rint(2.0 * sps.rankdata(abs_diffs)).astype(np.int64)
    dist = np.zeros(int(ranks2.sum()) + 1)
    dist[0] = 1.0
    for r in ranks2:
        shifted = np.zeros_like(dist)
        shifted[r:] = dist[: len(dist) - r]
        dist = 0.5 * dist + 0.5 * shifted
    t = round(2.0 * r_plus)
    cdf = float(dist[: t + 1].sum())
    sf = float(dist[t:].sum())
    return min(1.0, 2.0 * min(cdf, sf))


def wilcoxon_exact(diffs: np.ndarray) -> WilcoxonResult:
    """Exact two-sided Wilcoxon signed-rank test of paired differences.

    Zero differences are dropped (Wilcoxon's method). Without ties the p-value is
    ``scipy.stats.wilcoxon(..., method="exact")``; with tied absolute differences the exact
    sign-flip distribution of the mid-rank statistic is enumerated instead (scipy's "exact"
    table assumes no ties), falling back to the normal approximation beyond 200 differences.
    With no non-zero difference the p-value is 1.

    Parameters
    ----------
    diffs:
        Paired differences (method − baseline).

    Returns
    -------
    WilcoxonResult
        ``statistic`` is min(R+, R−) as in scipy; ``method`` names how p was obtained.
    """
    d = np.round(np.asarray(diffs, dtype=np.float64), DIFF_DECIMALS)
    d = d[np.isfinite(d) & (d != 0.0)]
    if d.size == 0:
        return WilcoxonResult(0.0, 1.0, 0, "no non-zero difference")
    abs_d = np.abs(d)
    if np.unique(abs_d).size == abs_d.size:
        res = sps.wilcoxon(d, method="exact")
        return WilcoxonResult(float(res.statistic), float(res.pvalue), int(d.size), "exact")
    ranks = sps.rankdata(abs_d)
    r_plus = float(ranks[d > 0].sum())
    stat = min(r_plus, float(ranks.sum()) - r_plus)
    if d.size <= _MAX_EXACT_TIES:
        p = _tied_exact_pvalue(abs_d, r_plus)
        return WilcoxonResult(stat, p, int(d.size), "exact (ties)")
    res = sps.wilcoxon(d, method="asymptotic")
    return WilcoxonResult(float(res.statistic), float(res.pvalue), int(d.size), "normal (ties)")


def min_exact_pvalue(n: int) -> float:
    """Smallest two-sided p an exact Wilcoxon test can reach with ``n`` non-zero pairs: 2 / 2**n."""
    return 1.0 if n <= 0 else min(1.0, 2.0 / 2.0**n)


def bootstrap_ci(
    diffs: np.ndarray, n_boot: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``diffs`` (NaN for n < 2).

    Parameters
    ----------
    diffs:
        Paired differences.
    n_boot:
        Bootstrap resamples.
    seed:
        Seed of the resampling generator (same seed and data -> same interval).
    level:
        Coverage of the interval.

    Returns
    -------
    tuple of float
        ``(low, high)``.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.size < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(n_boot, d.size))
    means = d[idx].mean(axis=1)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return (float(low), float(high))


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries are not in the family).

    The i-th smallest of the m p-values is multiplied by ``m - i`` (i from 0), running maxima
    keep the order, and values are capped at 1; the family-wise error rate is then controlled
    at the level the adjusted values are compared with.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    if finite.size == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out


def effect_dz(diffs: np.ndarray) -> float:
    """Cohen's d_z of paired differences: mean / sample std (NaN for n < 2 or no spread)."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size < 2:
        return math.nan
    sd = float(np.std(d, ddof=1))
    return math.nan if sd == 0.0 or not math.isfinite(sd) else float(d.mean()) / sd


def rank_biserial(diffs: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation (R+ − R−) / (R+ + R−) over non-zero differences
    (the Wilcoxon test's effect size, in [−1, 1]; NaN without a non-zero difference)."""
    d = np.round(np.asarray(diffs, dtype=np.float64), DIFF_DECIMALS)
    d = d[np.isfinite(d) & (d != 0.0)]
    if d.size == 0:
        return math.nan
    ranks = sps.rankdata(np.abs(d))
    r_plus, total = float(ranks[d > 0].sum()), float(ranks.sum())
    return (2.0 * r_plus - total) / total


def paired_ttest(diffs: np.ndarray) -> tuple[float, float, str]:
    """Paired t statistic and p from the differences; NaN when undefined (n < 2, zero spread)."""
    if diffs.size < 2:
        return (math.nan, math.nan, "")
    if np.ptp(np.round(diffs, DIFF_DECIMALS)) == 0.0:
        return (math.nan, math.nan, "t-test undefined: identical differences")
    res = sps.ttest_1samp(diffs, 0.0)
    return (float(res.statistic), float(res.pvalue), "")
