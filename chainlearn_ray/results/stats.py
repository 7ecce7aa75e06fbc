"""Headline metrics over seeds, comparison tables and paired significance tests."""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from scipy import stats as sps

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.results.schema import ENSEMBLE
from chainlearn_ray.results.tables import (
    ABLATION_PREFIX,
    ATTACK_PREFIX,
    comparison_table,
    display_name,
    order_methods,
)

logger = logging.getLogger(__name__)

#: Metrics reported for a method's final predictor (hospital ``"ensemble"``).
HEADLINE_METRICS: Final = ("accuracy", "macro_f1", "ece", "confidence")
#: Two-sided significance level used by the "can reach p < 0.05" flag.
ALPHA_LEVEL: Final = 0.05
#: Differences are rounded to this many decimals before ranking, so float noise is not a rank.
_DIFF_DECIMALS: Final = 12
#: Largest number of non-zero tied differences whose exact null distribution is enumerated.
_MAX_EXACT_TIES: Final = 200
#: Fewest pairs for which a t-test and a bootstrap interval are reported: below it the
#: interval is little more than the range of the differences and the t-test has almost no
#: degrees of freedom, so both would read as evidence they are not.
MIN_PAIRS: Final = 5
#: How p-values are adjusted within a table's family of comparisons against the baseline.
ADJUSTMENT: Final = "Holm"

_CELL = ["dataset", "alpha", "seed", "method"]


def headline(df: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """One value per dataset × alpha × seed × method: the ensemble's ``metric`` at its last round.

    The last round is the largest ``round`` of that run and method among the ensemble rows of
    ``metric`` (round-free methods store round 0). Several runs of the same cell (a re-run)
    are averaged, with a warning.

    Parameters
    ----------
    df:
        Results rows (see :mod:`chainlearn_ray.results.schema`).
    metric:
        Metric name, e.g. ``"accuracy"`` or ``"ece"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset, alpha, seed, method, value``.
    """
    rows = df[(df["hospital"] == ENSEMBLE) & (df["metric"] == metric)]
    if rows.empty:
        return pd.DataFrame({"dataset": [], "alpha": [], "seed": [], "method": [], "value": []})
    last = rows.groupby(["run_id", *_CELL])["round"].transform("max")
    final = rows[rows["round"] == last]
    per_run = final.groupby(["run_id", *_CELL], as_index=False)["value"].mean()
    counts = per_run.groupby(_CELL)["run_id"].transform("size")
    if (counts > 1).any():
        logger.warning(
            "%d dataset/alpha/seed/method cell(s) have %s from several runs; averaging them",
            int((counts > 1).sum()),
            metric,
        )
    out = per_run.groupby(_CELL, as_index=False)["value"].mean()
    return out.astype({"alpha": "float64", "seed": "int64", "value": "float64"})


def _methods(present: Sequence[str], methods: Sequence[str] | None) -> list[str]:
    """Requested methods (or all present), in canonical order, keeping only present ones."""
    wanted = present if methods is None else [m for m in methods if m in set(present)]
    return order_methods(wanted)


def summary_table(
    df: pd.DataFrame, methods: Sequence[str] | None = None, metric: str = "accuracy"
) -> pd.DataFrame:
    """Mean ± sample standard deviation (ddof 1) over seeds per dataset × alpha × method.

    Parameters
    ----------
    df:
        Results rows.
    methods:
        Methods to include (in any order); ``None`` for every method with ``metric`` rows.
    metric:
        Headline metric (see :func:`headline`).

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset, alpha, method, display, metric, n, mean, std`` sorted by dataset,
        alpha (mild to severe: descending) and canonical method order; ``std`` is NaN for n = 1.
    """
    values = headline(df, metric)
    keep = _methods(list(values["method"].unique()), methods)
    values = values[values["method"].isin(keep)]
    columns = ["dataset", "alpha", "method", "display", "metric", "n", "mean", "std"]
    if values.empty:
        return pd.DataFrame(columns=columns)
    table = (
        values.groupby(["dataset", "alpha", "method"])["value"]
        .agg(n="size", mean="mean", std=lambda v: v.std(ddof=1))
        .reset_index()
    )
    table["display"] = table["method"].map(display_name)
    table["metric"] = metric
    table["n"] = table["n"].astype("int64")
    order = {m: i for i, m in enumerate(keep)}
    table = table.assign(_a=-table["alpha"], _m=table["method"].map(order))
    table = table.sort_values(["dataset", "_a", "_m"], ignore_index=True)
    return table[columns]


def ablation_table(
    df: pd.DataFrame, baseline: str = "ours", metrics: Sequence[str] = ("accuracy", "ece")
) -> pd.DataFrame:
    """``metrics`` of every ``ablation:*`` method next to ``baseline`` (see comparison_table)."""
    summaries = {m: summary_table(df, None, m) for m in metrics}
    return comparison_table(summaries, ABLATION_PREFIX, baseline)


def adversarial_table(
    df: pd.DataFrame, baseline: str = "ours", metrics: Sequence[str] = ("accuracy", "ece")
) -> pd.DataFrame:
    """``metrics`` of every ``attack:*`` method next to the honest ``baseline``."""
    summaries = {m: summary_table(df, None, m) for m in metrics}
    return comparison_table(summaries, ATTACK_PREFIX, baseline)


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
    d = np.round(np.asarray(diffs, dtype=np.float64), _DIFF_DECIMALS)
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
    d = np.round(np.asarray(diffs, dtype=np.float64), _DIFF_DECIMALS)
    d = d[np.isfinite(d) & (d != 0.0)]
    if d.size == 0:
        return math.nan
    ranks = sps.rankdata(np.abs(d))
    r_plus, total = float(ranks[d > 0].sum()), float(ranks.sum())
    return (2.0 * r_plus - total) / total


def _paired_ttest(diffs: np.ndarray) -> tuple[float, float, str]:
    """Paired t statistic and p from the differences; NaN when undefined (n < 2, zero spread)."""
    if diffs.size < 2:
        return (math.nan, math.nan, "")
    if np.ptp(np.round(diffs, _DIFF_DECIMALS)) == 0.0:
        return (math.nan, math.nan, "t-test undefined: identical differences")
    res = sps.ttest_1samp(diffs, 0.0)
    return (float(res.statistic), float(res.pvalue), "")


def _comparison_seed(seed: int, *parts: object) -> int:
    """A bootstrap seed fixed by the comparison's identity, independent of table order."""
    return int(
        np.random.SeedSequence([seed, zlib.crc32(repr(parts).encode())]).generate_state(1)[0]
    )


def _test_row(
    dataset: str,
    alpha: float,
    method: str,
    pairs: pd.DataFrame,
    n_boot: int,
    seed: int,
) -> dict[str, object]:
    """One row of :func:`paired_tests` from matched ``value_method``/``value_base`` pairs."""
    diffs = (pairs["value_method"] - pairs["value_base"]).to_numpy(dtype=np.float64)
    n = int(diffs.size)
    notes: list[str] = []
    wil = wilcoxon_exact(diffs) if n else WilcoxonResult(math.nan, math.nan, 0, "no pairs")
    t_stat, t_p, low, high = math.nan, math.nan, math.nan, math.nan
    if n >= MIN_PAIRS:
        t_stat, t_p, t_note = _paired_ttest(diffs)
        if t_note:
            notes.append(t_note)
        low, high = bootstrap_ci(diffs, n_boot, _comparison_seed(seed, dataset, alpha, method))
    min_p = min_exact_pvalue(wil.n_nonzero)
    too_small = min_p >= ALPHA_LEVEL
    if n == 0:
        notes.append("no seeds in common")
    elif n < MIN_PAIRS:
        notes.append(f"{n} pair(s) < {MIN_PAIRS}: no t-test or interval")
    if wil.n_nonzero < n:
        notes.append(f"{n - wil.n_nonzero} zero difference(s) dropped by Wilcoxon")
    if n and too_small:
        notes.append(f"n too small for p < {ALPHA_LEVEL:g} (min p {min_p:.4g})")
    return {
        "dataset": dataset,
        "alpha": alpha,
        "method": method,
        "n": n,
        "mean_method": float(pairs["value_method"].mean()) if n else math.nan,
        "mean_baseline": float(pairs["value_base"].mean()) if n else math.nan,
        "mean_diff": float(diffs.mean()) if n else math.nan,
        "effect_dz": effect_dz(diffs) if n >= MIN_PAIRS else math.nan,
        "rank_biserial": rank_biserial(diffs),
        "ci_low": low,
        "ci_high": high,
        "wilcoxon_stat": wil.statistic,
        "wilcoxon_p": wil.pvalue,
        "wilcoxon_method": wil.method,
        "ttest_stat": t_stat,
        "ttest_p": t_p,
        "min_p": min_p,
        "n_too_small": bool(too_small),
        "note": "; ".join(notes),
    }


def paired_tests(
    df: pd.DataFrame,
    baseline: str = "ours",
    metric: str = "accuracy",
    n_boot: int = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired tests of every other method against ``baseline``, matched by seed.

    For each dataset × alpha cell (pairs = seeds both methods ran) and, when a dataset has
    several alphas, pooled over its alphas (``alpha`` NaN, ``scope`` ``"pooled"``; blocked by
    seed: each seed's differences are averaged over the alphas both methods ran first, so a
    seed is one pair, never one per alpha): the exact two-sided Wilcoxon signed-rank test
    (:func:`wilcoxon_exact`) with its rank-biserial effect size, and, from
    :data:`MIN_PAIRS` pairs on, the paired t-test with Cohen's d_z and a seeded
    percentile-bootstrap 95 % CI of the mean difference ``method − baseline``. ``min_p`` =
    2 / 2**n (n = non-zero differences) is the smallest p the exact test can reach;
    ``n_too_small`` flags ``min_p >= 0.05`` (n <= 5: five seeds can never be significant at
    0.05). ``*_p_holm`` are Holm-adjusted within each scope's family (every cell comparison of
    the table is one family, every pooled comparison another).

    Parameters
    ----------
    df:
        Results rows.
    baseline:
        Reference method.
    metric:
        Headline metric compared.
    n_boot:
        Bootstrap resamples (>= 100).
    seed:
        Bootstrap seed; each comparison derives its own generator from it and its identity.

    Returns
    -------
    pandas.DataFrame
        One row per comparison; empty when ``baseline`` has no ``metric`` rows.

    Raises
    ------
    ConfigError
        When ``n_boot`` is below 100.
    """
    if n_boot < 100:
        raise ConfigError(f"n_boot must be at least 100 bootstrap resamples, got {n_boot}")
    values = headline(df, metric)
    base = values[values["method"] == baseline]
    if base.empty:
        logger.info("no %s rows of baseline %r: no paired tests", metric, baseline)
        return pd.DataFrame(columns=_TEST_COLUMNS)
    rows: list[dict[str, object]] = []
    pairs = values.merge(base, on=["dataset", "alpha", "seed"], suffixes=("_method", "_base"))
    pairs = pairs.sort_values(["dataset", "alpha", "seed"])
    for dataset in sorted(values["dataset"].unique()):
        in_ds = values[values["dataset"] == dataset]
        for method in order_methods(in_ds["method"].unique()):
            if method == baseline:
                continue
            mine = pairs[(pairs["dataset"] == dataset) & (pairs["method_method"] == method)]
            alphas = sorted(in_ds.loc[in_ds["method"] == method, "alpha"].unique(), reverse=True)
            for alpha in alphas:
                cell = mine[mine["alpha"] == alpha]
                row = _test_row(dataset, float(alpha), method, cell, n_boot, seed)
                rows.append({"scope": "cell", **row})
            if len(alphas) > 1:
                blocked = mine.groupby("seed", as_index=False)[["value_method", "value_base"]]
                row = _test_row(dataset, math.nan, method, blocked.mean(), n_boot, seed)
                rows.append({"scope": "pooled", **row})
    if not rows:
        return pd.DataFrame(columns=_TEST_COLUMNS)
    table = pd.DataFrame(rows)
    for column in ("wilcoxon_p", "ttest_p"):
        table[f"{column}_holm"] = math.nan
        for _, family in table.groupby("scope").groups.items():
            table.loc[family, f"{column}_holm"] = holm(table.loc[family, column].to_numpy())
    table["display"] = table["method"].map(display_name)
    table["baseline"] = baseline
    table["metric"] = metric
    return table[_TEST_COLUMNS]


_TEST_KEYS: Final = ["dataset", "alpha", "scope", "method", "display", "baseline", "metric", "n"]
_TEST_MEANS: Final = ["mean_method", "mean_baseline", "mean_diff", "effect_dz", "rank_biserial",
                      "ci_low", "ci_high"]
_TEST_P: Final = ["wilcoxon_stat", "wilcoxon_p", "wilcoxon_p_holm", "wilcoxon_method",
                  "ttest_stat", "ttest_p", "ttest_p_holm"]
_TEST_COLUMNS: Final = [*_TEST_KEYS, *_TEST_MEANS, *_TEST_P, "min_p", "n_too_small", "note"]
