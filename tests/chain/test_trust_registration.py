"""Trust mode, chosen at deployment: its parameters, challenges, attested registration, stakes,
and the separation of the two modes' functions."""

from __future__ import annotations

import pytest
from eth_account import Account

from chainlearn_ray.chain.backends import ChainConnection
from chainlearn_ray.chain.client import FLCoordinatorClient, _send_signed
from chainlearn_ray.chain.statements import milli_samples, sign_attestation, sign_poc
from chainlearn_ray.chain.trust import ZERO_ADDRESS, Phase, TrustConfig
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.protocol.tiers import Tier
from tests.chain.conftest import (
    TRUST,
    Hospital,
    as_sender,
    attest,
    commit,
    events,
    hospital_tx,
    make_hospital,
    make_update,
    register,
    register_attested,
    reverts,
)


def _deploy_raw(chain: ChainConnection, config: tuple) -> FLCoordinatorClient:
    """Deploy with a constructor tuple the Python TrustConfig would refuse (contract checks)."""
    probe = FLCoordinatorClient.deploy(chain)  # for its artifact and revert decoder
    factory = chain.w3.eth.contract(abi=list(probe.artifact.abi), bytecode=probe.artifact.bytecode)
    data = factory.constructor(config, 0).data_in_transaction
    _, receipt = _send_signed(chain, chain.owner, None, data, "deploy", probe._reverts)
    return FLCoordinatorClient(chain, receipt["contractAddress"], probe.artifact)


@pytest.fixture
def trust_client(chain: ChainConnection) -> FLCoordinatorClient:
    """A trust-mode deployment, its reward reserve funded for one round."""
    client = FLCoordinatorClient.deploy(chain, trust=TRUST)
    client.fund_reward_pool(TRUST.reward_per_round_wei)
    return client


# ---------------------------------------------------------------- deployment
def test_seed_mode_is_the_default(fresh: FLCoordinatorClient) -> None:
    assert not fresh.trust_mode()
    assert fresh.trust_config() is None


def test_trust_config_reads_back_with_defaults_resolved(
    trust_client: FLCoordinatorClient,
) -> None:
    owner = trust_client.conn.owner.address
    assert trust_client.trust_mode()
    config = trust_client.trust_config()
    assert config is not None
    assert config == TrustConfig(
        TRUST.min_stake_wei, TRUST.reward_per_round_wei, TRUST.audit_tolerance,
        TRUST.slash_fraction, TRUST.medium_min_milli, TRUST.strong_min_milli, owner, (owner,),
    )  # fmt: skip
    phase = trust_client.round_phase()
    assert (phase.round, phase.phase, phase.closed) == (0, Phase.COMMIT, False)


@pytest.mark.parametrize(
    ("change", "error", "args"),
    [
        ({4: 10_001}, "FLCoordinator__SlashBeyondStake", (10_001, 10_000)),
        ({3: 10_001}, "FLCoordinator__ToleranceOutOfRange", (10_001,)),
        ({5: 300_001}, "FLCoordinator__TierThresholdsOutOfOrder", (300_001, 300_000)),
        ({8: [ZERO_ADDRESS]}, "FLCoordinator__InvalidAuditors", (1,)),
        ({8: ["0x" + "11" * 20, "0x" + "22" * 20]}, "FLCoordinator__InvalidAuditors", (2,)),
        ({8: ["0x" + "11" * 20] * 3}, "FLCoordinator__InvalidAuditors", (3,)),
        ({8: ["0x" + f"{i:040x}" for i in range(1, 8)]}, "FLCoordinator__InvalidAuditors", (7,)),
    ],
)
def test_deployment_rejects_bad_trust_parameters(
    chain: ChainConnection, change: dict[int, object], error: str, args: tuple
) -> None:
    config = list(TRUST.to_abi())
    for index, value in change.items():
        config[index] = value
    err = reverts(error, lambda: _deploy_raw(chain, tuple(config)))
    assert err.args_decoded == args


def test_python_config_refuses_the_same() -> None:
    with pytest.raises(ConfigError, match="slash_fraction"):
        TrustConfig(1, 1, 0, 10_001, 0, 0)
    with pytest.raises(ConfigError, match="1, 3 or 5"):
        TrustConfig(1, 1, 0, 0, 0, 0, auditors=("0x" + "11" * 20, "0x" + "22" * 20))
    with pytest.raises(ConfigError, match="twice"):
        TrustConfig(1, 1, 0, 0, 0, 0, auditors=("0x" + "11" * 20,) * 3)
    with pytest.raises(ConfigError, match="thresholds"):
        TrustConfig(1, 1, 0, 0, 5, 4)


def test_the_modes_keep_to_their_functions(
    fresh: FLCoordinatorClient, trust_client: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    h = trio[0]
    reverts("FLCoordinator__SeedModeOnly", lambda: register(trust_client, h))
    reverts("FLCoordinator__TrustModeOnly", lambda: fresh.issue_challenge(h.address))
    reverts("FLCoordinator__TrustModeOnly", fresh.start_reveal_phase)
    reverts("FLCoordinator__TrustModeOnly", lambda: fresh.fund_reward_pool(1))
    reverts("FLCoordinator__TrustModeOnly",
            lambda: fresh.report_audit(1, h.address, b"\x01" * 32, 1, 1))
    register(fresh, h)
    reverts("FLCoordinator__TrustModeOnly", lambda: commit(fresh, h, make_update(h, 1)))
    reverts("FLCoordinator__TrustModeOnly", lambda: hospital_tx(fresh, h, "withdraw"))
    register_attested(trust_client, h)
    trust_client.start_round()
    from tests.chain.conftest import submit

    reverts("FLCoordinator__SeedModeOnly", lambda: submit(trust_client, h))


# ---------------------------------------------------------------- challenges
def test_challenge_is_fresh_and_verifier_only(
    trust_client: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    h = trio[0]
    result = trust_client.issue_challenge(h.address)
    first = trust_client.challenge(h.address)
    (event,) = events(trust_client, result, "ChallengeIssued")
    assert event["challenge"] == first and event["nonce"] == 1
    trust_client.issue_challenge(h.address)
    assert trust_client.challenge(h.address) not in (first, b"\x00" * 32)  # replaced
    err = reverts("FLCoordinator__NotVerifier",
                  lambda: trust_client.issue_challenge(h.address, trio[1].account))
    assert err.args_decoded == (trio[1].address,)
    reverts("FLCoordinator__ZeroAddress", lambda: trust_client.issue_challenge(ZERO_ADDRESS))


def test_a_separate_verifier(chain: ChainConnection, trio: list[Hospital]) -> None:
    verifier = Account.from_key(b"\x42" * 32)
    chain.fund(verifier.address, 10**18)
    config = TrustConfig(TRUST.min_stake_wei, TRUST.reward_per_round_wei, 200, 2500, 100_000,
                         300_000, verifier=verifier.address)
    client = FLCoordinatorClient.deploy(chain, trust=config)
    h = trio[1]
    reverts("FLCoordinator__NotVerifier", lambda: client.issue_challenge(h.address))
    signature, attestation, milli = attest(client, h, "General", verifier=verifier)
    client.register_hospital_attested(h.address, "General", h.tier, h.bench_hash, milli,
                                      signature, attestation)
    assert client.hospital_info(h.address).registered
    other = trio[2]  # an attestation by the owner, who is not the verifier, is refused
    client.issue_challenge(other.address, verifier)
    challenge = client.challenge(other.address)
    sig = sign_poc(other.account.key, other.tier, other.bench_hash, client.chain_id,
                   client.address, name="x", challenge=challenge)
    forged = sign_attestation(chain.owner.key, other.address, challenge, 60_000, client.chain_id,
                              client.address)
    err = reverts("FLCoordinator__InvalidAttestation", lambda: client.register_hospital_attested(
        other.address, "x", other.tier, other.bench_hash, 60_000, sig, forged))
    assert err.args_decoded == (other.address, chain.owner.address)


# ---------------------------------------------------------------- attested registration
def test_attested_registration(trust_client: FLCoordinatorClient, trio: list[Hospital]) -> None:
    h = trio[0]
    result = register_attested(trust_client, h, name="St. Mary's", stake=3 * 10**17)
    info = trust_client.hospital_info(h.address)
    assert (info.name, info.tier, info.registered) == ("St. Mary's", Tier.STRONG, True)
    assert trust_client.challenge(h.address) == b"\x00" * 32  # consumed
    account = trust_client.hospital_account(h.address)
    assert (account.stake_wei, account.withdrawable_wei) == (3 * 10**17, 3 * 10**17)
    (attested,) = events(trust_client, result, "HospitalAttested")
    assert attested["throughput"] == milli_samples(450.0)
    assert attested["measuredCapacity"] == int(Tier.STRONG)
    (staked,) = events(trust_client, result, "StakeDeposited")
    assert staked["stake"] == 3 * 10**17
    (registered,) = events(trust_client, result, "HospitalRegistered")
    assert registered["name"] == "St. Mary's"


def test_registration_needs_a_challenge(
    trust_client: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    h = trio[0]
    sig = sign_poc(h.account.key, h.tier, h.bench_hash, trust_client.chain_id,
                   trust_client.address, name="x", challenge=b"\x01" * 32)
    att = sign_attestation(trust_client.conn.owner.key, h.address, b"\x01" * 32, 450_000,
                           trust_client.chain_id, trust_client.address)
    err = reverts("FLCoordinator__NoChallenge", lambda: trust_client.register_hospital_attested(
        h.address, "x", h.tier, h.bench_hash, 450_000, sig, att))
    assert err.args_decoded == (h.address,)


def test_the_signature_binds_the_challenge_and_name(
    trust_client: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    h = trio[1]
    signature, attestation, milli = attest(trust_client, h, "General")
    seed_style = sign_poc(h.account.key, h.tier, h.bench_hash, trust_client.chain_id,
                          trust_client.address, name="General")  # no challenge
    for sig, name in ((seed_style, "General"), (signature, "Other")):
        reverts("FLCoordinator__InvalidSignature", lambda sig=sig, name=name:
                trust_client.register_hospital_attested(h.address, name, h.tier, h.bench_hash,
                                                        milli, sig, attestation))
    # the attestation binds the throughput the verifier measured
    reverts("FLCoordinator__InvalidAttestation", lambda: trust_client.register_hospital_attested(
        h.address, "General", h.tier, h.bench_hash, milli + 1, signature, attestation))
    trust_client.register_hospital_attested(h.address, "General", h.tier, h.bench_hash, milli,
                                            signature, attestation)


def test_a_tier_above_the_measured_throughput_is_refused(
    trust_client: FLCoordinatorClient,
) -> None:
    spoofer = make_hospital(60, Tier.STRONG)  # a weak machine claiming Strong
    signature, attestation, milli = attest(trust_client, spoofer, "x", throughput=60.0)
    err = reverts("FLCoordinator__CapacityAboveMeasured",
                  lambda: trust_client.register_hospital_attested(
                      spoofer.address, "x", Tier.STRONG, spoofer.bench_hash, milli, signature,
                      attestation))
    assert err.args_decoded == (int(Tier.STRONG), int(Tier.WEAK))
    modest = make_hospital(61, Tier.WEAK)  # a strong machine may register lower
    signature, attestation, milli = attest(trust_client, modest, "y", throughput=450.0)
    trust_client.register_hospital_attested(modest.address, "y", Tier.WEAK, modest.bench_hash,
                                            milli, signature, attestation)


def test_attested_registration_is_owner_only(
    trust_client: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    h = trio[2]
    signature, attestation, milli = attest(trust_client, h, "x")
    outsider = as_sender(trust_client, h.account)
    reverts("OwnableUnauthorizedAccount", lambda: outsider.register_hospital_attested(
        h.address, "x", h.tier, h.bench_hash, milli, signature, attestation))


# ---------------------------------------------------------------- stakes
def test_hospital_stakes_itself(
    trust_client: FLCoordinatorClient, trio: list[Hospital], chain: ChainConnection
) -> None:
    h = trio[2]
    stranger = make_hospital(62, Tier.WEAK)
    chain.fund(stranger.address, 10**18)
    reverts("FLCoordinator__NotRegistered",
            lambda: hospital_tx(trust_client, stranger, "depositStake", value=10**17))
    register_attested(trust_client, h)
    trust_client.start_round()
    update = make_update(h, 1)
    err = reverts("FLCoordinator__StakeBelowMinimum", lambda: commit(trust_client, h, update))
    assert err.args_decoded == (h.address, 0, TRUST.min_stake_wei)
    hospital_tx(trust_client, h, "depositStake", value=TRUST.min_stake_wei // 2)
    reverts("FLCoordinator__StakeBelowMinimum", lambda: commit(trust_client, h, update))
    result = hospital_tx(trust_client, h, "depositStake", value=TRUST.min_stake_wei // 2)
    (event,) = events(trust_client, result, "StakeDeposited")
    assert event["stake"] == TRUST.min_stake_wei
    commit(trust_client, h, update)
    assert trust_client.hospital_account(h.address).stake_wei == TRUST.min_stake_wei


def test_attach_to_a_trust_deployment(trust_client: FLCoordinatorClient,
                                      chain: ChainConnection) -> None:
    """The runtime code differs from the artifact where the constructor wrote immutables only."""
    again = FLCoordinatorClient.attach(chain, trust_client.address)
    assert again.trust_config() == trust_client.trust_config()
    code = bytearray(chain.w3.eth.get_code(trust_client.address))
    start, _ = trust_client.artifact.immutable_ranges[0]
    assert trust_client.artifact.matches_deployed(bytes(code))
    code[start - 1] ^= 0xFF  # a byte outside the immutable ranges
    assert not trust_client.artifact.matches_deployed(bytes(code))


def test_the_hospital_signs_only_the_stake_it_intends(
    trust_client: FLCoordinatorClient, trio: list[Hospital]
) -> None:
    from chainlearn_ray.chain.tx import encode_deposit_stake, sign_transaction
    from chainlearn_ray.errors import ChainError

    h = trio[0]
    register_attested(trust_client, h)
    tx = trust_client.prepare_deposit_stake(h.address, 5 * 10**17)
    assert tx["value"] == 5 * 10**17
    with pytest.raises(ChainError, match="sends ETH"):  # the default: no value at all
        sign_transaction(tx, h.account.key, expected_data=encode_deposit_stake())
    with pytest.raises(ChainError, match="not 100000000000000000"):
        sign_transaction(tx, h.account.key, expected_value=10**17)
    raw = sign_transaction(tx, h.account.key, expected_data=encode_deposit_stake(),
                           expected_value=5 * 10**17)
    trust_client.send_raw(raw, "depositStake")
    assert trust_client.hospital_account(h.address).stake_wei == 5 * 10**17
