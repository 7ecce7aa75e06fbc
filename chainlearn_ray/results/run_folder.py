"""A run's results folder: what it holds, whether a new run may write there, and what a
resumed run must match.

Nothing here deletes anything a user did not ask to lose: a folder that holds a run is refused
unless the caller resumes it or overwrites it (:data:`EXISTING`), and an overwrite removes the
run's own files only (:func:`clear_run`), after every check of the new run has passed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from chainlearn_ray.errors import ConfigError

#: What a run writes into its folder (the run's own files).
RUN_FILES = ("results.parquet", "manifest.json", "receipts.json", "journal.json")
CHECKPOINTS = "checkpoints"

#: What to do with a folder that holds a run: refuse (the default), resume it, overwrite it.
Existing = Literal["refuse", "resume", "overwrite"]
EXISTING: tuple[str, ...] = ("refuse", "resume", "overwrite")


def holds_run(out: str | Path) -> bool:
    """Whether ``out`` holds (part of) a run: its manifest, results or checkpoints."""
    out = Path(out)
    return out.is_dir() and any((out / name).exists() for name in (*RUN_FILES, CHECKPOINTS))


def check_writable(out: str | Path, setting: str = "--out") -> None:
    """Refuse an ``out`` that is a file, lies under a file, or cannot be written (a read-only
    file system, no permission), touching nothing.

    Raises
    ------
    ConfigError
        One line naming ``setting`` and the path.
    """
    out = Path(out)
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "is a file" if probe == out else f"lies under the file {probe}"
        raise ConfigError(f"{setting} {out} {what}: pass a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".chainlearn-probe-", dir=probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{setting} {out} cannot be written ({reason} at {probe}): pass a "
                          "writable folder") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)


def check_out(out: str | Path, existing: str = "refuse", setting: str = "--out") -> None:
    """Every check of a run's folder before anything starts: writable, and a folder that
    holds a run only with ``existing`` resume or overwrite (and resume only of a run).

    Raises
    ------
    ConfigError
        One line saying what to pass.
    """
    if existing not in EXISTING:
        raise ConfigError(f"existing must be one of {', '.join(EXISTING)}, got {existing!r}")
    check_writable(out, setting)
    has = holds_run(out)
    if existing == "refuse" and has:
        raise ConfigError(f"{setting} {out} holds a run: pass --resume to continue it, "
                          "--overwrite to replace it, or another --out")
    if existing == "resume" and not (Path(out) / "manifest.json").is_file():
        raise ConfigError(f"--resume: {out} holds no run to resume (no manifest.json); "
                          "drop --resume to start one")


def read_manifest(out: str | Path) -> dict[str, Any]:
    """The manifest of the run in ``out`` (a one-line error when it cannot be read)."""
    path = Path(out) / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--resume: cannot read {path} ({exc}); start the run again with "
                          "--overwrite") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--resume: {path} is not a run manifest")
    return data


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any],
                       prefix: str = "") -> list[str]:
    """``key: old -> new`` for every dotted key whose value differs (missing: ``<unset>``)."""
    out: list[str] = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(config_differences(a, b, name + "."))
        elif _plain(a) != _plain(b):
            out.append(f"{name}: {a!r} -> {b!r}")
    return out


def _plain(value: Any) -> Any:
    """``value`` as JSON would read it back (tuples as lists, ...)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def check_resumable(manifest: Mapping[str, Any], config: Mapping[str, Any],
                    out: str | Path) -> int:
    """The rounds the run in ``out`` completed, after checking that ``config`` is the one it
    ran with and that it can go on.

    Raises
    ------
    ConfigError
        The configs differ (the differing keys named) or the run is complete.
    """
    diff = config_differences(manifest.get("config", {}), config)
    if diff:
        shown = "; ".join(diff[:4]) + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")
        raise ConfigError(f"--resume: the config differs from the run in {out} ({shown}): "
                          "pass the same settings, or --overwrite to start afresh")
    if manifest.get("status") == "complete":
        raise ConfigError(f"--resume: the run in {out} is complete; nothing to resume")
    return int(manifest.get("rounds_completed", 0) or 0)


def clear_run(out: str | Path) -> None:
    """Remove the run's own files from ``out`` (see :data:`RUN_FILES`), nothing else."""
    out = Path(out)
    for name in RUN_FILES:
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
    if (out / CHECKPOINTS).is_dir():
        shutil.rmtree(out / CHECKPOINTS)


def remove_if_empty(*folders: Path) -> None:
    """Remove each folder that exists and is empty, in the order given (children first)."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()
