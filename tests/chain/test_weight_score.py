"""The deployment option for the weight's score term: confidence (seed) or balanced accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainlearn_ray.chain.backends import ChainConnection
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.protocol.metrics import balanced_accuracy, to_fixed
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.protocol.weights import WeightScore, compute_weight
from tests.chain.conftest import Hospital, register, submit


@pytest.fixture(scope="module")
def balacc(chain: ChainConnection) -> FLCoordinatorClient:
    return FLCoordinatorClient.deploy(chain, score="balanced_accuracy")


def test_the_option_is_read_back_and_the_seed_default_stays(
    chain: ChainConnection, balacc: FLCoordinatorClient
) -> None:
    assert balacc.weight_score() is WeightScore.BALANCED_ACCURACY
    assert FLCoordinatorClient.deploy(chain).weight_score() is WeightScore.CONFIDENCE
    with pytest.raises(ConfigError, match="weight score 'brier'"):
        WeightScore.parse("brier")


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    tier=st.sampled_from(list(Tier)),
    pairs=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=60),
    ece=st.integers(0, 10000),
    rounds=st.integers(0, 8),
)
def test_balanced_accuracy_weights_on_chain_equal_python(
    balacc: FLCoordinatorClient, tier: Tier, pairs: list[tuple[int, int]], ece: int, rounds: int
) -> None:
    labels = np.array([a for a, _ in pairs])
    preds = np.array([b for _, b in pairs])
    score = to_fixed(balanced_accuracy(preds, labels, 3))
    assert balacc.weight_pure(tier, score, ece, rounds) == compute_weight(tier, score, ece, rounds)


def test_a_collapsed_model_loses_the_weight_the_seed_score_gave_it(
    chain: ChainConnection, trio: list[Hospital]
) -> None:
    """Severe skew: a Strong hospital's model predicts 'pneumonia' for everything (confidence
    0.986, ECE 0.243), a Medium hospital's model is good (confidence 0.90, ECE 0.05). The seed
    score ranks the collapsed one first; balanced accuracy, stored and weighed on chain, ranks
    it far below."""
    labels = np.array([1] * 390 + [0] * 234)  # the PneumoniaMNIST test class balance
    collapsed = np.ones_like(labels)
    good = labels.copy()
    good[:30] = 0  # 30 pneumonia images missed
    good[400:420] = 1  # 20 normal images called pneumonia
    strong, medium, _ = trio
    cases = {"collapsed": (strong, collapsed, 9860, 2430), "good": (medium, good, 9000, 500)}
    seed = {k: compute_weight(h.tier, conf, ece, 1) for k, (h, _, conf, ece) in cases.items()}
    assert seed["collapsed"] > seed["good"]  # the failure the option fixes
    client = FLCoordinatorClient.deploy(chain, score="balanced_accuracy")
    for hospital, *_ in cases.values():
        register(client, hospital)
    client.start_round()
    weights = {}
    for name, (hospital, preds, _, ece) in cases.items():
        score = to_fixed(balanced_accuracy(preds, labels, 2))
        submit(client, hospital, score, ece)
        assert client.round_submission(1, hospital.address).confidence == score
        weights[name] = client.round_weight(1, hospital.address)
        assert weights[name] == compute_weight(hospital.tier, score, ece, 1)
    assert weights["collapsed"] < 0.6 * weights["good"]
