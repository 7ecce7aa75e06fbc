"""Column schema of the tidy long-format results table shared by run, sweep, stats and figures."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from chainlearn_ray.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

#: Column name -> Arrow type name, in order (pandas and pyarrow load only when a frame is built,
#: so processes that merely produce rows, such as hospital actors, never pay for them).
COLUMN_TYPES: tuple[tuple[str, str], ...] = (
    ("run_id", "string"),
    ("dataset", "string"),
    ("alpha", "float64"),
    ("seed", "int64"),
    ("method", "string"),
    ("round", "int64"),
    ("hospital", "string"),
    ("tier", "string"),
    ("metric", "string"),
    ("value", "float64"),
)

COLUMNS: tuple[str, ...] = tuple(name for name, _ in COLUMN_TYPES)


def arrow_schema() -> pa.Schema:
    """The Arrow schema of the results table.

    One row = one measured number. ``hospital`` is a hospital id (``"h00"`` ...),
    ``"ensemble"`` for the method's aggregate, or ``"all"`` for run-level figures (gas, wall
    time, ...). ``round`` is the 1-based round, or 0 for figures that belong to no round (PoC,
    shards). ``method`` is a study method (``"ours"``, ``"fedavg"``, ...), an ablation
    (``"ablation:no_ece"``) or an attack (``"attack:inflated"``). ``tier`` is
    ``weak``/``medium``/``strong`` or ``""``.
    """
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, typ)()) for name, typ in COLUMN_TYPES])


def __getattr__(name: str) -> Any:
    """``SCHEMA``: the Arrow schema, built on first use."""
    if name == "SCHEMA":
        return arrow_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


ENSEMBLE = "ensemble"
ALL = "all"

#: Metric names with a fixed meaning across the project.
METRICS = {
    "accuracy": "test accuracy (fraction)",
    "macro_f1": "test macro-averaged F1 (fraction)",
    "ece": "expected calibration error on the metric split (fraction)",
    "confidence": "mean max-softmax on the metric split (fraction)",
    "weight": "on-chain ensemble weight (fixed point, SCALE 10000)",
    "shard_size": "training samples in the hospital's shard",
    "poc_throughput": "Proof-of-Capacity throughput (samples/s)",
    "gas": "gas used by an operation (see the operation column in receipts)",
    "round_seconds": "wall time of the round (s)",
    "simulated_seconds": "virtual-clock time of the hospital's round work (s)",
    "participants": "hospitals whose update reached the chain this round",
}


def coerce(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (holding every column of :data:`COLUMNS`) reduced to the schema, typed.

    Raises
    ------
    DataError
        When a value cannot be converted to its column's type.
    """
    out = frame.loc[:, list(COLUMNS)].reset_index(drop=True).copy()
    for name, typ in COLUMN_TYPES:
        try:
            if typ == "string":
                out[name] = out[name].fillna("").astype(str)
            elif typ == "int64":
                out[name] = out[name].fillna(0).astype("int64")
            else:
                out[name] = out[name].astype("float64")
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"results column {name!r} cannot be stored as {typ}: {exc}; "
                "fix the values written to that column"
            ) from exc
    return out


def rows_to_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Build a frame with exactly :data:`COLUMNS`, in order and with the schema's dtypes."""
    import pandas as pd

    return coerce(pd.DataFrame(list(rows), columns=list(COLUMNS)))


def class_count_metric(label: int) -> str:
    """Metric name of a shard's count of class ``label`` (``"class_count_3"``)."""
    return f"class_count_{label}"
