"""The embedded chain: eth-tester's py-evm backend in this process, set up for speed (gas
estimated in one execution) and for web3's calls."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3


def _single_pass_gas_estimate(state: Any, transaction: Any) -> int:
    """Gas estimate from one execution at the block gas limit (py-evm's default bisects).

    Returns the intrinsic gas plus the execution's gas before refunds; callers add headroom
    (see the client's gas limits), which also covers the 63/64 rule of nested calls.
    """
    from eth.vm.spoof import SpoofTransaction

    spoofed = SpoofTransaction(
        transaction, gas=state.gas_limit, gas_price=0, max_fee_per_gas=0, max_priority_fee_per_gas=0
    )
    snapshot = state.snapshot()
    try:
        computation = state.apply_transaction(spoofed)
        if computation.is_error:
            raise computation.error
        return int(transaction.intrinsic_gas) + int(computation.get_gas_used())
    finally:
        state.revert(snapshot)


def _numeric_block(endpoint: Any) -> Any:
    """``eth_estimateGas`` at a block number: web3 sends the number as hex, which eth-tester
    (unlike its ``eth_call``) does not take; hand it over as an integer."""

    def call(tester: Any, params: Any) -> Any:
        if len(params) > 1 and isinstance(params[1], str) and params[1].startswith("0x"):
            params = [params[0], int(params[1], 16), *params[2:]]
        return endpoint(tester, params)

    return call


def embedded_web3() -> tuple[Web3, LocalAccount]:
    """An in-process py-evm chain (eth-tester) with one-pass gas estimates, and the account of
    its first pre-funded test key."""
    from eth_tester import EthereumTester, PyEVMBackend
    from web3 import EthereumTesterProvider

    backend = PyEVMBackend()
    backend.chain.gas_estimator = staticmethod(_single_pass_gas_estimate)
    tester = EthereumTester(backend=backend)
    provider = EthereumTesterProvider(tester)
    endpoints = dict(provider.api_endpoints or {})
    endpoints["eth"] = {**endpoints["eth"],
                        "estimateGas": _numeric_block(endpoints["eth"]["estimateGas"])}
    provider.api_endpoints = endpoints
    funded_key = tester.backend.account_keys[0]
    return Web3(provider), Account.from_key(funded_key.to_bytes())
