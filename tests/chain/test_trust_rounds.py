"""Trust-mode rounds: commit-reveal, audits (single auditor and committee), slashing, the
reward split, the hospital's exit, and every failure with its own custom error."""

from __future__ import annotations

import pytest
from eth_account import Account

from chainlearn_ray.chain.backends import ChainConnection
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.chain.trust import AuditStatus, Phase, TrustConfig
from chainlearn_ray.protocol.weights import compute_weight
from tests.chain.conftest import (
    TRUST,
    Hospital,
    Update,
    as_sender,
    commit,
    events,
    hospital_tx,
    make_hospital,
    make_update,
    reference_split,
    register_attested,
    reveal,
    reverts,
    run_trust_round,
)

POOL = TRUST.reward_per_round_wei
STAKE = TRUST.min_stake_wei


def _updates(trio: list[Hospital], rnd: int) -> list[Update]:
    return [make_update(h, rnd, 9000 - 300 * i, 800 + 100 * i) for i, h in enumerate(trio)]


def _withdraw_delta(client: FLCoordinatorClient, h: Hospital) -> int:
    """Wei the hospital's withdrawal brought it (its balance change plus the gas it paid)."""
    w3 = client.conn.w3
    before = w3.eth.get_balance(h.address)
    result = hospital_tx(client, h, "withdraw")
    tx = w3.eth.get_transaction(result.tx_hash)
    receipt = w3.eth.get_transaction_receipt(result.tx_hash)
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert tx["value"] == 0
    return w3.eth.get_balance(h.address) - before + fee


# ---------------------------------------------------------------- the honest round
def test_honest_round_end_to_end(trusted: FLCoordinatorClient, trio: list[Hospital]) -> None:
    updates = _updates(trio, 1)
    client = trusted
    client.start_round()
    assert client.round_phase() == type(client.round_phase())(1, Phase.COMMIT, False)
    result = commit(client, trio[0], updates[0])
    (event,) = events(client, result, "UpdateCommitted")
    assert (event["round"], event["hospital"], event["commitment"]) == (
        1, trio[0].address, updates[0].commitment)
    for h, u in zip(trio[1:], updates[1:], strict=True):
        commit(client, h, u)
    assert client.round_submission(1, trio[0].address).timestamp == 0  # nothing public yet
    (event,) = events(client, client.start_reveal_phase(), "RevealPhaseStarted")
    assert event == {"round": 1}
    assert client.round_phase().phase is Phase.REVEAL
    for h, u in zip(trio, updates, strict=True):
        (event,) = events(client, reveal(client, h, u), "UpdateSubmitted")
        assert (event["modelHash"], event["confidence"], event["ece"]) == (
            u.model_hash, u.confidence, u.ece)
    weights = [compute_weight(h.tier, u.confidence, u.ece, 1) for h, u in zip(trio, updates,
                                                                                strict=True)]
    assert [client.round_weight(1, h.address) for h in trio] == weights
    assert client.round_submitter_count(1) == 3
    for h, u in zip(trio, updates, strict=True):
        sub = client.round_submission(1, h.address)
        assert (sub.model_hash, sub.confidence, sub.ece) == (u.model_hash, u.confidence, u.ece)
        (event,) = events(client, client.report_audit(1, h.address, u.model_hash, u.confidence,
                                                      u.ece + 150), "AuditResolved")
        assert event["passed"] and event["slashed"] == 0
        audit = client.audit(1, h.address)
        assert (audit.status, audit.audited_ece, audit.reports) == (AuditStatus.PASSED,
                                                                     u.ece + 150, 1)
    settlement = client.round_settlement(1, trio[0].address)
    assert (settlement.reward_wei, settlement.finalized) == (0, False)  # not final yet
    client.record_ensemble(b"\x0e" * 32, 3)
    rewards = client.round_rewards(1)
    assert (rewards.pool_wei, rewards.total_weight, rewards.failed_weight, rewards.revealed,
            rewards.finalized, rewards.returned_to_reserve) == (POOL, sum(weights), 0, 3, True,
                                                                False)
    expected = reference_split(POOL, weights, [False] * 3)
    assert sum(expected) == POOL
    rows = [client.round_settlement(1, h.address) for h in trio]
    assert [r.reward_wei for r in rows] == expected
    assert [(r.stake_wei, r.weight, r.slashed_wei, r.audit_status) for r in rows] == [
        (STAKE, w, 0, AuditStatus.PASSED) for w in weights]
    assert rows[0].to_dict()["audit_status"] == "passed"
    for h, reward in zip(trio, expected, strict=True):
        account = client.hospital_account(h.address)
        assert (account.stake_wei, account.rewards_wei, account.slashed_wei) == (STAKE, reward, 0)
        assert account.withdrawable_wei == STAKE + reward
        assert _withdraw_delta(client, h) == STAKE + reward
        assert client.hospital_account(h.address).exited
    assert client.reward_reserve() == 2 * POOL


def test_exit_is_final(trusted: FLCoordinatorClient, trio: list[Hospital]) -> None:
    h = trio[1]
    result = hospital_tx(trusted, h, "withdraw")  # never took part: its stake back
    (event,) = events(trusted, result, "HospitalWithdrew")
    assert (event["stake"], event["rewards"]) == (STAKE, 0)
    err = reverts("FLCoordinator__HospitalExited", lambda: hospital_tx(trusted, h, "withdraw"))
    assert err.args_decoded == (h.address,)
    reverts("FLCoordinator__HospitalExited",
            lambda: hospital_tx(trusted, h, "depositStake", value=1))
    trusted.start_round()
    reverts("FLCoordinator__HospitalExited", lambda: commit(trusted, h, make_update(h, 1)))
    assert trusted.hospital_account(h.address).withdrawable_wei == 0


# ---------------------------------------------------------------- failed audits
def test_failed_audit_zeroes_the_weight_and_slashes(
    trusted: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    client = trusted
    inflated = make_update(trio[0], 1, 10_000, 0)  # the lazy model claims perfect metrics
    honest = _updates(trio, 1)[1:]
    updates = [inflated, *honest]
    reserve = client.reward_reserve()
    # the audit finds 8000 / 2000 on the committed model; the others within tolerance exactly
    audits = [(8000, 2000), (honest[0].confidence + 200, honest[0].ece),
              (honest[1].confidence, honest[1].ece - 200)]
    run_trust_round(client, trio, updates, audits)
    cheat = trio[0].address
    assert client.audit(1, cheat).status is AuditStatus.FAILED
    assert client.round_weight(1, cheat) == 0
    slash = STAKE * TRUST.slash_fraction // 10_000
    row = client.round_settlement(1, cheat)
    assert (row.stake_wei, row.weight, row.reward_wei, row.slashed_wei) == (STAKE, 0, 0, slash)
    assert client.reward_reserve() == reserve - POOL + slash  # the slash funds later rounds
    info = client.hospital_info(cheat)
    assert (info.confidence, info.ece, info.rounds_participated) == (8000, 2000, 0)
    weights = [compute_weight(h.tier, u.confidence, u.ece, 1) for h, u in zip(trio, updates,
                                                                                strict=True)]
    rewards = client.round_rewards(1)
    assert (rewards.total_weight, rewards.failed_weight) == (sum(weights), weights[0])
    paid = [client.round_settlement(1, h.address).reward_wei for h in trio]
    assert paid == reference_split(POOL, weights, [True, False, False])
    assert sum(paid) == POOL  # the honest share the whole pool
    account = client.hospital_account(cheat)
    assert (account.stake_wei, account.slashed_wei, account.withdrawable_wei) == (
        STAKE - slash, slash, STAKE - slash)
    assert _withdraw_delta(client, trio[0]) == STAKE - slash


def test_pool_returns_to_the_reserve_when_nobody_keeps_weight(
    trusted: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    updates = [make_update(h, 1, 9500, 500) for h in trio]
    reserve = trusted.reward_reserve()
    rnd = run_trust_round(trusted, trio, updates, [(5000, 5000)] * 3, record=False)
    result = trusted.record_ensemble(b"\x01" * 32, 3)
    (event,) = events(trusted, result, "RoundPoolReturned")
    assert event == {"round": rnd, "amount": POOL}
    slash = STAKE * TRUST.slash_fraction // 10_000
    assert trusted.reward_reserve() == reserve + 3 * slash  # pool out, then back, plus slashes
    assert trusted.round_rewards(rnd).returned_to_reserve
    assert all(trusted.round_settlement(rnd, h.address).reward_wei == 0 for h in trio)


def test_the_next_round_closes_an_unrecorded_round(
    trusted: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    updates = _updates(trio, 1)
    run_trust_round(trusted, trio[:2], updates[:2], [None, None], record=False)
    assert not trusted.round_rewards(1).finalized
    trusted.start_round()  # round 1's audit window closes, its rewards are final
    assert trusted.round_rewards(1).finalized
    err = reverts("FLCoordinator__AuditWindowClosed", lambda: trusted.report_audit(
        1, trio[0].address, updates[0].model_hash, 1, 1))
    assert err.args_decoded == (1,)
    paid = [trusted.round_settlement(1, h.address).reward_wei for h in trio[:2]]
    assert sum(paid) == POOL and all(paid)
    assert trusted.ensemble_record(1).timestamp == 0
    assert trusted.round_submitter_count(1) == 2


def test_rewards_accumulate_over_rounds(trusted: FLCoordinatorClient,
                                        trio: list[Hospital]) -> None:
    for rnd in (1, 2):
        run_trust_round(trusted, trio, _updates(trio, rnd))
    for h in trio:
        per_round = [trusted.round_settlement(r, h.address).reward_wei for r in (1, 2)]
        account = trusted.hospital_account(h.address)
        assert account.rewards_wei == sum(per_round)
        assert account.withdrawable_wei == STAKE + sum(per_round)
    assert trusted.hospital_info(trio[0].address).rounds_participated == 2
    assert trusted.round_weight(2, trio[0].address) == compute_weight(
        trio[0].tier, 9000, 800, 2)


# ---------------------------------------------------------------- committee
def test_committee_median_decides(chain: ChainConnection, trio: list[Hospital]) -> None:
    auditors = [Account.from_key(bytes([0x50 + i]) * 32) for i in range(3)]
    chain.fund_many([a.address for a in auditors], 10**18)
    config = TrustConfig(STAKE, POOL, 200, 2_500, 100_000, 300_000,
                         auditors=tuple(a.address for a in auditors))
    client = FLCoordinatorClient.deploy(chain, trust=config)
    client.fund_reward_pool(POOL)
    for h in trio[:2]:
        register_attested(client, h, stake=STAKE)
    updates = [make_update(h, 1, 9000, 1000) for h in trio[:2]]
    run_trust_round(client, trio[:2], updates, [None, None], record=False)
    honest, cheat = trio[0].address, trio[1].address
    reverts("FLCoordinator__NotAuditor", lambda: client.report_audit(
        1, honest, updates[0].model_hash, 9000, 1000))  # the owner is not on the committee
    # one auditor lies about the honest hospital; the median of the three still passes it
    for auditor, metrics in zip(auditors, [(9000, 1000), (2000, 9000), (8950, 1100)],
                                strict=True):
        result = client.report_audit(1, honest, updates[0].model_hash, *metrics, auditor=auditor)
        (event,) = events(client, result, "AuditReported")
        assert event["auditor"] == auditor.address
        if auditor is auditors[0]:
            assert client.audit(1, honest).reports == 1
            reverts("FLCoordinator__AlreadyAudited", lambda: client.report_audit(
                1, honest, updates[0].model_hash, 9000, 1000, auditor=auditors[0]))
    audit = client.audit(1, honest)
    assert (audit.status, audit.audited_confidence, audit.audited_ece, audit.reports) == (
        AuditStatus.PASSED, 8950, 1100, 3)
    # two of three find the cheat's claim inflated: the median fails it
    for auditor, metrics in zip(auditors, [(7000, 3000), (9000, 1000), (7100, 2900)],
                                strict=True):
        client.report_audit(1, cheat, updates[1].model_hash, *metrics, auditor=auditor)
    audit = client.audit(1, cheat)
    assert (audit.status, audit.audited_confidence, audit.audited_ece) == (
        AuditStatus.FAILED, 7100, 2900)
    assert client.round_weight(1, cheat) == 0


# ---------------------------------------------------------------- every failure
@pytest.fixture
def committed(trusted: FLCoordinatorClient, trio: list[Hospital]) -> list[Update]:
    """Round 1 started; strong and medium committed, weak did not."""
    trusted.start_round()
    updates = _updates(trio, 1)
    for h, u in zip(trio[:2], updates[:2], strict=True):
        commit(trusted, h, u)
    return updates


def test_commit_outside_its_phase(trusted: FLCoordinatorClient, trio: list[Hospital],
                                  committed: list[Update]) -> None:
    trusted.start_reveal_phase()
    err = reverts("FLCoordinator__WrongPhase", lambda: commit(trusted, trio[2], committed[2]))
    assert err.args_decoded == (1, int(Phase.COMMIT), int(Phase.REVEAL))
    reverts("FLCoordinator__WrongPhase", trusted.start_reveal_phase)


def test_reveal_outside_its_phase(trusted: FLCoordinatorClient, trio: list[Hospital],
                                  committed: list[Update]) -> None:
    err = reverts("FLCoordinator__WrongPhase", lambda: reveal(trusted, trio[0], committed[0]))
    assert err.args_decoded == (1, int(Phase.REVEAL), int(Phase.COMMIT))


def test_reveal_must_match_the_commitment(trusted: FLCoordinatorClient, trio: list[Hospital],
                                          committed: list[Update]) -> None:
    trusted.start_reveal_phase()
    u = committed[0]
    for lie in (Update(u.model_hash, u.confidence + 500, u.ece, u.model_type, u.salt),
                Update(u.model_hash, u.confidence, u.ece, u.model_type, b"\x00" * 32),
                Update(b"\x01" * 32, u.confidence, u.ece, u.model_type, u.salt)):
        err = reverts("FLCoordinator__RevealMismatch", lambda lie=lie: reveal(trusted, trio[0],
                                                                              lie))
        assert err.args_decoded == (1, trio[0].address)
    reveal(trusted, trio[0], u)


def test_double_reveal(trusted: FLCoordinatorClient, trio: list[Hospital],
                       committed: list[Update]) -> None:
    trusted.start_reveal_phase()
    reveal(trusted, trio[0], committed[0])
    err = reverts("FLCoordinator__AlreadyRevealed",
                  lambda: reveal(trusted, trio[0], committed[0]))
    assert err.args_decoded == (1, trio[0].address)


def test_commit_rules(trusted: FLCoordinatorClient, trio: list[Hospital],
                      committed: list[Update]) -> None:
    err = reverts("FLCoordinator__AlreadyCommitted", lambda: commit(trusted, trio[0],
                                                                     committed[0]))
    assert err.args_decoded == (1, trio[0].address)
    reverts("FLCoordinator__EmptyCommitment",
            lambda: hospital_tx(trusted, trio[2], "commitUpdate", b"\x00" * 32))
    trusted.start_reveal_phase()
    err = reverts("FLCoordinator__NotCommitted", lambda: reveal(trusted, trio[2], committed[2]))
    assert err.args_decoded == (1, trio[2].address)


def test_reveal_keeps_the_seed_checks(trusted: FLCoordinatorClient, trio: list[Hospital]) -> None:
    trusted.start_round()
    weak = trio[2]
    wrong_type = Update(b"\x05" * 32, 9000, 1000, 2, b"\x06" * 32)  # Heavy for a Weak tier
    commit(trusted, weak, wrong_type)
    trusted.start_reveal_phase()
    reverts("FLCoordinator__WrongModelType", lambda: reveal(trusted, weak, wrong_type))


def test_audit_rules(trusted: FLCoordinatorClient, trio: list[Hospital],
                     committed: list[Update]) -> None:
    trusted.start_reveal_phase()
    reveal(trusted, trio[0], committed[0])
    u = committed[0]
    err = reverts("FLCoordinator__NotAuditor", lambda: as_sender(trusted, trio[1].account)
                  .report_audit(1, trio[0].address, u.model_hash, 9000, 1000))
    assert err.args_decoded == (trio[1].address,)
    for silent in (trio[1], trio[2]):  # committed but not revealed; never committed
        err = reverts("FLCoordinator__NoSubmission", lambda silent=silent: trusted.report_audit(
            1, silent.address, u.model_hash, 9000, 1000))
        assert err.args_decoded == (1, silent.address)
    err = reverts("FLCoordinator__AuditModelMismatch", lambda: trusted.report_audit(
        1, trio[0].address, b"\x07" * 32, 9000, 1000))
    assert err.args_decoded == (1, trio[0].address, u.model_hash, b"\x07" * 32)
    reverts("FLCoordinator__ConfidenceOutOfRange", lambda: trusted.report_audit(
        1, trio[0].address, u.model_hash, 10_001, 1000))
    trusted.report_audit(1, trio[0].address, u.model_hash, u.confidence, u.ece)
    err = reverts("FLCoordinator__AlreadyAudited", lambda: trusted.report_audit(
        1, trio[0].address, u.model_hash, u.confidence, u.ece))
    assert err.args_decoded == (1, trio[0].address, trusted.conn.owner.address)
    err = reverts("FLCoordinator__ParticipantCountMismatch",
                  lambda: trusted.record_ensemble(b"\x01" * 32, 2))  # two committed, one revealed
    assert err.args_decoded == (1, 2, 1)
    trusted.record_ensemble(b"\x01" * 32, 1)
    err = reverts("FLCoordinator__AuditWindowClosed", lambda: trusted.report_audit(
        1, trio[0].address, u.model_hash, u.confidence, u.ece))
    assert err.args_decoded == (1,)
    reverts("FLCoordinator__RoundClosed", lambda: reveal(trusted, trio[1], committed[1]))


def test_reward_pool_not_funded(chain: ChainConnection, trio: list[Hospital]) -> None:
    client = FLCoordinatorClient.deploy(chain, trust=TRUST)
    register_attested(client, trio[0], stake=STAKE)
    err = reverts("FLCoordinator__RewardPoolNotFunded", client.start_round)
    assert err.args_decoded == (1, 0, POOL)
    client.fund_reward_pool(POOL - 1)
    reverts("FLCoordinator__RewardPoolNotFunded", client.start_round)
    (event,) = events(client, client.fund_reward_pool(1), "RewardPoolFunded")
    assert event == {"amount": 1, "reserve": POOL}
    client.start_round()
    assert client.reward_reserve() == 0
    reverts("OwnableUnauthorizedAccount",
            lambda: as_sender(client, trio[0].account).fund_reward_pool(1))


def test_withdrawal_during_an_open_round(trusted: FLCoordinatorClient, trio: list[Hospital],
                                         committed: list[Update]) -> None:
    err = reverts("FLCoordinator__WithdrawalDuringOpenRound",
                  lambda: hospital_tx(trusted, trio[0], "withdraw"))
    assert err.args_decoded == (1, trio[0].address)
    assert _withdraw_delta(trusted, trio[2]) == STAKE  # not in the open round: it may leave
    trusted.start_reveal_phase()
    reveal(trusted, trio[0], committed[0])
    trusted.record_ensemble(b"\x01" * 32, 1)
    assert _withdraw_delta(trusted, trio[0]) == STAKE + POOL  # alone in the round
    stranger = make_hospital(70, trio[0].tier)
    trusted.conn.fund(stranger.address, 10**17)
    reverts("FLCoordinator__NotRegistered", lambda: hospital_tx(trusted, stranger, "withdraw"))


def test_reserve_withdrawal(trusted: FLCoordinatorClient, trio: list[Hospital]) -> None:
    reserve = trusted.reward_reserve()
    err = reverts("FLCoordinator__InsufficientReserve",
                  lambda: trusted.withdraw_reserve(trio[0].address, reserve + 1))
    assert err.args_decoded == (reserve + 1, reserve)
    reverts("OwnableUnauthorizedAccount",
            lambda: as_sender(trusted, trio[0].account).withdraw_reserve(trio[0].address, 1))
    before = trusted.conn.w3.eth.get_balance(trio[0].address)
    trusted.withdraw_reserve(trio[0].address, reserve)
    assert trusted.conn.w3.eth.get_balance(trio[0].address) - before == reserve
    assert trusted.reward_reserve() == 0
    reverts("FLCoordinator__RewardPoolNotFunded", trusted.start_round)


def test_owner_cannot_take_stakes(trusted: FLCoordinatorClient, trio: list[Hospital]) -> None:
    """The contract holds the stakes and the reserve; the owner reaches only the reserve."""
    balance = trusted.conn.w3.eth.get_balance(trusted.address)
    reserve = trusted.reward_reserve()
    assert balance == reserve + 3 * STAKE
    reverts("FLCoordinator__InsufficientReserve",
            lambda: trusted.withdraw_reserve(trusted.conn.owner.address, reserve + STAKE))


def test_close_a_round_nobody_revealed_in(trusted: FLCoordinatorClient,
                                          trio: list[Hospital]) -> None:
    reserve = trusted.reward_reserve()
    trusted.start_round()
    update = make_update(trio[0], 1)
    commit(trusted, trio[0], update)  # commits, never reveals
    trusted.start_reveal_phase()
    reverts("FLCoordinator__ZeroParticipants", lambda: trusted.record_ensemble(b"\x01" * 32, 0))
    reverts("FLCoordinator__WithdrawalDuringOpenRound",
            lambda: hospital_tx(trusted, trio[0], "withdraw"))
    reverts("OwnableUnauthorizedAccount", as_sender(trusted, trio[0].account).close_round)
    result = trusted.close_round()
    assert events(trusted, result, "RoundClosed") == [{"round": 1}]
    assert events(trusted, result, "RoundPoolReturned") == [{"round": 1, "amount": POOL}]
    assert trusted.reward_reserve() == reserve  # the pool came back
    assert trusted.round_rewards(1).finalized and trusted.round_phase().closed
    assert trusted.ensemble_record(1).timestamp == 0
    err = reverts("FLCoordinator__RoundClosed", lambda: trusted.record_ensemble(b"\x01" * 32, 1))
    assert err.args_decoded == (1,)
    reverts("FLCoordinator__RoundClosed", trusted.close_round)
    reverts("FLCoordinator__RoundClosed", lambda: reveal(trusted, trio[0], update))
    assert _withdraw_delta(trusted, trio[0]) == STAKE


def test_close_keeps_the_rewards_of_a_round_without_ensemble(
    trusted: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    run_trust_round(trusted, trio[:2], _updates(trio, 1)[:2], record=False)
    trusted.close_round()
    paid = [trusted.round_settlement(1, h.address).reward_wei for h in trio[:2]]
    assert sum(paid) == POOL and not trusted.round_rewards(1).returned_to_reserve
    reverts("FLCoordinator__TrustModeOnly",
            FLCoordinatorClient.deploy(trusted.conn).close_round)
