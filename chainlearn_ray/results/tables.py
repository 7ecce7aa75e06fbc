"""Display names, number formatting, Markdown rendering and the cost (bytes, gas) tables."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import pandas as pd

from chainlearn_ray.errors import ConfigError

logger = logging.getLogger(__name__)

#: Display name of every study method, in the order tables and figures list them.
METHOD_DISPLAY: Final = MappingProxyType(
    {
        "majority": "Majority",
        "centralized": "Centralized",
        "local_weak": "Local-Weak",
        "local_medium": "Local-Medium",
        "local_strong": "Local-Strong",
        "local_best": "Local-Best",
        "fedavg": "FedAvg",
        "fedprox": "FedProx",
        "fedmd": "FedMD",
        "equal_weight": "EqualWt-Ens",
        "ours": "Ours",
        "ours_dropout": "Ours-Dropout",
        "ours_balacc": "Ours-BalAcc",
        "ablation:no_capmul": "No CapMul",
        "ablation:no_conf": "No Conf",
        "ablation:no_ece": "No ECE",
        "ablation:no_bonus": "No Bonus",
        "ablation:no_poc": "No PoC",
        "attack:lazy": "Lazy",
        "attack:inflated": "Inflated",
        "attack:spoof_no_poc": "Spoof (no PoC)",
        "attack:spoof_poc": "Spoof (PoC)",
    }
)
METHOD_ORDER: Final[tuple[str, ...]] = tuple(METHOD_DISPLAY)
ABLATION_PREFIX: Final = "ablation:"
ATTACK_PREFIX: Final = "attack:"

#: Gas operations in protocol order; others follow alphabetically.
GAS_OPERATIONS: Final = (
    "registerHospital",
    "startNewRound",
    "submitUpdate",
    "recordEnsemblePrediction",
)
GAS_PREFIX: Final = "gas_"
ROUND_TOTAL: Final = "one round (all operations)"

_ALPHA_NAMES: Final = MappingProxyType({1.0: "mild", 0.5: "moderate", 0.1: "severe"})
_BINARY_UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
DASH: Final = "—"


def display_name(method: str) -> str:
    """Display name of a method (``"ours"`` -> ``"Ours"``); unknown names are returned as is."""
    return METHOD_DISPLAY.get(method, method)


def order_methods(methods: Iterable[str]) -> list[str]:
    """Unique methods in the canonical order of :data:`METHOD_ORDER`, unknown ones last (sorted)."""
    unique = set(methods)
    known = [m for m in METHOD_ORDER if m in unique]
    return known + sorted(unique - set(known))


def is_main_method(method: str) -> bool:
    """True for a study method that is neither an ablation nor an attack."""
    return not method.startswith((ABLATION_PREFIX, ATTACK_PREFIX))


def alpha_label(alpha: float) -> str:
    """Label of a Dirichlet concentration: ``"α=0.5 (moderate)"``; NaN means pooled alphas."""
    if alpha is None or (isinstance(alpha, float) and math.isnan(alpha)):
        return "all α (pooled)"
    text = f"{float(alpha):g}"
    if text.lstrip("-").isdigit():
        text += ".0"
    name = _ALPHA_NAMES.get(round(float(alpha), 6))
    return f"α={text} ({name})" if name else f"α={text}"


def format_bytes(value: float) -> str:
    """Bytes in binary units with three significant figures (``1536 -> "1.50 KiB"``)."""
    if value is None or not np.isfinite(value):
        return DASH
    size = float(value)
    unit = 0
    while abs(size) >= 1024 and unit < len(_BINARY_UNITS) - 1:
        size /= 1024.0
        unit += 1
    if unit == 0:
        return f"{size:.0f} B"
    return (
        f"{size:.3g} {_BINARY_UNITS[unit]}"
        if abs(size) >= 100
        else f"{size:.2f} {_BINARY_UNITS[unit]}"
    )


def format_number(value: Any, digits: int = 3) -> str:
    """A table cell: NaN -> ``"—"``, floats rounded to ``digits`` decimals, others ``str``."""
    if value is None:
        return DASH
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return DASH
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}f}"
    return str(value)


def format_p(value: float) -> str:
    """A p-value with four significant figures (``"0.0625"``, ``"3.1e-05"``), NaN -> ``"—"``."""
    if value is None or not np.isfinite(value):
        return DASH
    return f"{value:.4g}"


def format_mean_std(mean: float, std: float, digits: int = 3) -> str:
    """``"0.843 ± 0.012"``; a missing std (one seed) shows the mean alone."""
    if mean is None or not np.isfinite(mean):
        return DASH
    if std is None or not np.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_usd(value: float) -> str:
    """US dollars with cents (``"$10.10"``), NaN -> ``"—"``."""
    if value is None or not np.isfinite(value):
        return DASH
    return f"${value:,.2f}" if value >= 0.01 else f"${value:.2g}"


def _escape(text: str) -> str:
    """Escape characters with a meaning inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(
    frame: pd.DataFrame,
    formatters: Mapping[str, Callable[[Any], str]] | None = None,
    *,
    digits: int = 3,
) -> str:
    """Render a frame as a GitHub-flavoured Markdown table (numeric columns right-aligned).

    Parameters
    ----------
    frame:
        The table; its column names are the header.
    formatters:
        Per-column cell formatters; other columns use :func:`format_number`.
    digits:
        Decimals of floats without a formatter.

    Returns
    -------
    str
        The table, one line per row, ending without a newline.
    """
    formatters = dict(formatters or {})
    columns = [str(c) for c in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    cells = []
    for row in frame.itertuples(index=False, name=None):
        out = []
        for name, value in zip(columns, row, strict=True):
            fmt = formatters.get(name)
            out.append(_escape(fmt(value) if fmt else format_number(value, digits)))
        cells.append(out)
    widths = [max([len(_escape(c)), 3, *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        padded = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [
        ("-" * (w - 1) + ":") if num else "-" * w for w, num in zip(widths, numeric, strict=True)
    ]
    lines = [line([_escape(c) for c in columns]), "| " + " | ".join(rule) + " |"]
    lines.extend(line(r) for r in cells)
    return "\n".join(lines)


def summary_wide(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Pivot a :func:`summary_table` into text cells: one row per method, one column per cell.

    Columns are ``Method`` then ``<dataset> α=<alpha>`` holding ``"mean ± std"`` (the headline
    layout of the paper's tables); a missing combination is ``"—"``.
    """
    if summary.empty:
        return pd.DataFrame(columns=["Method"])
    cells = summary.assign(
        column=[
            f"{d} {alpha_label(a)}"
            for d, a in zip(summary["dataset"], summary["alpha"], strict=True)
        ],
        text=[
            format_mean_std(m, s, digits) + ("" if n > 1 else " (n=1)")
            for m, s, n in zip(summary["mean"], summary["std"], summary["n"], strict=True)
        ],
    )
    col_order = list(dict.fromkeys(cells["column"]))
    wide = cells.pivot(index="method", columns="column", values="text")
    wide = wide.reindex(index=order_methods(cells["method"]), columns=col_order).fillna(DASH)
    wide.insert(0, "Method", [display_name(m) for m in wide.index])
    return wide.reset_index(drop=True).rename_axis(columns=None)


def comparison_table(
    summaries: Mapping[str, pd.DataFrame], prefix: str, baseline: str = "ours"
) -> pd.DataFrame:
    """Metrics of every method named ``prefix*`` next to the baseline, per dataset × alpha.

    ``<metric>_delta`` is the method's mean minus the baseline's mean in the same cell.

    Parameters
    ----------
    summaries:
        Metric name -> its ``chainlearn_ray.results.stats.summary_table``.
    prefix:
        Method prefix, e.g. ``"ablation:"`` or ``"attack:"``.
    baseline:
        Method the deltas are taken against (listed first in each cell).

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset, alpha, method, display, n`` then ``<m>_mean, <m>_std, <m>_delta``
        per metric; empty when no method has the prefix.
    """
    metrics = list(summaries)
    present = set().union(*(set(s["method"]) for s in summaries.values()))
    chosen = [m for m in present if m.startswith(prefix)]
    columns = ["dataset", "alpha", "method", "display", "n"]
    for m in metrics:
        columns += [f"{m}_mean", f"{m}_std", f"{m}_delta"]
    if not chosen:
        return pd.DataFrame(columns=columns)
    keep = order_methods([baseline, *chosen])
    keep = [baseline, *[m for m in keep if m != baseline]]
    merged: pd.DataFrame | None = None
    for m, summary in summaries.items():
        part = summary[summary["method"].isin(keep)]
        base = part[part["method"] == baseline].set_index(["dataset", "alpha"])["mean"]
        part = part.rename(columns={"mean": f"{m}_mean", "std": f"{m}_std", "n": f"n_{m}"})
        idx = pd.MultiIndex.from_frame(part[["dataset", "alpha"]])
        part[f"{m}_delta"] = part[f"{m}_mean"].to_numpy() - base.reindex(idx).to_numpy()
        part = part.drop(columns=["metric", "display"])
        merged = (
            part
            if merged is None
            else merged.merge(part, how="outer", on=["dataset", "alpha", "method"])
        )
    assert merged is not None
    n_cols = [c for c in merged.columns if c.startswith("n_")]
    merged["n"] = merged[n_cols].max(axis=1).fillna(0).astype("int64")
    merged["display"] = merged["method"].map(display_name)
    order = {m: i for i, m in enumerate(keep)}
    merged = merged.assign(_a=-merged["alpha"], _m=merged["method"].map(order))
    merged = merged.sort_values(["dataset", "_a", "_m"], ignore_index=True)
    return merged[columns]


def _operation_order(operations: Iterable[str]) -> list[str]:
    """Operations in protocol order, others alphabetically, the round total last."""
    unique = set(operations)
    known = [op for op in GAS_OPERATIONS if op in unique]
    rest = sorted(unique - set(known) - {ROUND_TOTAL})
    return known + rest + ([ROUND_TOTAL] if ROUND_TOTAL in unique else [])


def gas_table(df: pd.DataFrame, gwei: float = 20.0, eth_usd: float = 2000.0) -> pd.DataFrame:
    """Mean gas per contract operation, priced in ETH and USD.

    ``usd = gas * gwei * 1e-9 * eth_usd``. Besides each ``gas_<operation>`` metric, a row
    ``"one round (all operations)"`` gives the mean over rounds (``round > 0``) of the summed
    gas of every operation of one run's round.

    Parameters
    ----------
    df:
        Results rows; gas rows have metric ``gas_<operation>``.
    gwei:
        Gas price in gwei (1 gwei = 1e-9 ETH).
    eth_usd:
        Price of one ETH in US dollars.

    Returns
    -------
    pandas.DataFrame
        Columns ``method, operation, n, gas_mean, gas_std, gas_min, gas_max, eth, usd``;
        empty when there are no gas rows.

    Raises
    ------
    ConfigError
        When ``gwei`` or ``eth_usd`` is negative or not finite.
    """
    for name, value in (("gwei", gwei), ("eth_usd", eth_usd)):
        if not np.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a non-negative number, got {value!r}")
    columns = ["method", "operation", "n", "gas_mean", "gas_std", "gas_min", "gas_max"]
    columns += ["eth", "usd"]
    rows = df[df["metric"].str.startswith(GAS_PREFIX)].copy()
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows["operation"] = rows["metric"].str.slice(len(GAS_PREFIX))
    per_round = rows[rows["round"] > 0]
    per_round = per_round.groupby(["run_id", "method", "round"], as_index=False)["value"].sum()
    per_round["operation"] = ROUND_TOTAL
    both = pd.concat([rows[["method", "operation", "value"]], per_round], ignore_index=True)
    table = (
        both.groupby(["method", "operation"])["value"]
        .agg(n="size", gas_mean="mean", gas_std="std", gas_min="min", gas_max="max")
        .reset_index()
    )
    table["eth"] = table["gas_mean"] * gwei * 1e-9
    table["usd"] = table["eth"] * eth_usd
    m_order = {m: i for i, m in enumerate(order_methods(table["method"]))}
    o_order = {o: i for i, o in enumerate(_operation_order(table["operation"]))}
    table = table.sort_values(
        ["method", "operation"],
        key=lambda c: c.map(m_order) if c.name == "method" else c.map(o_order),
        ignore_index=True,
    )
    table["n"] = table["n"].astype("int64")
    return table[columns]
