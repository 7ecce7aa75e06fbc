"""Publication figures (PDF + PNG) drawn from a results frame with matplotlib's Agg renderer."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

from chainlearn_ray.protocol.tiers import TIERS
from chainlearn_ray.results.atomic import write_atomic
from chainlearn_ray.results.communication import communication_table
from chainlearn_ray.results.privacy import privacy_figure
from chainlearn_ray.results.sensitivity import sensitivity_table
from chainlearn_ray.results.stats import summary_table
from chainlearn_ray.results.styles import TIER_COLORS, method_style
from chainlearn_ray.results.tables import (
    ABLATION_PREFIX,
    ATTACK_PREFIX,
    alpha_label,
    display_name,
    is_main_method,
    order_methods,
)

logger = logging.getLogger(__name__)

#: Method drawn as a reference line rather than a bar (predicts the training majority class).
MAJORITY: Final = "majority"
FORMATS: Final = ("pdf", "png")
#: Resolution of the PNG files (the PDF files are vector graphics).
DPI: Final = 200
_BINARY: Final = ("B", "KiB", "MiB", "GiB", "TiB")


def _seeds_note(counts: pd.Series) -> str:
    """``"n = 5 seeds"`` or ``"n = 3–5 seeds"`` from per-bar replicate counts."""
    lo, hi = int(counts.min()), int(counts.max())
    return f"n = {hi} seed{'s' if hi != 1 else ''}" if lo == hi else f"n = {lo}–{hi} seeds"


def _grouped_bars(ax: Axes, summary: pd.DataFrame, methods: Sequence[str]) -> dict[str, Any]:
    """Bars of one dataset: groups = alphas (mild to severe), one bar per method, ±1 std."""
    alphas = sorted(summary["alpha"].unique(), reverse=True)
    handles: dict[str, Any] = {}
    if MAJORITY in methods:
        handles.update(_majority_line(ax, summary, alphas))
        methods = [m for m in methods if m != MAJORITY]
    width = min(0.8 / max(len(methods), 1), 0.3)
    for i, method in enumerate(methods):
        rows = summary[summary["method"] == method].set_index("alpha").reindex(alphas)
        if rows["mean"].isna().all():
            continue
        x = np.arange(len(alphas)) + width * (i - (len(methods) - 1) / 2)
        std = rows["std"].fillna(0.0).to_numpy()
        handles[method] = ax.bar(
            x,
            rows["mean"].to_numpy(),
            width,
            yerr=std,
            capsize=2,
            color=method_style(method).color,
            hatch=method_style(method).hatch,
            edgecolor="black",
            linewidth=0.4,
            error_kw={"elinewidth": 0.8},
            label=display_name(method),
        )
    ax.set_xticks(np.arange(len(alphas)), [alpha_label(a) for a in alphas])
    ax.set_xlabel("non-IID level (Dirichlet α; smaller = more skewed)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return handles


def _majority_line(ax: Axes, summary: pd.DataFrame, alphas: Sequence[float]) -> dict[str, Any]:
    """The majority-class rate of each non-IID group as a dashed line across its bars."""
    rows = summary[summary["method"] == MAJORITY].set_index("alpha").reindex(alphas)
    handle = None
    for i, value in enumerate(rows["mean"].to_numpy()):
        if np.isfinite(value):
            (handle,) = ax.plot([i - 0.45, i + 0.45], [value, value], linestyle="--",
                                color=method_style(MAJORITY).color, linewidth=1.2,
                                label="Majority class")
    return {} if handle is None else {MAJORITY: handle}


def _suptitle(fig: Figure, text: str) -> None:
    """Figure title, each line wrapped to the figure's width so nothing is clipped."""
    width = max(40, int(fig.get_figwidth() * 10))
    lines = [textwrap.fill(line, width) for line in text.split("\n")]
    fig.suptitle("\n".join(lines))


def _legend(fig: Figure, handles: dict[str, Any], methods: Sequence[str]) -> None:
    """One legend below the panels, methods in canonical order."""
    ordered = [m for m in dict.fromkeys([MAJORITY, *methods]) if m in handles]
    fig.legend(
        [handles[m] for m in ordered],
        ["Majority class" if m == MAJORITY else display_name(m) for m in ordered],
        loc="outside lower center",
        ncol=min(len(ordered), 6, max(2, int(fig.get_figwidth() // 1.8))),
        frameon=False,
    )


def _bar_figure(summary: pd.DataFrame, title: str, ylabel: str, *, unit_max: bool) -> Figure:
    """Grouped-bar figure with one panel per dataset and a shared legend below."""
    datasets = sorted(summary["dataset"].unique())
    methods = order_methods(summary["method"].unique())
    fig = Figure(figsize=(max(6.0, 5.0 * len(datasets)), 4.6), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    handles: dict[str, Any] = {}
    for ax, dataset in zip(axes, datasets, strict=True):
        handles.update(_grouped_bars(ax, summary[summary["dataset"] == dataset], methods))
        ax.set_title(dataset)
        ax.set_ylabel(ylabel)
        if unit_max:  # room for the whiskers, which may pass 1.0: nothing is clipped
            top = float((summary["mean"] + summary["std"].fillna(0.0)).max())
            ax.set_ylim(0.0, max(top * 1.05, 0.05))
    _suptitle(
        fig, f"{title}\n{_seeds_note(summary['n'])}; bars = mean, whiskers = ±1 sample std (ddof 1)"
    )
    _legend(fig, handles, methods)
    return fig


def metric_figure(df: pd.DataFrame, metric: str = "accuracy") -> Figure | None:
    """Main methods' final-ensemble ``metric`` per dataset × non-IID level; None without data."""
    summary = summary_table(df, None, metric)
    summary = summary[summary["method"].map(is_main_method)]
    if summary.empty:
        return None
    if metric == "ece":
        title = "Expected calibration error of each method's final predictor (lower is better)"
        ylabel = "ECE (fraction, 10 bins)"
    else:
        title = f"Test {metric.replace('_', ' ')} of each method's final predictor"
        ylabel = f"test {metric.replace('_', ' ')} (fraction)"
    return _bar_figure(summary, title, ylabel, unit_max=True)


def _versus_figure(df: pd.DataFrame, prefix: str, baseline: str, title: str) -> Figure | None:
    """Accuracy (top) and ECE (bottom) of ``baseline`` and every ``prefix*`` method."""
    panels = []
    for metric, label in (("accuracy", "test accuracy (fraction)"), ("ece", "ECE (fraction)")):
        summary = summary_table(df, None, metric)
        keep = summary["method"].str.startswith(prefix)
        if keep.any():
            panels.append((metric, label, summary[keep | (summary["method"] == baseline)]))
    if not panels:
        return None
    datasets = sorted(set().union(*(set(p[2]["dataset"]) for p in panels)))
    methods = order_methods(set().union(*(set(p[2]["method"]) for p in panels)))
    methods = [baseline, *[m for m in methods if m != baseline]] if baseline in methods else methods
    fig = Figure(
        figsize=(max(6.0, 5.0 * len(datasets)), 3.6 * len(panels) + 0.8), layout="constrained"
    )
    grid = fig.subplots(len(panels), len(datasets), squeeze=False)
    handles: dict[str, Any] = {}
    for row, (metric, label, summary) in enumerate(panels):
        top = float((summary["mean"] + summary["std"].fillna(0.0)).max())
        for col, dataset in enumerate(datasets):
            ax = grid[row][col]
            handles.update(_grouped_bars(ax, summary[summary["dataset"] == dataset], methods))
            ax.set_title(f"{dataset}: {'ECE' if metric == 'ece' else metric}")
            ax.set_ylabel(label)
            ax.set_ylim(0.0, max(top * 1.05, 0.05))  # whiskers are never clipped
    n_note = _seeds_note(pd.concat([p[2]["n"] for p in panels]))
    _suptitle(fig, f"{title}\n{n_note}; bars = mean, whiskers = ±1 sample std (ddof 1)")
    _legend(fig, handles, methods)
    return fig


def ablation_figure(df: pd.DataFrame, baseline: str = "ours") -> Figure | None:
    """Accuracy (top) and ECE (bottom) of the baseline and each ablation; None without data."""
    return _versus_figure(df, ABLATION_PREFIX, baseline,
                          f"Ablations of the weight formula vs {display_name(baseline)}")


def attack_figure(df: pd.DataFrame, baseline: str = "ours") -> Figure | None:
    """Accuracy (top) and ECE (bottom) of the honest baseline and each attack; None without
    data."""
    return _versus_figure(df, ATTACK_PREFIX, baseline,
                          f"Attacks on the protocol vs honest {display_name(baseline)}")


def _bytes_tick(value: float, _pos: object = None) -> str:
    """Compact binary-unit tick label (``"4 KiB"``, ``"1.5 MiB"``)."""
    unit = 0
    while value >= 1024 and unit < len(_BINARY) - 1:
        value /= 1024.0
        unit += 1
    return f"{value:.3g} {_BINARY[unit]}"


def communication_figure(df: pd.DataFrame) -> Figure | None:
    """Mean bytes up/down per hospital per round for each method (log scale); None without data."""
    table = communication_table(df)
    if table.empty:
        return None
    datasets = sorted(table["dataset"].unique())
    fig = Figure(figsize=(max(6.0, 5.5 * len(datasets)), 4.4), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets, strict=True):
        part = table[table["dataset"] == dataset].reset_index(drop=True)
        x = np.arange(len(part))
        colors = [method_style(m).color for m in part["method"]]
        ax.bar(x - 0.2, part["bytes_up"], 0.4, color=colors, edgecolor="black", linewidth=0.4)
        ax.bar(
            x + 0.2,
            part["bytes_down"],
            0.4,
            color=colors,
            edgecolor="black",
            linewidth=0.4,
            hatch="//",
            alpha=0.7,
        )
        ax.set_yscale("log", base=2)
        ax.yaxis.set_major_locator(LogLocator(base=2, numticks=8))
        ax.yaxis.set_major_formatter(FuncFormatter(_bytes_tick))
        ax.set_xticks(x, [display_name(m) for m in part["method"]], rotation=30, ha="right")
        ax.set_ylabel("bytes per hospital per round (log scale)")
        ax.set_title(dataset)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    _suptitle(
        fig,
        "Communication per hospital per round\n"
        "solid = upload, hatched = download; binary units; mean over hospitals, rounds and runs",
    )
    return fig


def sensitivity_figure(confidence: int = 8500, ece: int = 1000, max_rounds: int = 5) -> Figure:
    """Weight against rounds per tier: full attendance (left) and the dropout case (right)."""
    table = sensitivity_table(confidence, ece, max_rounds)
    fig = Figure(figsize=(10.0, 5.4), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    for tier in TIERS:
        rows = table[table["tier"] == tier.label]
        color = TIER_COLORS[tier.label]
        left.plot(rows["rounds"], rows["weight"], "o-", color=color, label=tier.display)
        p = float(rows["attendance"].iloc[0])
        right.plot(
            rows["rounds"],
            rows["expected_weight"],
            "o-",
            color=color,
            label=f"{tier.display} (p = {p:g}): expected",
        )
        right.plot(
            rows["rounds"],
            rows["floor_weight"],
            "s--",
            color=color,
            alpha=0.6,
            label=f"{tier.display}: w(⌊p·r⌋)",
        )
    left.set_title("every round attended")
    right.set_title("dropout: attends each round with probability p")
    for ax in (left, right):  # legends below the panels, never over a curve
        ax.set_xlabel("rounds elapsed r")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2,
                  frameon=False)
    left.set_ylabel("ensemble weight (fixed point, 10000 = 1.0)")
    _suptitle(
        fig,
        f"Weight formula sensitivity at confidence {confidence / 10000:g}, ECE {ece / 10000:g}\n"
        "computed from the formula, not measured",
    )
    return fig


def save_figure(fig: Figure, out_dir: str | Path, stem: str, dpi: int = DPI) -> list[Path]:
    """Write ``fig`` as ``<stem>.pdf`` and ``<stem>.png`` (``dpi`` for the PNG), atomically."""
    paths = []
    for fmt in FORMATS:
        metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}

        def write(handle: IO[bytes], fmt: str = fmt, metadata: dict = metadata) -> None:
            fig.savefig(handle, format=fmt, dpi=dpi, metadata=metadata)

        paths.append(write_atomic(Path(out_dir) / f"{stem}.{fmt}", write))
    return paths


def drawn_figures(
    df: pd.DataFrame, baseline: str = "ours", *, sensitivity: bool = True
) -> list[tuple[str, Figure]]:
    """``(stem, figure)`` of every figure the results support (see :func:`make_figures`)."""
    from chainlearn_ray.results.defences_figure import defence_figure

    builders = {
        "accuracy": lambda: metric_figure(df, "accuracy"),
        "ece": lambda: metric_figure(df, "ece"),
        "ablation": lambda: ablation_figure(df, baseline),
        "attacks": lambda: attack_figure(df, baseline),
        "defences": lambda: defence_figure(df),
        "communication": lambda: communication_figure(df),
        "privacy": lambda: privacy_figure(df),
    }
    if sensitivity:
        builders["sensitivity"] = sensitivity_figure
    drawn = []
    for stem, build in builders.items():
        fig = build()
        if fig is None:
            logger.info("figure %s skipped: the results hold no rows for it", stem)
        else:
            drawn.append((stem, fig))
    return drawn


def make_figures(
    df: pd.DataFrame,
    out_dir: str | Path,
    baseline: str = "ours",
    *,
    sensitivity: bool = True,
    dpi: int = DPI,
) -> list[Path]:
    """Draw every figure the results support and write each as PDF and PNG into ``out_dir``.

    Figures: ``accuracy`` and ``ece`` (main methods per dataset × non-IID level),
    ``ablation`` (baseline vs ``ablation:*``), ``attacks`` (honest baseline vs ``attack:*``),
    ``communication`` (bytes per hospital per round), ``privacy`` (accuracy against the
    target ε per method), and ``sensitivity`` (the weight formula, independent of the
    results). A figure
    whose rows are absent is skipped with a log message.

    Parameters
    ----------
    df:
        Results rows, e.g. from :func:`chainlearn_ray.results.store.read_results`.
    out_dir:
        Destination folder (created).
    baseline:
        Method the ablation figure compares against.
    sensitivity:
        Also draw the weight sensitivity figure.
    dpi:
        Resolution of the PNG files.

    Returns
    -------
    list of pathlib.Path
        The written files.
    """
    written: list[Path] = []
    for stem, fig in drawn_figures(df, baseline, sensitivity=sensitivity):
        written.extend(save_figure(fig, out_dir, stem, dpi))
    logger.info("wrote %d figure files to %s", len(written), out_dir)
    return written
