"""Checks of a run's chain settings in the driver, before Ray or any actor starts.

A node that does not answer, a URL that is none, an address with no FLCoordinator behind it
or a deployment that earlier runs already used would otherwise surface as a traceback from
inside the coordinator actor, after the hospitals were started. Nothing here sends a
transaction.
"""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from eth_utils import is_address, to_checksum_address

from chainlearn_ray.errors import ChainError, ConfigError

logger = logging.getLogger(__name__)

#: URL schemes of the JSON-RPC transports a run can use.
RPC_SCHEMES = ("http", "https")


def check_rpc_url(rpc_url: str) -> None:
    """Raise :class:`ConfigError` unless ``rpc_url`` is an http(s) URL with a host."""
    parts = urlparse(rpc_url)
    if parts.scheme not in RPC_SCHEMES or not parts.netloc:
        raise ConfigError(f"--rpc-url must be an http(s) URL such as http://127.0.0.1:8545, "
                          f"got {rpc_url!r}")


def check_chain(backend: str, rpc_url: str | None, contract: str | None) -> None:
    """Refuse chain settings a run cannot use, before anything starts.

    * ``rpc_url`` must be an http(s) URL and a node must answer there;
    * ``contract`` needs a node that already holds it (``--rpc-url``): the embedded chain
      and a fresh anvil node start empty;
    * ``contract`` must be an address holding this FLCoordinator build, and an unused one: a
      run registers its own hospitals and numbers its rounds from 1, so a deployment with
      registered hospitals or rounds is refused (deploy a fresh one by leaving out
      ``--contract``).

    Raises
    ------
    ConfigError, ChainError
        With a message that says what to change.
    """
    if rpc_url:
        check_rpc_url(rpc_url)
    if contract is not None and not is_address(contract):
        raise ConfigError(f"--contract must be a 20-byte hex address (0x + 40 hex digits), got "
                          f"{contract!r}")
    if contract is not None and not rpc_url:
        raise ConfigError(f"--contract {contract}: the {backend} chain starts empty, so there is "
                          "nothing to attach to; pass --rpc-url of the node that holds it, or "
                          "leave out --contract to deploy a fresh FLCoordinator")
    if not rpc_url:
        return
    from chainlearn_ray.chain.backends import connect
    from chainlearn_ray.chain.client import FLCoordinatorClient

    with connect("rpc", rpc_url=rpc_url) as conn:
        if contract is None:
            return
        address = to_checksum_address(contract)
        if not bytes(conn.w3.eth.get_code(address)):
            raise ChainError(f"no contract at {address} on chain {conn.w3.eth.chain_id}: check "
                             "the address, or leave out --contract to deploy a fresh one")
        client = FLCoordinatorClient.attach(conn, address)
        hospitals, round_ = int(client.hospital_count()), int(client.current_round())
        if hospitals or round_:
            raise ChainError(
                f"the FLCoordinator at {address} was used before ({hospitals} hospital(s) "
                f"registered, round {round_}): a run registers its own hospitals and starts at "
                "round 1, so it needs an unused deployment; leave out --contract to deploy a "
                "fresh one")
    logger.info("chain settings checked: %s %s", rpc_url, contract or "(fresh deployment)")
