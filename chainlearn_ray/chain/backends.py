"""Chain backends: in-process EVM (embedded), any JSON-RPC node (rpc), a local anvil node."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Final

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.types import TxReceipt

from chainlearn_ray.chain.anvil import start_anvil
from chainlearn_ray.chain.nonces import NonceTracker
from chainlearn_ray.errors import ChainError, ConfigError, RpcUnreachableError

logger = logging.getLogger(__name__)

BACKENDS: Final = ("embedded", "rpc", "anvil")

#: Private key of the first account of the public development mnemonic
#: ("test test ... junk") that anvil and hardhat fund on chain id 31337. Never use on a real chain.
DEV_CHAIN_ID: Final = 31337
DEV_OWNER_KEY: Final = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

#: Environment variables read by :func:`connect`.
OWNER_KEY_ENV: Final = "CHAINLEARN_OWNER_KEY"

#: Priority fee offered by every transaction (1 gwei).
PRIORITY_FEE_WEI: Final = 10**9
_RECEIPT_POLL_S: Final = 0.005
_FEE_TTL_S: Final = 1.0
_RPC_ATTEMPTS: Final = 5
_UNUSED_MIDDLEWARE: Final = (
    "gas_price_strategy",
    "ens_name_to_address",
    "validation",
    "gas_estimate",
)


class ChainConnection:
    """A Web3 connection with a funded owner account, usable as a context manager.

    Attributes
    ----------
    w3:
        The Web3 instance.
    chain_id:
        The chain id.
    owner:
        The funded owner account (deploys and administers the contract).
    backend:
        ``"embedded"``, ``"rpc"`` or ``"anvil"``.
    rpc_url:
        The JSON-RPC URL (``None`` for the embedded chain).
    nonces:
        Local nonce tracker shared by everything sending through this connection.
    """

    def __init__(
        self,
        w3: Web3,
        owner: LocalAccount,
        backend: str,
        rpc_url: str | None = None,
        process: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.w3 = w3
        self.owner = owner
        self.backend = backend
        self.rpc_url = rpc_url
        self.chain_id = int(w3.eth.chain_id)
        self.nonces = NonceTracker(w3)
        #: Every signed transaction this connection sent, in order (hex): replayed on a fresh
        #: chain of the same backend, it rebuilds the chain's state (see :meth:`replay`).
        self.journal: list[str] = []
        self._process = process
        self._fees: dict[str, int] | None = None
        self._fees_at = 0.0
        w3.eth.default_account = owner.address
        for name in _UNUSED_MIDDLEWARE:  # every transaction here is built and signed locally
            if name in w3.middleware_onion:
                w3.middleware_onion.remove(name)

    def fee_fields(self, max_age: float = _FEE_TTL_S) -> dict[str, int]:
        """EIP-1559 fee fields for a transaction sent now (twice the base fee plus a tip).

        The base fee is re-read when the cached one is older than ``max_age`` seconds (0: now):
        a fee cap of twice the base fee stays valid for several blocks of the steepest base-fee
        rise (12.5 % a block).
        """
        now = time.monotonic()
        if self._fees is None or max_age <= 0 or now - self._fees_at > max_age:
            block = self.w3.eth.get_block("latest")
            base_fee = int(block.get("baseFeePerGas", 0) or 0)
            self._fees = {
                "maxFeePerGas": 2 * base_fee + PRIORITY_FEE_WEI,
                "maxPriorityFeePerGas": PRIORITY_FEE_WEI,
            }
            self._fees_at = now
        return dict(self._fees)

    def wait_for_receipt(self, tx_hash: bytes | str, timeout: float = 120.0) -> TxReceipt:
        """Wait for a transaction's receipt with a short poll interval."""
        try:  # automining nodes (embedded, anvil) already have it: skip the polling loop
            return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            pass
        return self.w3.eth.wait_for_transaction_receipt(
            tx_hash,  # type: ignore[arg-type]
            timeout=timeout,
            poll_latency=_RECEIPT_POLL_S,
        )

    def fund(self, address: str, wei: int) -> None:
        """Send ``wei`` from the owner to ``address`` and wait until it is mined."""
        self.fund_many([address], wei)

    def fund_many(self, addresses: Iterable[str], wei: int) -> None:
        """Send ``wei`` from the owner to each address, then wait for all transfers."""
        hashes = []
        for address in addresses:
            transfer = {"to": Web3.to_checksum_address(address), "value": int(wei), "gas": 21_000}
            try:
                hashes.append(self.send_as_owner(transfer))
            except Exception as exc:
                raise ChainError(
                    f"funding {address} from the owner {self.owner.address} failed ({exc}): "
                    "check that the owner account holds enough ETH"
                ) from exc
        for tx_hash in hashes:
            if self.wait_for_receipt(tx_hash)["status"] != 1:
                raise ChainError(f"funding transaction {tx_hash.hex()} failed")

    def set_next_block_timestamp(self, timestamp: int) -> None:
        """Mine the next block at ``timestamp`` (development chains only: the embedded chain's
        ``time_travel``, anvil's and hardhat's ``evm_setNextBlockTimestamp``)."""
        if self.backend == "embedded":
            tester = getattr(self.w3.provider, "ethereum_tester", None)
            if tester is None:
                raise ChainError("this embedded chain has no eth-tester to move its clock")
            try:
                tester.time_travel(int(timestamp))
            except Exception as exc:
                raise ChainError(f"cannot move the embedded chain's clock: {exc}") from exc
            return
        response = self.w3.provider.make_request(
            "evm_setNextBlockTimestamp", [int(timestamp)]  # type: ignore[arg-type]
        )
        if response.get("error"):
            raise ChainError(
                f"the node refused evm_setNextBlockTimestamp({timestamp}): {response['error']}; "
                "only development nodes (anvil, hardhat) can move their clock"
            )

    def send_as_owner(self, fields: dict[str, Any]) -> bytes:
        """Sign ``fields`` with the owner key (next local nonce, current fees) and send them.

        When the node says the nonce is stale (another client used the same key), the nonce
        is re-read and the transaction re-signed once.

        Returns
        -------
        bytes
            The transaction hash.
        """
        return self.send_as(self.owner, fields)

    def send_as(self, account: LocalAccount, fields: dict[str, Any]) -> bytes:
        """Like :meth:`send_as_owner`, signed by ``account`` (a verifier or an auditor key the
        coordinator holds)."""
        try:
            return self._sign_and_send(account, fields)
        except Exception as exc:
            self.nonces.resync(account.address)
            if "nonce" not in str(exc).lower():
                raise
            logger.info("nonce of %s was stale (%s); re-reading it", account.address, exc)
        try:
            return self._sign_and_send(account, fields)
        except Exception:
            self.nonces.resync(account.address)
            raise

    def _sign_and_send(self, account: LocalAccount, fields: dict[str, Any]) -> bytes:
        tx = {
            "value": 0,
            **fields,
            "nonce": self.nonces.reserve(account.address),
            "chainId": self.chain_id,
            "type": 2,
            **self.fee_fields(),
        }
        signed = account.sign_transaction(tx)  # type: ignore[arg-type]
        return self.send_raw(bytes(signed.raw_transaction))

    def send_raw(self, raw: bytes) -> bytes:
        """Send a signed transaction (recorded in :attr:`journal`); returns its hash."""
        tx_hash = bytes(self.w3.eth.send_raw_transaction(raw))
        self.journal.append("0x" + bytes(raw).hex())
        return tx_hash

    def replay(self, journal: Iterable[str]) -> list[TxReceipt]:
        """Send the signed transactions of ``journal`` (an earlier connection's
        :attr:`journal`) in order and wait for each; on a fresh chain of the same backend this
        rebuilds the state that connection left. Returns the receipts."""
        receipts = []
        for raw in journal:
            try:
                tx_hash = self.send_raw(bytes.fromhex(raw.removeprefix("0x")))
            except Exception as exc:
                raise ChainError(
                    f"replaying the run's chain journal failed ({exc}): the chain is not the "
                    "fresh chain that run started from") from exc
            receipts.append(self.wait_for_receipt(tx_hash))
        self.nonces = NonceTracker(self.w3)  # every account's nonce moved
        return receipts

    def close(self) -> None:
        """Release the connection; stops the anvil node this connection started."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            logger.info("stopped anvil (pid %d)", process.pid)

    def __enter__(self) -> ChainConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:  # a best effort: never leave an anvil process behind
        with contextlib.suppress(Exception):
            self.close()


def _embedded(owner_key: str | None) -> ChainConnection:
    from chainlearn_ray.chain.embedded import embedded_web3

    w3, funded = embedded_web3()
    conn = ChainConnection(w3, funded, "embedded")
    if owner_key is not None:
        owner = Account.from_key(owner_key)
        conn.fund(owner.address, 10**23)  # a tenth of a pre-funded test account
        conn.owner = owner
        w3.eth.default_account = owner.address
    return conn


def _http_web3(rpc_url: str) -> Web3:
    """A Web3 over HTTP that answered ``eth_chainId``, after bounded retries."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    delay = 0.1
    last: Exception | None = None
    for attempt in range(1, _RPC_ATTEMPTS + 1):
        try:
            w3.eth.chain_id  # noqa: B018 - a cheap liveness probe
            return w3
        except Exception as exc:
            last = exc
            logger.debug("RPC %s not reachable (attempt %d): %s", rpc_url, attempt, exc)
            time.sleep(delay)
            delay *= 2
    raise RpcUnreachableError(
        f"no JSON-RPC node answered at {rpc_url} after {_RPC_ATTEMPTS} attempts ({last}): check "
        "that the node is running, the URL's host and port, and that nothing blocks the "
        "connection; or use --chain embedded"
    )


def _owner_for(w3: Web3, owner_key: str | None) -> LocalAccount:
    key = owner_key or os.environ.get(OWNER_KEY_ENV)
    if key is None:
        if int(w3.eth.chain_id) != DEV_CHAIN_ID:
            raise ConfigError(
                f"no owner key for chain {w3.eth.chain_id}: pass --owner-key or set "
                f"{OWNER_KEY_ENV} to the private key of a funded account"
            )
        logger.info("using the public development key as owner (chain id %d)", DEV_CHAIN_ID)
        key = DEV_OWNER_KEY
    owner: LocalAccount = Account.from_key(key)
    if int(w3.eth.get_balance(owner.address)) == 0:
        raise ChainError(f"owner account {owner.address} has no ETH on this chain: fund it first")
    return owner


def _rpc(rpc_url: str, owner_key: str | None) -> ChainConnection:
    w3 = _http_web3(rpc_url)
    return ChainConnection(w3, _owner_for(w3, owner_key), "rpc", rpc_url=rpc_url)


def _anvil(owner_key: str | None) -> ChainConnection:
    process, url = start_anvil()
    try:
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10}))
        return ChainConnection(w3, _owner_for(w3, owner_key), "anvil", url, process)
    except BaseException:
        process.kill()
        process.wait(timeout=5)
        raise


def connect(
    backend: str = "embedded", rpc_url: str | None = None, owner_key: str | None = None
) -> ChainConnection:
    """Open a chain connection with a funded owner account.

    Parameters
    ----------
    backend:
        ``"embedded"`` (in-process eth-tester + py-evm, the default), ``"rpc"`` (any JSON-RPC
        node at ``rpc_url``) or ``"anvil"`` (starts the anvil binary from contracts/node_modules
        on a free loopback port and stops it on :meth:`ChainConnection.close`).
    rpc_url:
        JSON-RPC URL; required for ``"rpc"`` (giving it selects ``"rpc"`` when the backend is
        left at its default).
    owner_key:
        Private key of the owner. Defaults: a pre-funded test account on the embedded chain;
        ``$CHAINLEARN_OWNER_KEY``, else the public development key on chain id 31337.

    Returns
    -------
    ChainConnection
        Close it (or use it in a ``with`` block) to release the node.

    Raises
    ------
    ConfigError
        Unknown backend, missing URL or missing owner key.
    RpcUnreachableError
        The node at ``rpc_url`` did not answer after bounded retries.
    """
    if rpc_url and backend == "embedded":
        backend = "rpc"
    if backend not in BACKENDS:
        raise ConfigError(f"unknown chain backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend == "embedded":
        return _embedded(owner_key)
    if backend == "rpc":
        if not rpc_url:
            raise ConfigError("the rpc backend needs a JSON-RPC URL (--rpc-url http://host:port)")
        return _rpc(rpc_url, owner_key)
    return _anvil(owner_key)
