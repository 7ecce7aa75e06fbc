"""Atomic file writes (temp file, fsync, rename) for results, manifests and figures.

Kept free of pandas: a run's driver writes its results and manifest through this module alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

logger = logging.getLogger(__name__)


def _fsync_dir(folder: Path) -> None:
    """Flush a directory entry to disk (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    """The process's file-creation mask (read without changing it where Linux allows)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0)  # elsewhere: read by setting, restored at once
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through a hidden temp file in the same folder, fsync, then rename over it.

    A failure at any point removes the temp file and leaves a previous ``path`` untouched. The
    file gets the mode an ordinary ``open`` would give it (``0o666`` less the umask), so
    colleagues on a shared cluster read results as they read checkpoints; the temp file itself
    starts private.

    Parameters
    ----------
    path:
        Destination file; parent folders are created.
    write:
        Called once with the open binary temp file; writes the whole content.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(folder)
    logger.debug("wrote %s", path)
    return path


def _json_default(obj: Any) -> Any:
    """Convert numpy scalars/arrays, paths and sets into JSON-native values."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_json_atomic(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as JSON (sorted keys, indent 2, trailing newline) to ``path`` atomically.

    Parameters
    ----------
    obj:
        JSON-serialisable data; numpy scalars and arrays, paths and sets are converted.
    path:
        Destination file; parent folders are created.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    text = json.dumps(obj, sort_keys=True, indent=2, default=_json_default) + "\n"
    data = text.encode("utf-8")

    def write(handle: IO[bytes]) -> None:
        handle.write(data)

    return write_atomic(Path(path), write)


def write_rows_atomic(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write result rows to ``path`` as Parquet with the results schema, atomically.

    The same file as ``store.write_parquet_atomic(rows_to_frame(rows), path)`` writes, built
    with pyarrow alone (see :func:`chainlearn_ray.results.schema.rows_to_table`).
    """
    import pyarrow.parquet as pq

    from chainlearn_ray.results.schema import rows_to_table

    table = rows_to_table(rows)
    return write_atomic(Path(path), lambda handle: pq.write_table(table, handle))
