"""Rounds, submissions and ensemble records: state, events, snapshots and every failure case."""

from __future__ import annotations

import hashlib

import pytest
from eth_account import Account

from chainlearn_ray.chain.backends import ChainConnection
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.chain.tx import encode_submit_update, sign_transaction
from chainlearn_ray.errors import ChainError, ContractRevertError
from chainlearn_ray.protocol.tiers import ModelType, Tier
from chainlearn_ray.protocol.weights import compute_weight
from tests.chain.conftest import Hospital, as_sender, make_hospital, register, reverts, submit


# ---------------------------------------------------------------- startNewRound
def test_start_round_needs_hospitals(fresh: FLCoordinatorClient) -> None:
    reverts("FLCoordinator__NoHospitals", fresh.start_round)
    assert fresh.current_round() == 0


def test_start_round_owner_only(registered: FLCoordinatorClient, trio: list[Hospital]) -> None:
    err = reverts("OwnableUnauthorizedAccount", as_sender(registered, trio[0].account).start_round)
    assert err.args_decoded == (trio[0].address,)


def test_start_round_event_and_counter(registered: FLCoordinatorClient) -> None:
    result = registered.start_round()
    receipt = registered.conn.w3.eth.get_transaction_receipt(result.tx_hash)
    (event,) = registered.contract.events.RoundStarted().process_receipt(receipt)
    assert dict(event["args"]) == {"round": 1}
    assert registered.current_round() == 1
    registered.start_round()
    assert registered.current_round() == 2


# ---------------------------------------------------------------- submitUpdate
def test_submit_stores_submission(registered: FLCoordinatorClient, trio: list[Hospital]) -> None:
    registered.start_round()
    strong = trio[0]
    digest = hashlib.sha256(b"model").digest()
    result = submit(registered, strong, 9500, 500, model_hash=digest)
    assert result.operation == "submitUpdate"
    assert result.sender == strong.address
    got = registered.round_submission(1, strong.address)
    block = registered.conn.w3.eth.get_block(result.block_number)
    assert (got.model_hash, got.confidence, got.ece) == (digest, 9500, 500)
    assert got.timestamp == block["timestamp"]
    assert got.model_type is ModelType.HEAVY
    info = registered.hospital_info(strong.address)
    assert (info.confidence, info.ece, info.rounds_participated) == (9500, 500, 1)
    assert registered.round_submitter_count(1) == 1
    receipt = registered.conn.w3.eth.get_transaction_receipt(result.tx_hash)
    (event,) = registered.contract.events.UpdateSubmitted().process_receipt(receipt)
    assert event["args"]["round"] == 1
    assert event["args"]["hospital"] == strong.address
    assert event["args"]["modelHash"] == digest
    assert (event["args"]["confidence"], event["args"]["ece"]) == (9500, 500)
    assert event["args"]["modelType"] == int(ModelType.HEAVY)


def test_submit_unregistered(registered: FLCoordinatorClient, chain: ChainConnection) -> None:
    registered.start_round()
    stranger = make_hospital(77, Tier.MEDIUM)
    chain.fund(stranger.address, 10**17)
    err = reverts("FLCoordinator__NotRegistered", lambda: submit(registered, stranger))
    assert err.args_decoded == (stranger.address,)


def test_submit_without_round(registered: FLCoordinatorClient, trio: list[Hospital]) -> None:
    reverts("FLCoordinator__NoActiveRound", lambda: submit(registered, trio[0]))


def test_second_submission_in_round(registered: FLCoordinatorClient, trio: list[Hospital]) -> None:
    registered.start_round()
    submit(registered, trio[1])
    err = reverts("FLCoordinator__AlreadySubmitted", lambda: submit(registered, trio[1], 8000))
    assert err.args_decoded == (1, trio[1].address)
    assert registered.round_submitter_count(1) == 1


@pytest.mark.parametrize(
    ("conf", "ece", "error"),
    [(10001, 0, "FLCoordinator__ConfidenceOutOfRange"), (0, 10001, "FLCoordinator__EceOutOfRange")],
)
def test_metrics_out_of_range(
    registered: FLCoordinatorClient, trio: list[Hospital], conf: int, ece: int, error: str
) -> None:
    """The contract itself rejects them (the raw tx bypasses the Python-side validation)."""
    registered.start_round()
    hospital = trio[0]
    data = registered.contract.encode_abi(
        "submitUpdate", [b"\x01" * 32, conf, ece, int(ModelType.HEAVY)]
    )
    call = {"from": hospital.address, "to": registered.address, "data": data}
    with pytest.raises(ContractRevertError) as info:
        registered._guard(lambda: registered.conn.w3.eth.call(call))  # type: ignore[arg-type]
    assert info.value.error_name == error


def test_boundary_metrics_accepted(registered: FLCoordinatorClient, trio: list[Hospital]) -> None:
    registered.start_round()
    submit(registered, trio[0], 10000, 10000)
    submit(registered, trio[1], 0, 0)
    assert registered.weight(trio[0].address) == 500
    assert registered.weight(trio[1].address) == 500


def test_wrong_model_type(registered: FLCoordinatorClient, trio: list[Hospital]) -> None:
    registered.start_round()
    weak = trio[2]
    err = reverts(
        "FLCoordinator__WrongModelType",
        lambda: submit(registered, weak, model_type=int(ModelType.HEAVY)),
    )
    assert err.args_decoded == (int(ModelType.LIGHT), int(ModelType.HEAVY))


def test_submit_after_ensemble_closes_round(
    registered: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    registered.start_round()
    submit(registered, trio[0])
    registered.record_ensemble(b"\x09" * 32, 1)
    err = reverts("FLCoordinator__RoundClosed", lambda: submit(registered, trio[1]))
    assert err.args_decoded == (1,)
    registered.start_round()
    submit(registered, trio[1])  # the next round is open again


# ---------------------------------------------------------------- recordEnsemblePrediction
def test_record_ensemble(registered: FLCoordinatorClient, trio: list[Hospital]) -> None:
    registered.start_round()
    for h in trio:
        submit(registered, h)
    prediction = hashlib.sha256(b"predictions").digest()
    result = registered.record_ensemble(prediction, 3)
    record = registered.ensemble_record(1)
    block = registered.conn.w3.eth.get_block(result.block_number)
    assert (record.prediction_hash, record.participant_count) == (prediction, 3)
    assert record.timestamp == block["timestamp"]
    receipt = registered.conn.w3.eth.get_transaction_receipt(result.tx_hash)
    (event,) = registered.contract.events.EnsemblePredictionRecorded().process_receipt(receipt)
    assert (event["args"]["round"], event["args"]["participantCount"]) == (1, 3)
    assert event["args"]["predictionHash"] == prediction
    assert registered.round_submitter_count(1) == 3


def test_ensemble_without_round(registered: FLCoordinatorClient) -> None:
    reverts("FLCoordinator__NoActiveRound", lambda: registered.record_ensemble(b"\x01" * 32, 1))


def test_ensemble_zero_participants(registered: FLCoordinatorClient) -> None:
    registered.start_round()
    reverts("FLCoordinator__ZeroParticipants", lambda: registered.record_ensemble(b"\x01" * 32, 0))


@pytest.mark.parametrize("claimed", [1, 3, 50])
def test_ensemble_participant_mismatch(
    registered: FLCoordinatorClient, trio: list[Hospital], claimed: int
) -> None:
    registered.start_round()
    submit(registered, trio[0])
    submit(registered, trio[2])
    err = reverts(
        "FLCoordinator__ParticipantCountMismatch",
        lambda: registered.record_ensemble(b"\x01" * 32, claimed),
    )
    assert err.args_decoded == (1, claimed, 2)
    registered.record_ensemble(b"\x01" * 32, 2)


def test_second_ensemble_record(registered: FLCoordinatorClient, trio: list[Hospital]) -> None:
    registered.start_round()
    submit(registered, trio[0])
    registered.record_ensemble(b"\x01" * 32, 1)
    err = reverts(
        "FLCoordinator__EnsembleAlreadyRecorded",
        lambda: registered.record_ensemble(b"\x02" * 32, 1),
    )
    assert err.args_decoded == (1,)
    assert registered.ensemble_record(1).prediction_hash == b"\x01" * 32


def test_ensemble_owner_only(registered: FLCoordinatorClient, trio: list[Hospital]) -> None:
    registered.start_round()
    submit(registered, trio[0])
    outsider = as_sender(registered, trio[0].account)
    reverts("OwnableUnauthorizedAccount", lambda: outsider.record_ensemble(b"\x01" * 32, 1))


# ---------------------------------------------------------------- weights and snapshots
def test_calculate_weight_unregistered(registered: FLCoordinatorClient) -> None:
    stranger = Account.create().address
    err = reverts("FLCoordinator__NotRegistered", lambda: registered.weight(stranger))
    assert err.args_decoded == (stranger,)
    reverts("FLCoordinator__NotRegistered", lambda: registered.round_weight(1, stranger))


def test_round_weight_snapshots(registered: FLCoordinatorClient, trio: list[Hospital]) -> None:
    """Past rounds keep their own metrics and participation count; latest moves on."""
    strong, medium, weak = trio
    plan = {  # round -> {hospital: (conf, ece)}; medium skips round 2
        1: {strong: (9500, 500), medium: (9000, 1000), weak: (8000, 2000)},
        2: {strong: (9000, 1000), weak: (8500, 1500)},
        3: {strong: (7000, 3000), medium: (9900, 100), weak: (8000, 2000)},
    }
    rounds_done: dict[str, int] = {h.address: 0 for h in trio}
    expected: dict[tuple[int, str], int] = {}
    for rnd, subs in plan.items():
        registered.start_round()
        for h, (conf, ece) in subs.items():
            submit(registered, h, conf, ece)
            rounds_done[h.address] += 1
            expected[(rnd, h.address)] = compute_weight(h.tier, conf, ece, rounds_done[h.address])
        registered.record_ensemble(hashlib.sha256(bytes([rnd])).digest(), len(subs))
    for (rnd, address), weight in expected.items():
        assert registered.round_weight(rnd, address) == weight, (rnd, address)
    assert expected[(1, strong.address)] == 10830 + 500
    for h in trio:  # latest metrics, total rounds
        conf, ece = plan[3][h]
        assert registered.weight(h.address) == compute_weight(
            h.tier, conf, ece, rounds_done[h.address]
        )
    assert registered.hospital_info(medium.address).rounds_participated == 2
    err = reverts("FLCoordinator__NoSubmission", lambda: registered.round_weight(2, medium.address))
    assert err.args_decoded == (2, medium.address)
    empty = registered.round_submission(2, medium.address)
    assert (empty.model_hash, empty.timestamp) == (b"\x00" * 32, 0)
    assert [registered.round_submitter_count(r) for r in (1, 2, 3, 4)] == [3, 2, 3, 0]


def test_counts_of_rounds_without_ensemble(
    registered: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    registered.start_round()
    submit(registered, trio[0])
    submit(registered, trio[1])
    registered.start_round()  # round 1 never got an ensemble record
    submit(registered, trio[2])
    assert registered.round_submitter_count(1) == 2
    assert registered.round_submitter_count(2) == 1
    assert registered.ensemble_record(1).participant_count == 0
    assert registered.ensemble_record(1).timestamp == 0


def test_lanes_of_many_hospitals(chain: ChainConnection) -> None:
    """Hospitals sharing a lane slot keep separate metrics (7 hospitals = 3 lane slots)."""
    client = FLCoordinatorClient.deploy(chain)
    hospitals = [make_hospital(200 + i, Tier(i % 3)) for i in range(7)]
    chain.fund_many([h.address for h in hospitals], 10**17)
    for h in hospitals:
        register(client, h)
    client.start_round()
    for i, h in enumerate(reversed(hospitals)):
        submit(client, h, 9000 + i, 100 + i)
    for i, h in enumerate(reversed(hospitals)):
        sub = client.round_submission(1, h.address)
        assert (sub.confidence, sub.ece) == (9000 + i, 100 + i)
        assert client.round_weight(1, h.address) == compute_weight(h.tier, 9000 + i, 100 + i, 1)
    client.record_ensemble(b"\x05" * 32, 7)
    assert client.round_submitter_count(1) == 7
    assert client.ensemble_record(1).participant_count == 7


def test_storage_layout_of_packed_slots(
    registered: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    """The hot path writes the state slot and the hospital slot by bit offset: check them."""
    registered.start_round()
    submit(registered, trio[1], 9100, 900)
    w3 = registered.conn.w3
    slot0 = int.from_bytes(w3.eth.get_storage_at(registered.address, 0), "big")
    assert slot0 == int(registered.owner(), 16)
    slot1 = int.from_bytes(w3.eth.get_storage_at(registered.address, 1), "big")
    assert slot1 == 0  # Ownable2Step's pending owner
    state = int.from_bytes(w3.eth.get_storage_at(registered.address, 2), "big")
    block = w3.eth.get_block("latest")
    assert state & 0xFFFFFFFF == 1  # current round
    assert (state >> 32) & 0xFFFFFF == 3  # hospital count
    assert (state >> 56) & 0xFFFFFF == 1  # submitters this round
    assert (state >> 80) & 0xFF == 0  # round closed
    assert (state >> 88) & 0xFF == 1  # deployment marker
    assert (state >> 96) & 0xFFFFFFFF == block["timestamp"] >> 32  # the round's epoch


def test_nonce_tracking_survives_a_refused_transaction(
    registered: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    registered.start_round()
    hospital = trio[0]
    tx = registered.prepare_submit_update(hospital.address, b"\x03" * 32, 9000, 1000, 2)
    from chainlearn_ray.chain.tx import sign_transaction

    stale = dict(tx, nonce=tx["nonce"] + 5)  # a nonce gap the node will not mine now
    raw_bad = sign_transaction(stale, hospital.account.key)
    with pytest.raises(ChainError):
        registered.send_raw(raw_bad)
    submit(registered, hospital)
    assert registered.round_submitter_count(1) == 1


def test_prepare_at_the_round_start_block_ignores_later_submissions(
    registered: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    """The coordinator prepares every submission of a round against the state right after
    startNewRound, so a transaction's fields do not depend on who was relayed first."""
    start = registered.start_round()
    late = trio[2]
    kind = int(late.tier.model_type)
    before = registered.prepare_submit_update(late.address, b"\x07" * 32, 9000, 1000, kind,
                                              block=start.block_number)
    first_in_round = registered.prepare_submit_update(late.address, b"\x07" * 32, 9000, 1000,
                                                      kind)
    submit(registered, trio[0])
    submit(registered, trio[1])
    pinned = registered.prepare_submit_update(late.address, b"\x07" * 32, 9000, 1000, kind,
                                              block=start.block_number)
    now = registered.prepare_submit_update(late.address, b"\x07" * 32, 9000, 1000, kind)
    assert pinned["gas"] == before["gas"] == first_in_round["gas"]
    assert now["gas"] < pinned["gas"]  # the others' writes made its own submission cheaper
    # the pinned estimate is an upper bound: the transaction signed from it goes through
    raw = sign_transaction(pinned, late.account.key,
                           expected_data=encode_submit_update(b"\x07" * 32, 9000, 1000, kind),
                           expected_to=registered.address)
    assert registered.send_raw(raw).gas_used < pinned["gas"]
