"""Nonces of the accounts a chain connection sends from, tracked locally between sends."""

from __future__ import annotations

import threading

from web3 import Web3


class NonceTracker:
    """Per-account nonces kept locally (one ``eth_getTransactionCount`` per account)."""

    def __init__(self, w3: Web3) -> None:
        self._w3 = w3
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def peek(self, address: str) -> int:
        """The nonce the account's next transaction must carry."""
        key = Web3.to_checksum_address(address)
        with self._lock:
            if key not in self._next:
                self._next[key] = int(self._w3.eth.get_transaction_count(key, "pending"))
            return self._next[key]

    def reserve(self, address: str) -> int:
        """Take the next nonce of the account (it will be used by a transaction sent now)."""
        nonce = self.peek(address)
        with self._lock:
            self._next[Web3.to_checksum_address(address)] = nonce + 1
        return nonce

    def mark_used(self, address: str, nonce: int) -> None:
        """Record that a transaction with ``nonce`` was accepted for ``address``."""
        key = Web3.to_checksum_address(address)
        with self._lock:
            self._next[key] = max(self._next.get(key, 0), nonce + 1)

    def resync(self, address: str) -> None:
        """Forget the local nonce of ``address`` (re-read from the node next time)."""
        with self._lock:
            self._next.pop(Web3.to_checksum_address(address), None)
