"""Headline metrics over seeds, comparison tables and paired significance tests."""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.results.schema import ENSEMBLE
from chainlearn_ray.results.significance import (
    WilcoxonResult,
    bootstrap_ci,
    effect_dz,
    holm,
    min_exact_pvalue,
    paired_ttest,
    rank_biserial,
    wilcoxon_exact,
)
from chainlearn_ray.results.tables import (
    ABLATION_PREFIX,
    ATTACK_PREFIX,
    comparison_table,
    display_name,
    order_methods,
)

logger = logging.getLogger(__name__)

#: Metrics reported for a method's final predictor (hospital ``"ensemble"``).
HEADLINE_METRICS: Final = ("accuracy", "balanced_accuracy", "macro_f1", "ece", "confidence")
#: Two-sided significance level used by the "can reach p < 0.05" flag.
ALPHA_LEVEL: Final = 0.05
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
        t_stat, t_p, t_note = paired_ttest(diffs)
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
