"""Run manifests: configuration, package versions, git revision and chain facts of a result."""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from chainlearn_ray import __version__

PACKAGES = (
    "torch",
    "torchvision",
    "ray",
    "web3",
    "eth-tester",
    "py-evm",
    "numpy",
    "pandas",
    "pyarrow",
    "medmnist",
    "scipy",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape results (missing ones omitted).

    Read once per process: a run rewrites its manifest after every round, and the packages it
    has loaded do not change under it.
    """
    return dict(_package_versions())


@functools.cache
def _package_versions() -> dict[str, str]:
    out = {"chainlearn_ray": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _git(where: Path, *args: str) -> str:
    """Output of one git command run in ``where`` (raises on failure)."""
    return subprocess.run(
        ["git", *args], cwd=where, capture_output=True, text=True, timeout=5, check=True
    ).stdout.strip()


def git_revision(path: str | Path | None = None) -> str:
    """``git describe``-style revision of the source tree (``"unknown"`` outside a checkout).

    Read once per process and folder: the revision of the code this process loaded, even if
    the tree is edited while a run goes on.
    """
    return _revision_of(Path(path) if path else Path(__file__).resolve().parent)


@functools.cache
def _revision_of(where: Path) -> str:
    try:
        rev = _git(where, "rev-parse", "HEAD")
        dirty = _git(where, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


def config_digest(config: dict[str, Any]) -> str:
    """Short stable digest of a plain config dict (names a run reproducibly)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file (e.g. the dataset file a run read)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_manifest(config: dict[str, Any], **facts: Any) -> dict[str, Any]:
    """The manifest dict: config, versions, git revision, plus ``facts`` (chain, data, status,
    and ``clock``: the simulated clock, throttle and cost table a run used)."""
    return {
        "config": config,
        "versions": package_versions(),
        "git_revision": git_revision(),
        "platform": platform.platform(),
        **facts,
    }
