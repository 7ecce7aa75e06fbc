"""Privacy in the results: the run's target ε row, each hospital's spent ε per round, and the
privacy–utility table and figure (accuracy against ε per method), all from Parquet rows."""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from chainlearn_ray.results.rows import RunKey, result_row
from chainlearn_ray.results.schema import ALL, DP_DELTA, DP_EPSILON, DP_TARGET, ENSEMBLE
from chainlearn_ray.results.tables import DASH, display_name, order_methods

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: How a run without DP (target ε ``inf``) is labelled.
NO_DP: Final = "∞ (no DP)"


def target_rows(key: RunKey, epsilon: float | None) -> list[dict[str, Any]]:
    """The run's target ε as one round-0 row (none when the run has no DP setting)."""
    if epsilon is None:
        return []
    return [result_row(key, 0, ALL, "", DP_TARGET, float(epsilon))]


def _targets(df: pd.DataFrame) -> pd.Series:
    """run_id -> target ε of every run with a ``dp_target_epsilon`` row."""
    rows = df[df["metric"] == DP_TARGET]
    return rows.groupby("run_id")["value"].first()


def privacy_utility_table(df: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """``metric`` of each method's final predictor against the run's target ε.

    One row per dataset × α × method × target ε: the mean and sample std (ddof 1) over seeds
    of the final-round ensemble ``metric``, and the largest ε any of the method's hospitals had
    spent after its last round (mean over seeds; NaN without DP). Runs without a
    ``dp_target_epsilon`` row are left out.
    """
    columns = ["dataset", "alpha", "method", "display", "epsilon", "n", f"{metric}_mean",
               f"{metric}_std", "spent_epsilon"]
    targets = _targets(df)
    rows = df[(df["hospital"] == ENSEMBLE) & (df["metric"] == metric)
              & df["run_id"].isin(targets.index)]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    keys = ["run_id", "dataset", "alpha", "seed", "method"]
    last = rows.groupby(keys)["round"].transform("max")
    final = rows[rows["round"] == last].groupby(keys, as_index=False)["value"].mean()
    final["epsilon"] = final["run_id"].map(targets)
    spent = df[df["metric"] == DP_EPSILON]
    if not spent.empty:
        end = spent[spent["round"] == spent.groupby(keys)["round"].transform("max")]
        final = final.merge(end.groupby(keys, as_index=False)["value"].max()
                            .rename(columns={"value": "spent"}), on=keys, how="left")
    else:
        final["spent"] = np.nan
    out = final.groupby(["dataset", "alpha", "method", "epsilon"], as_index=False).agg(
        n=("value", "size"), mean=("value", "mean"), std=("value", "std"),
        spent_epsilon=("spent", "mean"))
    out = out.rename(columns={"mean": f"{metric}_mean", "std": f"{metric}_std"})
    out["display"] = out["method"].map(display_name)
    order = {m: i for i, m in enumerate(order_methods(out["method"]))}
    out["_o"] = out["method"].map(order)
    out = out.sort_values(["dataset", "alpha", "_o", "epsilon"], ascending=[True, True, True,
                                                                            False])
    return out[columns].reset_index(drop=True)


def privacy_spent_table(df: pd.DataFrame) -> pd.DataFrame:
    """Each hospital's spent ε after every round (mean over seeds), and its δ, per target ε
    (runs of different targets are never pooled; a run without a target row has NaN).

    Columns ``dataset, alpha, method, display, target, hospital, tier, round, epsilon, delta,
    n``.
    """
    columns = ["dataset", "alpha", "method", "display", "target", "hospital", "tier", "round",
               "epsilon", "delta", "n"]
    eps = df[df["metric"] == DP_EPSILON]
    if eps.empty:
        return pd.DataFrame(columns=columns)
    keys = ["run_id", "dataset", "alpha", "seed", "method", "hospital", "tier", "round"]
    delta = df[df["metric"] == DP_DELTA][[*keys, "value"]].rename(columns={"value": "delta"})
    both = eps[[*keys, "value"]].merge(delta, on=keys, how="left")
    both["target"] = both["run_id"].map(_targets(df)).astype(float)
    out = both.groupby(["dataset", "alpha", "method", "target", "hospital", "tier", "round"],
                       as_index=False, dropna=False).agg(
        epsilon=("value", "mean"), delta=("delta", "max"), n=("value", "size"))
    out["display"] = out["method"].map(display_name)
    return out[columns].sort_values(["dataset", "alpha", "method", "target", "hospital",
                                     "round"], ascending=[True, True, True, False, True, True]
                                    ).reset_index(drop=True)


def epsilon_label(epsilon: float) -> str:
    """``"8"``, ``"0.5"`` or :data:`NO_DP` for ``inf``."""
    return NO_DP if not math.isfinite(epsilon) else f"{epsilon:g}"


def privacy_figure(df: pd.DataFrame, metric: str = "accuracy") -> Figure | None:
    """Final-predictor ``metric`` against the target ε, one line per method (±1 std over
    seeds), one panel per dataset × α; ``inf`` (no DP) sits right of the largest ε. ``None``
    without DP rows."""
    from matplotlib.figure import Figure

    from chainlearn_ray.results.styles import method_style
    from chainlearn_ray.results.tables import alpha_label

    table = privacy_utility_table(df, metric)
    if table.empty:
        return None
    panels = list(table.groupby(["dataset", "alpha"], sort=True))
    fig = Figure(figsize=(4.2 * len(panels) + 1.6, 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    finite = sorted(e for e in table["epsilon"].unique() if math.isfinite(e))
    no_dp_x = finite[-1] * 3 if finite else 1.0
    for ax, ((dataset, alpha), panel) in zip(axes, panels, strict=True):
        for method in order_methods(panel["method"]):
            rows = panel[panel["method"] == method].copy()
            rows["x"] = [e if math.isfinite(e) else no_dp_x for e in rows["epsilon"]]
            rows = rows.sort_values("x")
            style = method_style(method)
            ax.errorbar(rows["x"], rows[f"{metric}_mean"], yerr=rows[f"{metric}_std"].fillna(0),
                        label=display_name(method), marker=style.marker, color=style.color,
                        capsize=3, linewidth=1.2)
        ticks = [*finite, *([no_dp_x] if (~np.isfinite(panel["epsilon"])).any() else [])]
        ax.set_xscale("log")
        ax.set_xticks(ticks)
        ax.set_xticklabels([epsilon_label(t if t != no_dp_x else math.inf) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("target ε (δ as configured)")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_title(f"{dataset}, {alpha_label(alpha)}", fontsize=9)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=7, frameon=False)
    title = f"Privacy–utility: {metric} of each method's final predictor against ε"
    fig.suptitle(textwrap.fill(title, 45 * len(panels)), fontsize=10)
    return fig


def present_privacy(name: str, table: pd.DataFrame, metric: str = "accuracy") -> str:
    """Markdown of the ``privacy_utility`` or ``privacy_spent`` table (``chainlearn stats``)."""
    from chainlearn_ray.results.tables import alpha_label, format_mean_std, to_markdown

    if name == "privacy_utility":
        view = pd.DataFrame({
            "Dataset": table["dataset"], "Non-IID": table["alpha"].map(alpha_label),
            "Method": table["display"], "Target ε": table["epsilon"].map(epsilon_label),
            "n": table["n"],
            metric.replace("_", " ").capitalize(): [
                format_mean_std(m, s) for m, s in zip(table[f"{metric}_mean"],
                                                      table[f"{metric}_std"], strict=True)],
            "ε spent (max hospital)": [DASH if not np.isfinite(v) else f"{v:.2f}"
                                       for v in table["spent_epsilon"]],
        })
        return to_markdown(view)
    shown = table.assign(target=table["target"].map(
        lambda v: DASH if v != v else epsilon_label(float(v))))
    wide = shown.pivot_table(index=["dataset", "alpha", "display", "target", "hospital", "tier",
                                    "delta"], columns="round", values="epsilon",
                             aggfunc="mean", sort=False)
    wide.columns = [f"ε after round {r}" for r in wide.columns]
    wide = wide.reset_index()
    wide["alpha"] = wide["alpha"].map(alpha_label)
    wide = wide.rename(columns={"dataset": "Dataset", "alpha": "Non-IID", "display": "Method",
                                "target": "Target ε", "hospital": "Hospital", "tier": "Tier",
                                "delta": "δ"})
    formats: dict[str, Any] = {c: (lambda v: DASH if v != v else f"{v:.2f}")
                               for c in wide.columns if str(c).startswith("ε")}
    formats["δ"] = lambda v: f"{v:g}"
    return to_markdown(wide, formats)
