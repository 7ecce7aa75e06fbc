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
    "balanced_accuracy": "test balanced accuracy: mean recall over the classes (fraction)",
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
    "dp_epsilon": "privacy spent by the hospital's DP-SGD training so far (ε, RDP accountant)",
    "dp_delta": "δ at which dp_epsilon is stated",
    "dp_target_epsilon": "the run's target ε (inf: the run's DP setting is off)",
    "attended": "1 when the hospital's update reached the chain this round, else 0",
    "status_dropout": "1: the hospital did not attend the round (its attendance draw)",
    "status_late": "1: the hospital missed the round's deadline on the simulated clock",
    "status_crashed": "1: the hospital's step failed (its process died, or it raised)",
    "status_timed_out": "1: the hospital exceeded the round timeout (its process restarted)",
    "status_rejected": "1: the server refused the hospital's result (e.g. a reverted submit)",
    "status_restarted": "1: the hospital's process died and it ran its step again in the round",
}
#: Metric names of the privacy rows.
DP_EPSILON = "dp_epsilon"
DP_DELTA = "dp_delta"
DP_TARGET = "dp_target_epsilon"


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


def rows_to_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """An Arrow table with exactly :data:`COLUMNS` and the schema's types, without pandas.

    Each value is converted as :func:`coerce` converts a frame's column: a missing value
    becomes ``""`` in a string column and ``0`` in an integer one (``NaN`` stays ``NaN`` in a
    float one); keys that are not columns are ignored. The columns are assembled from raw
    buffers: pyarrow's own conversion of Python values imports pandas (0.3-0.7 s of CPU),
    which a run's driver otherwise never needs.

    Raises
    ------
    DataError
        When a value cannot be converted to its column's type.
    """
    import pyarrow as pa

    rows = list(rows)
    arrays = []
    for name, typ in COLUMN_TYPES:
        try:
            arrays.append(_arrow_column([_cell(row.get(name), typ) for row in rows], typ))
        except (TypeError, ValueError, OverflowError) as exc:
            raise DataError(
                f"results column {name!r} cannot be stored as {typ}: {exc}; "
                "fix the values written to that column"
            ) from exc
    return pa.Table.from_arrays(arrays, schema=arrow_schema())


def _cell(value: Any, typ: str) -> Any:
    """One value converted to a column type (see :func:`rows_to_table`)."""
    missing = value is None or (isinstance(value, float) and value != value)
    if typ == "string":
        return "" if missing else str(value)
    if typ == "int64":
        return 0 if missing else int(value)
    return float("nan") if value is None else float(value)


def _arrow_column(values: list[Any], typ: str) -> pa.Array:
    """Converted values as an Arrow array of ``typ``, built from buffers."""
    import numpy as np
    import pyarrow as pa

    n = len(values)
    if typ == "string":
        encoded = [v.encode("utf-8") for v in values]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return pa.Array.from_buffers(pa.string(), n, [
            None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])
    data = np.asarray(values, dtype=np.int64 if typ == "int64" else np.float64)
    return pa.Array.from_buffers(getattr(pa, typ)(), n, [None, pa.py_buffer(data)])


def rows_to_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Build a frame with exactly :data:`COLUMNS`, in order and with the schema's dtypes."""
    return rows_to_table(rows).to_pandas()


def class_count_metric(label: int) -> str:
    """Metric name of a shard's count of class ``label`` (``"class_count_3"``)."""
    return f"class_count_{label}"
