"""Gas measurement of the contract's trust mode: attested registration and stakes, then rounds of
commit, reveal and audit for every hospital, then every hospital's withdrawal."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Final

from eth_account.signers.local import LocalAccount

from chainlearn_ray.chain.backends import ChainConnection
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.chain.gas import GasReport, _row, gas_report, measurement_hospitals
from chainlearn_ray.chain.statements import (
    milli_samples,
    sign_attestation,
    sign_poc,
    update_commitment,
)
from chainlearn_ray.chain.trust import TrustConfig
from chainlearn_ray.chain.tx import (
    encode_commit_update,
    encode_deposit_stake,
    encode_reveal_update,
    encode_withdraw,
    sign_transaction,
)
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.protocol.poc import benchmark_hash
from chainlearn_ray.protocol.tiers import Tier

logger = logging.getLogger(__name__)

#: Trust parameters of the measurement (gas does not depend on the amounts): a 0.1 ETH minimum
#: stake, a 0.03 ETH pool per round, a 2 % audit tolerance, half the stake slashed, the default
#: tier thresholds (100 and 300 samples/s).
MEASUREMENT_TRUST: Final = TrustConfig(
    min_stake_wei=10**17,
    reward_per_round_wei=3 * 10**16,
    audit_tolerance=200,
    slash_fraction=5_000,
    medium_min_milli=100_000,
    strong_min_milli=300_000,
)
TRUST_ROUND_OPERATIONS: Final = (
    "startNewRound",
    "commitUpdate",
    "startRevealPhase",
    "revealUpdate",
    "reportAudit",
    "recordEnsemblePrediction",
)
TRUST_OPERATIONS: Final = (
    "deploy",
    "fundRewardPool",
    "issueChallenge",
    "registerHospitalAttested",
    "depositStake",
    *TRUST_ROUND_OPERATIONS,
    "withdraw",
)
#: Verifier-measured throughput (samples/s) per tier in the measurement.
_THROUGHPUT: Final = {Tier.WEAK: 60.0, Tier.MEDIUM: 200.0, Tier.STRONG: 450.0}
_FUNDING_WEI: Final = 10**18


def measure_trust_gas(
    conn: ChainConnection,
    hospitals: int = 3,
    rounds: int = 3,
    gwei: float = 20.0,
    eth_usd: float = 2000.0,
    seed: int = 0,
    trust: TrustConfig = MEASUREMENT_TRUST,
) -> GasReport:
    """Deploy in trust mode (the owner verifies and audits), register ``hospitals`` with a
    challenge, their PoC signature and the verifier's attestation, let each stake, run
    ``rounds`` honest rounds (commit, reveal phase, reveal, one audit per hospital, ensemble),
    then let every hospital withdraw.

    Returns
    -------
    GasReport
        ``mode == "trust"``: gas per operation (first time and steady state, the last round),
        the round totals and the coordinator's median time per hospital transaction.
    """
    if hospitals < 1 or rounds < 1:
        raise ConfigError("gas measurement needs at least 1 hospital and 1 round")
    client = FLCoordinatorClient.deploy(conn, trust=trust)
    owner = conn.owner
    members = measurement_hospitals(hospitals, seed)
    conn.fund_many([account.address for account, _ in members], _FUNDING_WEI)
    client.fund_reward_pool(trust.reward_per_round_wei * rounds)
    coordinator_s: list[float] = []
    for i, (account, tier) in enumerate(members):
        _register(client, owner, account, tier, f"hospital-{i:03d}")
        stake = trust.min_stake_wei
        _relay(client, account, partial(client.prepare_deposit_stake, account.address, stake),
               encode_deposit_stake(), "depositStake", coordinator_s, stake)  # fmt: skip
    per_round: list[dict[str, list[int]]] = []
    for rnd in range(1, rounds + 1):
        gas: dict[str, list[int]] = {op: [] for op in TRUST_ROUND_OPERATIONS}
        gas["startNewRound"].append(client.start_round().gas_used)
        updates = []
        for i, (account, tier) in enumerate(members):
            model_hash = hashlib.sha256(f"model-{seed}-{rnd}-{i}".encode()).digest()
            salt = hashlib.sha256(f"salt-{seed}-{rnd}-{i}".encode()).digest()
            conf, ece = 8000 + (137 * (i + rnd)) % 1900, 300 + (71 * (i + rnd)) % 1500
            updates.append((model_hash, conf, ece, tier.model_type, salt))
            commitment = update_commitment(model_hash, conf, ece, tier.model_type, salt)
            prepare = partial(client.prepare_commit_update, account.address, commitment)
            gas["commitUpdate"].append(_relay(client, account, prepare,
                                              encode_commit_update(commitment), "commitUpdate",
                                              coordinator_s))  # fmt: skip
        gas["startRevealPhase"].append(client.start_reveal_phase().gas_used)
        for (account, _), update in zip(members, updates, strict=True):
            prepare = partial(client.prepare_reveal_update, account.address, *update)
            gas["revealUpdate"].append(_relay(client, account, prepare,
                                              encode_reveal_update(*update), "revealUpdate",
                                              coordinator_s))  # fmt: skip
        for (account, _), (model_hash, conf, ece, _kind, _salt) in zip(members, updates,
                                                                       strict=True):
            gas["reportAudit"].append(
                client.report_audit(rnd, account.address, model_hash, conf, ece).gas_used
            )
        prediction = hashlib.sha256(f"ensemble-{rnd}".encode()).digest()
        gas["recordEnsemblePrediction"].append(client.record_ensemble(prediction, hospitals)
                                               .gas_used)  # fmt: skip
        per_round.append(gas)
    for account, _ in members:
        _relay(client, account, partial(client.prepare_withdraw, account.address),
               encode_withdraw(), "withdraw", coordinator_s)
    by_op: dict[str, list[int]] = {}
    for receipt in client.receipts:
        by_op.setdefault(receipt.operation, []).append(receipt.gas_used)
    first, last = per_round[0], per_round[-1]
    rows = []
    for op in TRUST_OPERATIONS:
        if op in TRUST_ROUND_OPERATIONS:
            rows.append(_row(op, first[op], last[op], gwei, eth_usd, "trust"))
        else:  # one-off operations: first and last occurrence
            rows.append(_row(op, by_op[op][:1], by_op[op][-1:], gwei, eth_usd, "trust"))
    return gas_report(rows, first, last, hospitals, rounds, conn, gwei, eth_usd,
                      coordinator_s, client, "trust")


def _register(
    client: FLCoordinatorClient, verifier: LocalAccount, account: LocalAccount, tier: Tier,
    name: str,
) -> None:  # fmt: skip
    """Challenge, PoC signature (hospital) and attestation (verifier), then registration."""
    client.issue_challenge(account.address, verifier)
    challenge = client.challenge(account.address)
    throughput = milli_samples(_THROUGHPUT[tier])
    bench = benchmark_hash(_THROUGHPUT[tier], 50, 16, tier)
    signature = sign_poc(account.key, tier, bench, client.chain_id, client.address, name=name,
                         challenge=challenge)  # fmt: skip
    attestation = sign_attestation(verifier.key, account.address, challenge, throughput,
                                   client.chain_id, client.address)  # fmt: skip
    client.register_hospital_attested(account.address, name, tier, bench, throughput, signature,
                                      attestation)  # fmt: skip


def _relay(
    client: FLCoordinatorClient,
    account: LocalAccount,
    prepare: Callable[[], dict[str, Any]],
    data: bytes,
    operation: str,
    coordinator_s: list[float],
    value: int = 0,
) -> int:
    """The hospital path: prepare (coordinator), sign what it intended (hospital), relay
    (coordinator); the gas used."""
    started = time.perf_counter()
    tx = prepare()
    prepared = time.perf_counter()
    raw = sign_transaction(tx, account.key, expected_data=data, expected_to=client.address,
                           expected_value=value)  # fmt: skip
    relayed = time.perf_counter()
    gas = client.send_raw(raw, operation).gas_used
    coordinator_s.append((prepared - started) + (time.perf_counter() - relayed))
    return gas
