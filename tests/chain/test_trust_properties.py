"""Properties of the trust mode's money, against the real EVM: a round's pool is split exactly
(no wei created or lost), and what a hospital withdraws is always its deposits less its slashes
plus its rewards."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chainlearn_ray.chain.backends import ChainConnection
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.chain.nonces import NonceTracker
from chainlearn_ray.chain.trust import AuditStatus
from tests.chain.conftest import (
    TRUST,
    Hospital,
    commit,
    hospital_tx,
    make_update,
    reference_split,
    register_attested,
    reveal,
)

MAX_WEIGHT = 15_000


@pytest.fixture(scope="module")
def pure(chain: ChainConnection) -> FLCoordinatorClient:
    return FLCoordinatorClient.deploy(chain, trust=TRUST)


@pytest.mark.slow
@settings(max_examples=600, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    pool=st.one_of(st.integers(0, 10**20), st.integers(0, 2**96 - 1)),
    cases=st.lists(st.tuples(st.integers(0, MAX_WEIGHT), st.booleans()), max_size=16),
)
@example(pool=2**96 - 1, cases=[(MAX_WEIGHT, False)] * 16)
@example(pool=10, cases=[(1, False), (1, False), (1, False)])  # 10 wei over 3 equal weights
@example(pool=10**18, cases=[(5000, True), (7000, True)])  # nobody keeps weight
@example(pool=7, cases=[(0, False), (3, True), (0, False), (5, False)])
@example(pool=0, cases=[(100, False)])
def test_the_pool_is_split_exactly(pure: FLCoordinatorClient, pool: int,
                                   cases: list[tuple[int, bool]]) -> None:
    """``calculateRewardSplit`` runs the contract's share arithmetic (``_rewardShare`` on
    prefix sums of the kept weights): the shares add up to the pool to the wei, each within
    1 wei of its exact proportion; with no weight kept the whole pool is unallocated (it
    returns to the reserve)."""
    weights = [w for w, _ in cases]
    failed = [f for _, f in cases]
    rewards, unallocated = pure.reward_split(pool, weights, failed)
    kept = sum(w for w, f in cases if not f)
    assert sum(rewards) + unallocated == pool
    assert unallocated == (pool if kept == 0 else 0)
    assert rewards == reference_split(pool, weights, failed)
    for (w, f), reward in zip(cases, rewards, strict=True):
        if f or kept == 0:
            assert reward == 0
        else:
            assert abs(reward * kept - pool * w) < kept  # |reward - pool * w / kept| < 1


# ---------------------------------------------------------------- the accounts, end to end
@dataclass(frozen=True)
class Plan:
    """One hospital's part in a scenario."""

    deposit: int  # wei staked on top of the minimum
    takes_part: tuple[bool, bool]  # in rounds 1 and 2
    confidence: int
    ece: int
    audit: str  # "pass", "fail" or "none"


plans = st.builds(
    Plan,
    deposit=st.integers(0, 2 * TRUST.min_stake_wei),
    takes_part=st.tuples(st.booleans(), st.booleans()),
    confidence=st.integers(0, 10_000),
    ece=st.integers(0, 10_000),
    audit=st.sampled_from(["pass", "fail", "none"]),
)


@pytest.fixture(scope="module")
def stage(chain: ChainConnection,
          trio: list[Hospital]) -> Iterator[tuple[FLCoordinatorClient, int]]:
    """A trust deployment with the trio registered and two rounds' pools funded, and the
    snapshot every example goes back to."""
    chain.fund_many([h.address for h in trio], 10**20)
    client = FLCoordinatorClient.deploy(chain, trust=TRUST)
    for h in trio:
        register_attested(client, h)
    client.fund_reward_pool(2 * TRUST.reward_per_round_wei)
    tester = chain.w3.provider.ethereum_tester  # type: ignore[attr-defined]
    yield client, tester.take_snapshot()


@pytest.mark.slow
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scenario=st.lists(plans, min_size=3, max_size=3))
def test_withdrawals_are_stake_plus_rewards_minus_slashes(
    stage: tuple[FLCoordinatorClient, int], trio: list[Hospital], scenario: list[Plan]
) -> None:
    client, snapshot = stage
    conn = client.conn
    tester = conn.w3.provider.ethereum_tester  # type: ignore[attr-defined]
    tester.revert_to_snapshot(snapshot)
    conn.nonces = NonceTracker(conn.w3)  # the chain forgot the nonces used since
    deposits = {}
    for h, plan in zip(trio, scenario, strict=True):
        deposits[h.address] = TRUST.min_stake_wei + plan.deposit
        hospital_tx(client, h, "depositStake", value=deposits[h.address])
    for rnd in (1, 2):
        client.start_round()
        members = [(h, p, make_update(h, rnd, p.confidence, p.ece))
                   for h, p in zip(trio, scenario, strict=True) if p.takes_part[rnd - 1]]
        for h, _, u in members:
            stake = client.hospital_account(h.address).stake_wei
            if stake < TRUST.min_stake_wei:  # slashed below the minimum: top up to take part
                hospital_tx(client, h, "depositStake", value=TRUST.min_stake_wei - stake)
                deposits[h.address] += TRUST.min_stake_wei - stake
            commit(client, h, u)
        client.start_reveal_phase()
        for h, _, u in members:
            reveal(client, h, u)
        for h, plan, u in members:
            if plan.audit == "none":
                continue
            off = 0 if plan.audit == "pass" else TRUST.audit_tolerance + 1
            audited = u.confidence - off if u.confidence >= off else u.confidence + off
            client.report_audit(rnd, h.address, u.model_hash, audited, u.ece)
        if members:
            client.record_ensemble(rnd.to_bytes(32, "big"), len(members))
        else:  # nobody to form an ensemble: the owner closes the round
            client.close_round()
        rows = [client.round_settlement(rnd, h.address) for h, _, _ in members]
        kept = any(r.audit_status is not AuditStatus.FAILED for r in rows)  # weights >= 500
        assert all(r.weight > 0 for r in rows if r.audit_status is not AuditStatus.FAILED)
        assert sum(r.reward_wei for r in rows) == (TRUST.reward_per_round_wei if kept else 0)
        assert client.round_rewards(rnd).returned_to_reserve == (not kept)
    for h in trio:
        settlements = [client.round_settlement(rnd, h.address) for rnd in (1, 2)]
        slashed = sum(s.slashed_wei for s in settlements)
        rewards = sum(s.reward_wei for s in settlements)
        account = client.hospital_account(h.address)
        assert (account.slashed_wei, account.rewards_wei) == (slashed, rewards)
        assert account.stake_wei == deposits[h.address] - slashed
        assert account.withdrawable_wei == deposits[h.address] - slashed + rewards
        before = conn.w3.eth.get_balance(h.address)
        result = hospital_tx(client, h, "withdraw")
        receipt = conn.w3.eth.get_transaction_receipt(result.tx_hash)  # type: ignore[arg-type]
        fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
        assert conn.w3.eth.get_balance(h.address) - before + fee == account.withdrawable_wei
    # every stake and pool went out, or back to the reserve with the slashes: nothing else stays
    assert conn.w3.eth.get_balance(client.address) == client.reward_reserve()


def test_split_needs_one_flag_per_weight(pure: FLCoordinatorClient) -> None:
    from chainlearn_ray.errors import ContractRevertError

    with pytest.raises(ContractRevertError) as info:
        pure.reward_split(10, [1, 2], [False])
    assert info.value.error_name == "FLCoordinator__LengthMismatch"
    assert info.value.args_decoded == (2, 1)
