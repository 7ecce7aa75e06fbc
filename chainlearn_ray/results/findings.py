"""Plain-language findings from the paired tests: where the baseline wins, loses, or shows no
significant difference, each statement computed from the test table (never typed by hand)."""

from __future__ import annotations

import math
from typing import Final

import pandas as pd

from chainlearn_ray.results.tables import alpha_label, display_name

#: Significance level of the statements (after the table's Holm adjustment).
LEVEL: Final = 0.05


def decisive_p(row: pd.Series) -> tuple[float, str]:
    """The p-value a statement rests on: the Holm-adjusted paired t-test where the table has one
    (5 pairs or more), else the Holm-adjusted exact Wilcoxon test; with its name."""
    t = float(row["ttest_p_holm"])
    if not math.isnan(t):
        return t, "t-test"
    return float(row["wilcoxon_p_holm"]), "Wilcoxon"


def _where(row: pd.Series) -> str:
    alpha = float(row["alpha"])
    level = "pooled over α" if math.isnan(alpha) else alpha_label(alpha)
    return f"{row['dataset']} {level}"


def findings_markdown(tests: pd.DataFrame, level: float = LEVEL) -> str:
    """Three lists from a :func:`~chainlearn_ray.results.stats.paired_tests` table: comparisons
    where the baseline is significantly better, significantly worse, and the rest.

    A difference is significant when its decisive p (:func:`decisive_p`) is below ``level``;
    its sign is the mean of ``method − baseline``.
    """
    if tests.empty:
        return ""
    base = display_name(str(tests["baseline"].iloc[0]))
    metric = str(tests["metric"].iloc[0])
    wins, losses, unclear = [], [], []
    for _, row in tests.iterrows():
        p, test = decisive_p(row)
        text = (f"{row['display']} at {_where(row)} (Δ {float(row['mean_diff']):+.3f}, "
                f"n {int(row['n'])}, {test} p {p:.3g})")
        if math.isnan(p) or p >= level:
            unclear.append(text)
        elif float(row["mean_diff"]) < 0:
            wins.append(text)
        else:
            losses.append(text)

    def block(title: str, items: list[str]) -> str:
        body = "\n".join(f"- {item}" for item in items) if items else "- none"
        return f"**{title}** ({len(items)})\n\n{body}"

    head = (f"Each line compares a method with {base} in {metric} (Δ = method − {base}, mean "
            f"over paired seeds). A difference counts when its Holm-adjusted p is below "
            f"{level:g}: the paired t-test from 5 pairs on, else the exact Wilcoxon test (which "
            f"cannot go below 2/2^n with n pairs).\n\n")
    return head + "\n\n".join([
        block(f"{base} significantly better", wins),
        block(f"{base} significantly worse", losses),
        block("No significant difference", unclear),
    ])
