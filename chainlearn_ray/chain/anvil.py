"""The local anvil node: finding the npm-installed binary, starting it, waiting until ready."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from web3 import Web3

from chainlearn_ray.chain.artifact import contracts_dir
from chainlearn_ray.errors import ChainError

logger = logging.getLogger(__name__)

#: Environment variable naming an anvil executable to use instead of contracts/node_modules'.
ANVIL_ENV: Final = "CHAINLEARN_ANVIL"


def find_anvil() -> Path | None:
    """The anvil binary: ``$CHAINLEARN_ANVIL``, else the one installed in contracts/node_modules."""
    env = os.environ.get(ANVIL_ENV)
    if env:
        return Path(env) if Path(env).is_file() else None
    contracts = contracts_dir()
    if contracts is None:
        return None
    system = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(platform.system())
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    name = "anvil.exe" if system == "win32" else "anvil"
    scope = contracts / "node_modules" / "@foundry-rs"
    candidates = [scope / f"anvil-{system}-{arch}" / "bin" / name]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("anvil", path=str(contracts / "node_modules" / ".bin"))
    return Path(found) if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_anvil(
    extra_args: Sequence[str] = (), timeout: float = 30.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start anvil on a free loopback port and wait until it answers.

    Returns
    -------
    tuple
        The process and its JSON-RPC URL.

    Raises
    ------
    ChainError
        When the binary is missing or the node does not come up in ``timeout`` seconds.
    """
    binary = find_anvil()
    if binary is None:
        raise ChainError(
            "the anvil binary was not found: run `npm ci` in contracts/ (it installs "
            f"@foundry-rs/anvil), or set {ANVIL_ENV} to an anvil executable"
        )
    port = _free_port()
    cmd = [str(binary), "--host", "127.0.0.1", "--port", str(port), "--silent", *extra_args]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 2}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise ChainError(f"anvil exited with code {process.returncode}: {err.strip()}")
        try:
            w3.eth.chain_id  # noqa: B018 - readiness probe
            logger.info("anvil (pid %d) listening on %s", process.pid, url)
            return process, url
        except Exception:
            time.sleep(0.05)
    process.kill()
    process.wait(timeout=5)
    raise ChainError(f"anvil did not answer on {url} within {timeout:.0f} s")
