"""Atomic Parquet/JSON writes and reading of run, sweep and dataset results layouts."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from chainlearn_ray.errors import DataError
from chainlearn_ray.results.atomic import write_atomic, write_json_atomic
from chainlearn_ray.results.schema import COLUMNS, SCHEMA, coerce

__all__ = ["write_atomic", "write_json_atomic"]  # kept importable from here

logger = logging.getLogger(__name__)

#: File of a single run's rows inside a run folder.
RUN_RESULTS = "results.parquet"
#: Folder of a sweep's Parquet dataset inside a sweep folder.
SWEEP_RESULTS = "results"
#: Manifest written next to the results of a run or a sweep.
MANIFEST = "manifest.json"
#: Prefix of a dataset folder in sweeps written before dataset folders took the plain name
#: (``dataset=<name>``, which pandas and pyarrow read as a second ``dataset`` column); still read.
LEGACY_PARTITION_PREFIX = "dataset="

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")

_LAYOUTS = (
    f"a run folder with {RUN_RESULTS}, a sweep folder with "
    f"{SWEEP_RESULTS}/<dataset>/<cell>.parquet, a single .parquet file, "
    "or a directory of <dataset> folders or .parquet files"
)


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` reduced to the schema's columns, in order, with the schema's dtypes.

    Parameters
    ----------
    frame:
        A results frame holding at least every column of :data:`~.schema.COLUMNS`.

    Returns
    -------
    pandas.DataFrame
        A new frame (fresh index) with string, int64 and float64 columns as in the schema.

    Raises
    ------
    DataError
        When a column is missing or a value cannot be converted to the column's type.
    """
    missing = [name for name in COLUMNS if name not in frame.columns]
    if missing:
        raise DataError(
            f"results frame lacks the column(s) {missing}; results need exactly {list(COLUMNS)} "
            "(build them with chainlearn_ray.results.schema.rows_to_frame)"
        )
    return coerce(frame)


def write_parquet_atomic(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a results frame to ``path`` as Parquet with the schema, atomically.

    The frame is validated against :data:`~.schema.SCHEMA` (extra columns are dropped with a
    warning), written to a hidden temp file in the destination folder, fsynced and renamed over
    ``path``; readers see either the old file or the complete new one, never a partial file.

    Parameters
    ----------
    frame:
        Tidy long-format results (see :mod:`chainlearn_ray.results.schema`).
    path:
        Destination file; parent folders are created.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    DataError
        When a schema column is missing or holds values of the wrong type.
    """
    extra = [name for name in frame.columns if name not in COLUMNS]
    if extra:
        logger.warning("dropping columns %s that are not in the results schema", extra)
    table = pa.Table.from_pandas(conform(frame), schema=SCHEMA, preserve_index=False)
    return write_atomic(Path(path), lambda handle: pq.write_table(table, handle))


def write_table_atomic(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write any table (no index) atomically as Parquet or CSV, chosen by the path's suffix.

    Raises :class:`DataError` when the suffix is neither ``.parquet`` nor ``.csv``.
    """
    target = Path(path)
    if target.suffix == ".parquet":
        table = pa.Table.from_pandas(frame, preserve_index=False)
        return write_atomic(target, lambda handle: pq.write_table(table, handle))
    if target.suffix == ".csv":
        data = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")

        def write(handle: IO[bytes]) -> None:
            handle.write(data)

        return write_atomic(target, write)
    raise DataError(f"cannot write a table to {target}: use a .parquet or .csv file name")


def _visible(path: Path) -> bool:
    """False for hidden or temp entries (names starting with ``.`` or ``_``)."""
    return not path.name.startswith((".", "_"))


#: Folders ``chainlearn stats`` / ``figures`` write their own tables into beside the results
#: they read (never results themselves).
DERIVED_FOLDERS = ("stats", "figures")


def _parquet_files(folder: Path) -> list[Path]:
    """Results files of a dataset directory: its dataset folders' files, then its own files
    (the derived ``stats`` and ``figures`` folders left out)."""
    files: list[Path] = []
    for part in sorted(p for p in folder.iterdir()
                       if p.is_dir() and _visible(p) and p.name not in DERIVED_FOLDERS):
        files.extend(_walk_parquet(part))
    own = (p for p in folder.iterdir() if p.is_file() and p.suffix == ".parquet" and _visible(p))
    files.extend(sorted(own))
    return files


def _walk_parquet(folder: Path) -> Iterator[Path]:
    """Every visible .parquet file below ``folder``, sorted, skipping hidden folders."""
    for entry in sorted(folder.iterdir()):
        if not _visible(entry):
            continue
        if entry.is_dir():
            yield from _walk_parquet(entry)
        elif entry.suffix == ".parquet":
            yield entry


def _folder_dataset(file: Path, root: Path | None) -> str:
    """Dataset name of the folder holding ``file`` inside the dataset directory ``root`` (its
    first folder below ``root``; "" for a file directly in ``root`` or read on its own)."""
    if root is None or file.parent == root:
        return ""
    name = file.relative_to(root).parts[0]
    return name.removeprefix(LEGACY_PARTITION_PREFIX)


def _read_file(file: Path, root: Path | None = None) -> pd.DataFrame:
    """One results file as a conformed frame; empty ``dataset`` values come from its folder."""
    try:
        table = pq.read_table(file)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read results file {file}: {exc}; delete or rewrite it") from exc
    missing = [name for name in COLUMNS if name not in table.column_names]
    if missing:
        raise DataError(
            f"{file} is not a results file: it lacks the column(s) {missing} (expected {_LAYOUTS})"
        )
    frame = conform(table.select(list(COLUMNS)).to_pandas())
    folder = _folder_dataset(file, root)
    if folder:
        frame.loc[frame["dataset"] == "", "dataset"] = folder
    return frame


def _results_files(path: Path) -> tuple[list[Path], Path | None]:
    """The results files a path stands for, by layout (see :func:`read_results`), and the
    dataset directory they lie in (None for a single file)."""
    if path.is_file():
        if path.suffix != ".parquet":
            raise DataError(f"{path} is not a .parquet file; expected {_LAYOUTS}")
        return [path], None
    if not path.is_dir():
        raise DataError(f"results path {path} does not exist; expected {_LAYOUTS}")
    run_file = path / RUN_RESULTS
    if run_file.is_file():
        return [run_file], None
    sweep_dir = path / SWEEP_RESULTS
    if sweep_dir.is_dir():
        return _parquet_files(sweep_dir), sweep_dir
    return _parquet_files(path), path


def read_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read every results row under ``path`` into one frame with the schema's columns and dtypes.

    Accepted layouts, tried in this order:

    * a single ``.parquet`` file;
    * a run folder holding ``results.parquet`` (its ``manifest.json`` is not read);
    * a sweep folder holding ``results/<dataset>/<cell>.parquet``;
    * a dataset directory: ``<dataset>/...`` folders and/or ``.parquet`` files directly inside
      it (for example a sweep's ``results/`` folder or one of its dataset folders).

    Hidden and temp files (names starting with ``.`` or ``_``) are skipped. Rows whose
    ``dataset`` is empty take the name of their dataset folder. Sweeps written with
    ``dataset=<name>`` folders read the same way.

    Parameters
    ----------
    path:
        File or folder to read.

    Returns
    -------
    pandas.DataFrame
        All rows, in file order (files sorted by path), with a fresh index.

    Raises
    ------
    DataError
        When the path does not exist, holds no results file, or a file is not a results file.
    """
    root = Path(path)
    files, folder = _results_files(root)
    if not files:
        raise DataError(f"no results found at {root}: expected {_LAYOUTS}")
    frames = [_read_file(file, folder) for file in files]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    logger.debug("read %d rows from %d file(s) under %s", len(frame), len(files), root)
    return conform(frame)


def _check_name(kind: str, name: str) -> None:
    """Reject names that are unsafe as a single path component."""
    if not _SAFE_NAME.match(name) or name.endswith(".tmp"):
        raise DataError(
            f"{kind} {name!r} cannot be used as a file name: use letters, digits and . _ = + - "
            "only, starting with a letter or digit"
        )


def cell_path(root: str | os.PathLike[str], dataset: str, cell_name: str) -> Path:
    """Path of a sweep cell's file: ``root/results/<dataset>/<cell_name>.parquet``.

    The folder takes the dataset's plain name, not the ``dataset=<name>`` of Hive partitioning:
    every file already holds its ``dataset`` column, and pandas, pyarrow, DuckDB and Polars
    read the folder as it is (a Hive folder would add a second, clashing ``dataset`` column).
    """
    _check_name("dataset", dataset)
    _check_name("cell name", cell_name)
    if dataset.startswith(LEGACY_PARTITION_PREFIX):
        raise DataError(f"dataset {dataset!r} cannot start with {LEGACY_PARTITION_PREFIX!r}")
    return Path(root) / SWEEP_RESULTS / dataset / f"{cell_name}.parquet"


def append_cell(
    frame: pd.DataFrame, root: str | os.PathLike[str], dataset: str, cell_name: str
) -> Path:
    """Store one sweep cell's rows atomically as its own file of the sweep's Parquet dataset.

    Writing a cell that already exists replaces it (a re-run cell never duplicates rows).
    Rows with an empty ``dataset`` are given ``dataset``.

    Parameters
    ----------
    frame:
        The cell's results rows.
    root:
        The sweep folder (the one holding ``results/`` and ``manifest.json``).
    dataset:
        Dataset name of the partition (``"pneumoniamnist"``).
    cell_name:
        Unique name of the cell across the sweep, e.g. ``"pneumoniamnist_a0.5_s42"``.

    Returns
    -------
    pathlib.Path
        The written cell file.

    Raises
    ------
    DataError
        When a name is unsafe as a file name or rows belong to another dataset.
    """
    path = cell_path(root, dataset, cell_name)
    rows = conform(frame)
    rows.loc[rows["dataset"] == "", "dataset"] = dataset
    others = sorted(set(rows["dataset"]) - {dataset})
    if others:
        raise DataError(
            f"cell {cell_name!r} of dataset {dataset!r} holds rows of dataset(s) {others}; "
            "write each dataset's rows as its own cell"
        )
    return write_parquet_atomic(rows, path)


def finished_cells(root: str | os.PathLike[str]) -> set[str]:
    """Names (file stems) of the cells stored in the sweep folder ``root``, in every dataset
    folder.

    Temp files of unfinished writes are not counted; a missing folder has no cells.
    """
    results = Path(root) / SWEEP_RESULTS
    if not results.is_dir():
        return set()
    return {file.stem for file in _parquet_files(results) if _folder_dataset(file, results)}
