"""The trust-mode adversarial table: each cheat without and with its defence, with the final
ensemble's accuracy, the attacker's final round weight and its stake after the run, recomputed
from the result rows (the attacker is marked by a round-0 ``attacker`` row)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from chainlearn_ray.results.schema import ENSEMBLE

if TYPE_CHECKING:
    import pandas as pd

#: Row labels, in presentation order.
DEFENCE_ROWS: Final[dict[str, str]] = {
    "attack:lazy": "Lazy",
    "attack:inflated_no_audit": "Inflated, no audit",
    "attack:inflated_audit": "Inflated, audited",
    "attack:spoof_tier_self": "Spoof-tier, self-reported PoC",
    "attack:spoof_tier_timed": "Spoof-tier, verifier-timed PoC",
    "attack:spoof_throughput_self": "Spoof-throughput, self-reported PoC",
    "attack:spoof_throughput_timed": "Spoof-throughput, verifier-timed PoC",
    "attack:free_rider_no_cr": "Free-rider, one-step submission",
    "attack:free_rider_cr": "Free-rider, commit-reveal + audit",
}
COLUMNS: Final = ("dataset", "alpha", "method", "display", "n", "accuracy_mean", "accuracy_std",
                  "attacker_weight_mean", "attacker_stake_wei_mean")


def _per_seed(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, alpha, seed, method): final accuracy, attacker weight and stake."""
    import pandas as pd

    marks = df[df["metric"] == "attacker"]
    out = []
    keys = ["dataset", "alpha", "seed", "method"]
    for (dataset, alpha, seed, method), mark in marks.groupby(keys, sort=True):
        if method not in DEFENCE_ROWS:
            continue  # a seed-protocol attack of the main study
        run = df[(df["dataset"] == dataset) & (df["alpha"] == alpha) & (df["seed"] == seed)
                 & (df["method"] == method)]
        if method == "attack:lazy" and not (run["metric"] == "stake_wei").any():
            continue  # the main study's Lazy row (seed protocol), not the trust-mode one
        last = int(run["round"].max())
        final = run[run["round"] == last]
        attacker = str(mark["hospital"].iloc[0])

        def value(hospital: str, metric: str, default: float, frame: pd.DataFrame = final
                  ) -> float:
            hit = frame[(frame["hospital"] == hospital) & (frame["metric"] == metric)]
            return float(hit["value"].iloc[0]) if len(hit) else default

        out.append({"dataset": dataset, "alpha": float(alpha), "seed": int(seed),
                    "method": method, "accuracy": value(ENSEMBLE, "accuracy", float("nan")),
                    "attacker_weight": value(attacker, "weight", 0.0),
                    "attacker_stake_wei": value(attacker, "stake_wei", float("nan"))})
    return pd.DataFrame(out, columns=[*keys, "accuracy", "attacker_weight",
                                      "attacker_stake_wei"])


def defence_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean (and accuracy's sample std) over seeds of every study row; empty without rows."""
    import pandas as pd

    per_seed = _per_seed(df)
    if per_seed.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    grouped = per_seed.groupby(["dataset", "alpha", "method"], sort=True)
    table = grouped.agg(n=("seed", "nunique"), accuracy_mean=("accuracy", "mean"),
                        accuracy_std=("accuracy", "std"),
                        attacker_weight_mean=("attacker_weight", "mean"),
                        attacker_stake_wei_mean=("attacker_stake_wei", "mean")).reset_index()
    order = {m: i for i, m in enumerate(DEFENCE_ROWS)}
    table["display"] = table["method"].map(lambda m: DEFENCE_ROWS.get(m, m))
    table = table.sort_values(["dataset", "alpha", "method"],
                              key=lambda c: c.map(order) if c.name == "method" else c)
    return table.loc[:, list(COLUMNS)].reset_index(drop=True)
