"""Registration with a Proof of Capacity: accepted statements and every rejected one."""

from __future__ import annotations

from eth_account import Account

from chainlearn_ray.chain.backends import ChainConnection
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.chain.statements import sign_poc
from chainlearn_ray.protocol.tiers import ModelType, Tier
from tests.chain.conftest import Hospital, as_sender, make_hospital, register, reverts

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ZERO_ADDRESS = "0x" + "00" * 20


def test_register_stores_everything(fresh: FLCoordinatorClient, trio: list[Hospital]) -> None:
    strong = trio[0]
    result = register(fresh, strong, name="St. Mary's")
    assert result.operation == "registerHospital"
    assert result.sender == fresh.conn.owner.address
    info = fresh.hospital_info(strong.address)
    assert info.name == "St. Mary's"
    assert info.tier is Tier.STRONG
    assert info.model_type is ModelType.HEAVY
    assert info.registered
    assert info.poc_benchmark_hash == strong.bench_hash
    assert (info.confidence, info.ece, info.rounds_participated) == (0, 0, 0)
    assert fresh.hospital_count() == 1
    assert fresh.owner() == fresh.conn.owner.address


def test_registered_event(fresh: FLCoordinatorClient, trio: list[Hospital]) -> None:
    medium = trio[1]
    result = register(fresh, medium, name="General")
    receipt = fresh.conn.w3.eth.get_transaction_receipt(result.tx_hash)
    (event,) = fresh.contract.events.HospitalRegistered().process_receipt(receipt)
    assert event["args"]["hospital"] == medium.address
    assert event["args"]["name"] == "General"
    assert event["args"]["capacityClass"] == int(Tier.MEDIUM)
    assert event["args"]["pocBenchmarkHash"] == medium.bench_hash
    assert set(event["args"]) == {"hospital", "name", "capacityClass", "pocBenchmarkHash"}


def test_duplicate_registration(fresh: FLCoordinatorClient, trio: list[Hospital]) -> None:
    register(fresh, trio[0])
    err = reverts("FLCoordinator__AlreadyRegistered", lambda: register(fresh, trio[0]))
    assert err.args_decoded == (trio[0].address,)


def test_non_owner_cannot_register(fresh: FLCoordinatorClient, trio: list[Hospital]) -> None:
    outsider = as_sender(fresh, trio[1].account)
    reverts("OwnableUnauthorizedAccount", lambda: register(outsider, trio[0]))
    assert fresh.hospital_count() == 0


def test_garbage_signature(fresh: FLCoordinatorClient, trio: list[Hospital]) -> None:
    h = trio[0]
    err = reverts(
        "FLCoordinator__InvalidSignature",
        lambda: fresh.register_hospital(h.address, "x", h.tier, h.bench_hash, b"\x07" * 65),
    )
    assert err.args_decoded[0] == h.address


def test_signature_of_another_account(fresh: FLCoordinatorClient, trio: list[Hospital]) -> None:
    h, other = trio[0], trio[1]
    sig = sign_poc(other.account.key, h.tier, h.bench_hash, fresh.chain_id, fresh.address, name="x")
    err = reverts(
        "FLCoordinator__InvalidSignature",
        lambda: fresh.register_hospital(h.address, "x", h.tier, h.bench_hash, sig),
    )
    # the statement names the other account, so it recovers to neither of them
    assert err.args_decoded[0] == h.address
    assert err.args_decoded[1] not in (h.address, ZERO_ADDRESS)


def test_signature_for_another_tier_is_rejected(
    fresh: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    weak = trio[2]
    sig = sign_poc(weak.account.key, Tier.WEAK, weak.bench_hash,
                   fresh.chain_id, fresh.address, name="x")
    reverts(
        "FLCoordinator__InvalidSignature",
        lambda: fresh.register_hospital(weak.address, "x", Tier.STRONG, weak.bench_hash, sig),
    )


def test_owner_cannot_register_under_another_name(
    fresh: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    h = trio[0]
    sig = sign_poc(h.account.key, h.tier, h.bench_hash, fresh.chain_id, fresh.address,
                   name="General Hospital")
    err = reverts(
        "FLCoordinator__InvalidSignature",
        lambda: fresh.register_hospital(h.address, "Quack Clinic", h.tier, h.bench_hash, sig),
    )
    assert err.args_decoded[0] == h.address
    fresh.register_hospital(h.address, "General Hospital", h.tier, h.bench_hash, sig)
    assert fresh.hospital_info(h.address).name == "General Hospital"


def test_ownership_moves_in_two_steps(fresh: FLCoordinatorClient, trio: list[Hospital]) -> None:
    owner, successor = fresh.conn.owner.address, trio[0].account
    fresh.transfer_ownership(successor.address)
    assert fresh.owner() == owner  # nothing moves until the new owner accepts
    assert fresh.pending_owner() == successor.address
    reverts("OwnableUnauthorizedAccount", as_sender(fresh, trio[1].account).accept_ownership)
    reverts("OwnableUnauthorizedAccount", lambda: as_sender(fresh, successor).register_hospital(
        trio[1].address, "x", Tier.WEAK, b"\x01" * 32, b"\x00" * 65))
    as_sender(fresh, successor).accept_ownership()
    assert fresh.owner() == successor.address
    assert fresh.pending_owner() == ZERO_ADDRESS
    reverts("OwnableUnauthorizedAccount", fresh.start_round)  # the old owner lost its rights


def test_signature_for_another_benchmark_is_rejected(
    fresh: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    h = trio[1]
    sig = sign_poc(h.account.key, h.tier, b"\x01" * 32, fresh.chain_id, fresh.address, name="x")
    reverts(
        "FLCoordinator__InvalidSignature",
        lambda: fresh.register_hospital(h.address, "x", h.tier, h.bench_hash, sig),
    )


def test_signature_for_another_chain_is_rejected(
    fresh: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    h = trio[1]
    sig = sign_poc(h.account.key, h.tier, h.bench_hash, fresh.chain_id + 1, fresh.address, name="x")
    reverts(
        "FLCoordinator__InvalidSignature",
        lambda: fresh.register_hospital(h.address, "x", h.tier, h.bench_hash, sig),
    )


def test_signature_replayed_on_another_deployment(
    chain: ChainConnection, trio: list[Hospital]
) -> None:
    first = FLCoordinatorClient.deploy(chain)
    second = FLCoordinatorClient.deploy(chain)
    h = trio[0]
    sig = sign_poc(h.account.key, h.tier, h.bench_hash, first.chain_id, first.address, name="x")
    first.register_hospital(h.address, "x", h.tier, h.bench_hash, sig)
    reverts(
        "FLCoordinator__InvalidSignature",
        lambda: second.register_hospital(h.address, "x", h.tier, h.bench_hash, sig),
    )


def test_high_s_signature_is_rejected(fresh: FLCoordinatorClient, trio: list[Hospital]) -> None:
    h = trio[2]
    sig = sign_poc(h.account.key, h.tier, h.bench_hash, fresh.chain_id, fresh.address, name="x")
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    malleable = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # 27 <-> 28
    # the twin signature recovers the same key mathematically, yet must be refused
    assert (
        Account._recover_hash(  # type: ignore[attr-defined]
            _eth_signed(h, fresh), vrs=(malleable[64], r, malleable[32:64])
        )
        == h.address
    )
    err = reverts(
        "FLCoordinator__InvalidSignature",
        lambda: fresh.register_hospital(h.address, "x", h.tier, h.bench_hash, malleable),
    )
    assert err.args_decoded == (h.address, ZERO_ADDRESS)
    register(fresh, h)  # the canonical signature still works


def _eth_signed(h: Hospital, client: FLCoordinatorClient) -> bytes:
    from eth_account.messages import _hash_eip191_message, encode_defunct

    from chainlearn_ray.chain.statements import poc_digest

    digest = poc_digest(h.address, h.tier, h.bench_hash, client.chain_id, client.address,
                        name="x")
    return bytes(_hash_eip191_message(encode_defunct(primitive=digest)))


def test_short_signature_is_rejected(fresh: FLCoordinatorClient, trio: list[Hospital]) -> None:
    h = trio[0]
    sig = sign_poc(h.account.key, h.tier, h.bench_hash, fresh.chain_id, fresh.address, name="x")
    reverts(
        "FLCoordinator__InvalidSignature",
        lambda: fresh.register_hospital(h.address, "x", h.tier, h.bench_hash, sig[:64]),
    )


def test_zero_address_cannot_register(fresh: FLCoordinatorClient) -> None:
    garbage = b"\x00" * 65
    reverts(
        "FLCoordinator__ZeroAddress",
        lambda: fresh.register_hospital(ZERO_ADDRESS, "x", Tier.STRONG, b"\x02" * 32, garbage),
    )
    assert fresh.hospital_count() == 0
    assert not fresh.hospital_info(ZERO_ADDRESS).registered


def test_unregistered_info_is_zero(fresh: FLCoordinatorClient) -> None:
    info = fresh.hospital_info(Account.create().address)
    assert not info.registered
    assert (info.name, info.confidence, info.rounds_participated) == ("", 0, 0)


def test_many_registrations_keep_indices(chain: ChainConnection) -> None:
    client = FLCoordinatorClient.deploy(chain)
    hospitals = [make_hospital(100 + i, Tier(i % 3)) for i in range(7)]
    gas = [register(client, h, name=f"h{i:02d}").gas_used for i, h in enumerate(hospitals)]
    assert client.hospital_count() == 7
    assert max(gas) - min(gas) <= 0.01 * min(gas)
    for h in hospitals:
        assert client.hospital_info(h.address).tier is h.tier
