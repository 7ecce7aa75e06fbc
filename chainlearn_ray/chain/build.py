"""Runs the Node.js build script that compiles FLCoordinator.sol into the shipped artifact."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from chainlearn_ray.chain.artifact import ARTIFACT_PATH, CONTRACTS_DIR_ENV, contracts_dir
from chainlearn_ray.errors import ArtifactError

logger = logging.getLogger(__name__)

#: Generous bound on one solc-js compile (it takes a few seconds).
BUILD_TIMEOUT_S = 300


def run_build(
    contracts: Path | None = None, out: Path | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Compile the contract with ``node contracts/build.mjs``.

    Parameters
    ----------
    contracts:
        The ``contracts/`` folder; found automatically by default.
    out:
        Artifact path to write (or compare with, in check mode); the package data by default.
    check:
        Compare a fresh compile with ``out`` instead of writing it (exit code 1 when stale).

    Returns
    -------
    subprocess.CompletedProcess
        The script's exit code and captured output.

    Raises
    ------
    ArtifactError
        When Node.js, the contracts folder or its ``node_modules`` is missing.
    """
    folder = contracts or contracts_dir()
    if folder is None or not (folder / "build.mjs").is_file():
        raise ArtifactError(
            "contracts/ (FLCoordinator.sol and build.mjs) was not found: run from a source "
            f"checkout, or set {CONTRACTS_DIR_ENV} / --contracts-dir"
        )
    node = shutil.which("node")
    if node is None:
        raise ArtifactError(
            "Node.js (`node`) is not on PATH: install Node.js 18+ to rebuild the contract "
            "(the shipped artifact needs no Node.js)"
        )
    if not (folder / "node_modules" / "solc").is_dir():
        raise ArtifactError(f"{folder / 'node_modules'} lacks solc: run `npm ci` in {folder} first")
    cmd = [node, str(folder / "build.mjs"), "--out", str((out or ARTIFACT_PATH).resolve())]
    if check:
        cmd.append("--check")
    logger.info("running %s", " ".join(cmd))
    return subprocess.run(
        cmd, cwd=folder, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
    )
