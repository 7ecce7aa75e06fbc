"""Timestamps never wrap: submissions and ensembles read back their full block timestamp across
multiples of 2^32 seconds (the seed stored 32 bits: an ensemble recorded at k * 2^32 read back
as "no record", and every timestamp wrapped in 2106)."""

from __future__ import annotations

import pytest

from chainlearn_ray.chain.backends import ChainConnection
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.chain.records import TxResult
from tests.chain.conftest import (
    TRUST,
    Hospital,
    commit,
    make_update,
    register,
    register_attested,
    reveal,
    submit,
)

EPOCH = 2**32


def _at(chain: ChainConnection, timestamp: int, result: TxResult) -> TxResult:
    """``result``, after checking it was mined at ``timestamp``."""
    assert chain.w3.eth.get_block(result.block_number)["timestamp"] == timestamp
    return result


def _submit_at(chain: ChainConnection, client: FLCoordinatorClient, h: Hospital, ts: int) -> None:
    chain.set_next_block_timestamp(ts)
    _at(chain, ts, submit(client, h, 9000, 1000))


@pytest.fixture(scope="module")
def timeline(chain: ChainConnection, trio: list[Hospital]) -> FLCoordinatorClient:
    """Four rounds placed around multiples of 2^32 seconds (the chain's clock only moves on)."""
    client = FLCoordinatorClient.deploy(chain)
    for h in trio:
        register(client, h)
    strong, medium, weak = trio
    client.start_round()  # round 1 starts in epoch 0 (today)
    submit(client, strong)
    chain.set_next_block_timestamp(EPOCH)  # the ensemble lands exactly on 2^32
    _at(chain, EPOCH, client.record_ensemble(b"\x01" * 32, 1))

    chain.set_next_block_timestamp(EPOCH + 10)  # round 2 starts in epoch 1
    client.start_round()
    _submit_at(chain, client, strong, EPOCH + 20)
    _submit_at(chain, client, medium, EPOCH + 21)
    chain.set_next_block_timestamp(EPOCH + 30)
    client.record_ensemble(b"\x02" * 32, 2)

    chain.set_next_block_timestamp(2 * EPOCH - 5)  # round 3 straddles 2 * 2^32
    client.start_round()
    _submit_at(chain, client, strong, 2 * EPOCH - 2)
    _submit_at(chain, client, medium, 2 * EPOCH)  # low 32 bits all zero
    _submit_at(chain, client, weak, 2 * EPOCH + 7)
    chain.set_next_block_timestamp(3 * EPOCH)  # so does its ensemble's
    client.record_ensemble(b"\x03" * 32, 3)

    chain.set_next_block_timestamp(3 * EPOCH + 1)  # round 4 starts in epoch 3, never recorded
    client.start_round()
    _submit_at(chain, client, weak, 3 * EPOCH + 2)
    return client


def test_ensemble_on_a_multiple_of_2_32_is_a_record(timeline: FLCoordinatorClient) -> None:
    record = timeline.ensemble_record(1)
    assert (record.prediction_hash, record.participant_count) == (b"\x01" * 32, 1)
    assert record.timestamp == EPOCH
    assert timeline.ensemble_record(3).timestamp == 3 * EPOCH
    assert timeline.ensemble_record(3).participant_count == 3


def test_timestamps_after_2106_read_back_whole(timeline: FLCoordinatorClient,
                                               trio: list[Hospital]) -> None:
    strong, medium, weak = trio
    assert timeline.round_submission(2, strong.address).timestamp == EPOCH + 20
    assert timeline.round_submission(2, medium.address).timestamp == EPOCH + 21
    assert timeline.ensemble_record(2).timestamp == EPOCH + 30
    assert timeline.round_submission(4, weak.address).timestamp == 3 * EPOCH + 2


def test_a_round_open_across_a_multiple_of_2_32(timeline: FLCoordinatorClient,
                                                trio: list[Hospital]) -> None:
    medium = trio[1]
    got = [timeline.round_submission(3, h.address).timestamp for h in trio]
    assert got == [2 * EPOCH - 2, 2 * EPOCH, 2 * EPOCH + 7]
    assert timeline.round_submission(3, medium.address).confidence == 9000


def test_earlier_epochs_keep_their_timestamps(chain: ChainConnection,
                                              timeline: FLCoordinatorClient,
                                              trio: list[Hospital]) -> None:
    first = timeline.round_submission(1, trio[0].address)
    assert 0 < first.timestamp < EPOCH  # submitted today
    receipts = [r for r in timeline.receipts if r.operation == "submitUpdate"]
    block = chain.w3.eth.get_block(receipts[0].block_number)
    assert first.timestamp == block["timestamp"]
    # no record, no timestamp: an unrecorded round and a silent hospital read as zeros
    assert timeline.ensemble_record(4).timestamp == 0
    assert timeline.round_submission(1, trio[2].address).timestamp == 0
    assert timeline.round_submitter_count(4) == 1


def test_steady_rounds_pay_nothing_for_wide_timestamps(timeline: FLCoordinatorClient) -> None:
    """Only transactions in another epoch than their round's start write a full timestamp."""
    gas = [r.gas_used for r in timeline.receipts if r.operation == "submitUpdate"]
    # medium, second of its lane slot both times: in round 2 in its round's epoch; in round 3
    # in epoch 2 while the round began in epoch 1, so it keeps its full timestamp aside
    same_epoch, other_epoch = gas[2], gas[4]
    assert 20_000 <= other_epoch - same_epoch <= 23_000
    assert gas[3] - gas[1] < 100  # strong opens its lane slot in both rounds, in-epoch


def test_trust_mode_timestamps_never_wrap(chain: ChainConnection, trio: list[Hospital],
                                          timeline: FLCoordinatorClient) -> None:
    """Reveals and ensembles of a trust round open across 4 * 2^32 read back whole."""
    client = FLCoordinatorClient.deploy(chain, trust=TRUST)
    chain.fund_many([h.address for h in trio], 10**18)
    client.fund_reward_pool(TRUST.reward_per_round_wei)
    for h in trio:
        register_attested(client, h, stake=TRUST.min_stake_wei)
    updates = [make_update(h, 1) for h in trio]
    chain.set_next_block_timestamp(4 * EPOCH - 20)
    client.start_round()
    for h, u in zip(trio, updates, strict=True):
        commit(client, h, u)
    client.start_reveal_phase()
    for h, u, ts in zip(trio, updates, (4 * EPOCH - 3, 4 * EPOCH, 4 * EPOCH + 9), strict=True):
        chain.set_next_block_timestamp(ts)
        _at(chain, ts, reveal(client, h, u))
    chain.set_next_block_timestamp(5 * EPOCH)
    client.record_ensemble(b"\x04" * 32, 3)
    assert [client.round_submission(1, h.address).timestamp for h in trio] == [
        4 * EPOCH - 3, 4 * EPOCH, 4 * EPOCH + 9]
    assert client.ensemble_record(1).timestamp == 5 * EPOCH
