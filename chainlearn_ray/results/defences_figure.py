"""The trust-mode adversarial figure: per study row, the final ensemble accuracy, the
attacker's weight and its stake after the run (from :func:`~chainlearn_ray.results.defences.
defence_table`), each cheat next to its defended twin."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from chainlearn_ray.results.defences import defence_table
from chainlearn_ray.results.styles import PALETTE

#: Rows that run with the defence their cheat is meant to meet.
DEFENDED = frozenset({"attack:inflated_audit", "attack:spoof_tier_timed",
                      "attack:spoof_throughput_timed", "attack:free_rider_cr"})

if TYPE_CHECKING:
    import pandas as pd


def defence_figure(df: pd.DataFrame) -> Figure | None:
    """Three bar panels per dataset and non-IID level pooled (mean over seeds); ``None``
    without trust-mode study rows."""
    table = defence_table(df)
    if table.empty:
        return None
    pooled = table.groupby(["method", "display"], sort=False).agg(
        accuracy=("accuracy_mean", "mean"), weight=("attacker_weight_mean", "mean"),
        stake=("attacker_stake_wei_mean", "mean")).reset_index()
    fig = Figure(figsize=(7.5, 7.0), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    x = np.arange(len(pooled))
    defended = [m in DEFENDED for m in pooled["method"]]
    colors = [PALETTE["blue"] if d else PALETTE["vermillion"] for d in defended]
    panels = (("accuracy", "ensemble\naccuracy"), ("weight", "attacker weight\n(final round)"),
              ("stake", "attacker stake\nafter (ETH)"))
    for ax, (column, label) in zip(axes, panels, strict=True):
        values = pooled[column].to_numpy(dtype=float)
        if column == "stake":
            values = values / 1e18
        ax.bar(x, values, color=colors, edgecolor="black", linewidth=0.4)
        ax.set_ylabel(label)
    axes[-1].set_xticks(x, list(pooled["display"]), rotation=30, ha="right")
    fig.suptitle("Cheats without (vermillion) and with (blue) their trust-mode defence")
    return fig
