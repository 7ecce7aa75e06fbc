"""The contract's weight formula: reference vectors, stored state and agreement with Python."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chainlearn_ray.chain.backends import ChainConnection
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.errors import ContractRevertError
from chainlearn_ray.protocol.tiers import ModelType, Tier
from chainlearn_ray.protocol.weights import SCALE, compute_weight
from tests.chain.conftest import Hospital, make_hospital, register, submit
from tests.unit.test_weights import VECTORS


@pytest.fixture(scope="module")
def coordinator(chain: ChainConnection) -> FLCoordinatorClient:
    return FLCoordinatorClient.deploy(chain)


@pytest.mark.parametrize(("tier", "conf", "ece", "rounds", "expected"), VECTORS)
def test_reference_vectors_on_chain(
    coordinator: FLCoordinatorClient, tier: Tier, conf: int, ece: int, rounds: int, expected: int
) -> None:
    assert coordinator.weight_pure(tier, conf, ece, rounds) == expected


def test_huge_round_counts_do_not_overflow(coordinator: FLCoordinatorClient) -> None:
    assert coordinator.weight_pure(Tier.STRONG, 10000, 0, 2**256 - 1) == 14500


@pytest.mark.parametrize(
    ("conf", "ece", "error"),
    [
        (10001, 0, "FLCoordinator__ConfidenceOutOfRange"),
        (0, 10001, "FLCoordinator__EceOutOfRange"),
    ],
)
def test_pure_rejects_out_of_range(
    coordinator: FLCoordinatorClient, conf: int, ece: int, error: str
) -> None:
    with pytest.raises(ContractRevertError) as info:
        coordinator.weight_pure(Tier.MEDIUM, conf, ece, 0)
    assert info.value.error_name == error


def test_model_types(coordinator: FLCoordinatorClient) -> None:
    assert [coordinator.model_type(t) for t in Tier] == [
        ModelType.LIGHT,
        ModelType.MEDIUM,
        ModelType.HEAVY,
    ]


@pytest.mark.slow
@pytest.mark.slow
@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tier=st.sampled_from(list(Tier)),
    conf=st.integers(0, SCALE),
    ece=st.integers(0, SCALE),
    rounds=st.one_of(st.integers(0, 12), st.integers(0, 2**32)),
)
@example(tier=Tier.STRONG, conf=SCALE, ece=0, rounds=5)
@example(tier=Tier.WEAK, conf=0, ece=SCALE, rounds=0)
@example(tier=Tier.MEDIUM, conf=1, ece=SCALE - 1, rounds=4)
@example(tier=Tier.STRONG, conf=SCALE, ece=0, rounds=2**32)
def test_contract_matches_python(
    coordinator: FLCoordinatorClient, tier: Tier, conf: int, ece: int, rounds: int
) -> None:
    assert coordinator.weight_pure(tier, conf, ece, rounds) == compute_weight(
        tier, conf, ece, rounds
    )


def test_stored_state_vector(chain: ChainConnection, trio: list[Hospital]) -> None:
    """All three submit 9000/1000 in round 1: Strong 10220, Medium 8600, Weak 6980."""
    client = FLCoordinatorClient.deploy(chain)
    for hospital in trio:
        register(client, hospital)
    client.start_round()
    for hospital in trio:
        submit(client, hospital, 9000, 1000)
    assert [client.weight(h.address) for h in trio] == [10220, 8600, 6980]
    assert [client.round_weight(1, h.address) for h in trio] == [10220, 8600, 6980]
    for hospital in trio:
        expected = compute_weight(hospital.tier, 9000, 1000, 1)
        assert client.weight(hospital.address) == expected


def test_registered_but_silent_hospital_weighs_zero(chain: ChainConnection) -> None:
    client = FLCoordinatorClient.deploy(chain)
    hospital = make_hospital(40, Tier.STRONG)
    register(client, hospital)
    assert client.weight(hospital.address) == 0
