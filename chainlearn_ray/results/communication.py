"""The communication table: bytes per hospital per round crossing a hospital's boundary, and
the bytes of serving one query, per dataset and method (see
:mod:`chainlearn_ray.methods.comm` for what each method's rows count)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import pandas as pd

from chainlearn_ray.results.tables import display_name, order_methods

COMM_UP: Final = "comm_bytes_up"
COMM_DOWN: Final = "comm_bytes_down"
SERVE: Final = "serve_bytes_per_query"


def communication_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean bytes sent up and down per hospital per round, per dataset and method.

    Built from ``comm_bytes_up`` / ``comm_bytes_down`` rows (one per hospital and round); a
    hospital-round with only one direction counts 0 bytes for the other.

    Parameters
    ----------
    df:
        Results rows (see :mod:`chainlearn_ray.results.schema`).

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset, method, display, hospital_rounds, bytes_up, bytes_down,
        bytes_total`` (mean bytes per hospital per round) and ``serve_per_query`` (mean of the
        ``serve_bytes_per_query`` rows: bytes on the network to answer one query with the final
        predictor; NaN without such rows); empty when there are no traffic rows.
    """
    columns = ["dataset", "method", "display", "hospital_rounds"]
    columns += ["bytes_up", "bytes_down", "bytes_total", "serve_per_query"]
    rows = df[df["metric"].isin([COMM_UP, COMM_DOWN])]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    keys = ["run_id", "dataset", "alpha", "seed", "method", "round", "hospital"]
    wide = rows.pivot_table(index=keys, columns="metric", values="value", aggfunc="sum")
    wide = wide.reindex(columns=[COMM_UP, COMM_DOWN]).fillna(0.0).reset_index()
    wide["bytes_total"] = wide[COMM_UP] + wide[COMM_DOWN]
    grouped = wide.groupby(["dataset", "method"], sort=False)
    table = grouped.agg(
        hospital_rounds=("bytes_total", "size"),
        bytes_up=(COMM_UP, "mean"),
        bytes_down=(COMM_DOWN, "mean"),
        bytes_total=("bytes_total", "mean"),
    ).reset_index()
    table["display"] = table["method"].map(display_name)
    serve = df[df["metric"] == SERVE].groupby(["dataset", "method"])["value"].mean()
    table["serve_per_query"] = [serve.get((d, m), float("nan"))
                                for d, m in zip(table["dataset"], table["method"], strict=True)]
    order = {m: i for i, m in enumerate(order_methods(table["method"]))}
    table = table.sort_values(["dataset", "method"], key=_sort_key(order), ignore_index=True)
    table["hospital_rounds"] = table["hospital_rounds"].astype("int64")
    return table[columns]


def _sort_key(order: Mapping[str, int]) -> Callable[[pd.Series], pd.Series]:
    """Sort key putting the ``method`` column in canonical order, other columns as they are."""

    def key(col: pd.Series) -> pd.Series:
        return col.map(order) if col.name == "method" else col

    return key
