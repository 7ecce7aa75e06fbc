"""Chain settings are checked in the driver before anything starts, and nothing is sent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chainlearn_ray.chain.anvil import find_anvil
from chainlearn_ray.chain.backends import ChainConnection, connect
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.chain.preflight import check_chain
from chainlearn_ray.errors import ChainError, ConfigError
from chainlearn_ray.protocol.tiers import Tier
from tests.chain.conftest import make_hospital, register


@pytest.mark.parametrize(("rpc_url", "contract", "message"), [
    ("localhost:8545", None, "must be an http"),
    ("ftp://host:1", None, "must be an http"),
    (None, "0x1234", "20-byte hex address"),
    (None, "0x" + "12" * 20, "the embedded chain starts empty"),
])
def test_settings_refused_without_a_node(rpc_url: str | None, contract: str | None,
                                         message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_chain("embedded", rpc_url, contract)


@pytest.fixture(scope="module")
def anvil() -> Iterator[ChainConnection]:
    if find_anvil() is None:
        pytest.skip("the anvil binary is missing: run `npm ci` in contracts/")
    with connect("anvil") as conn:
        yield conn


@pytest.mark.anvil
def test_attach_checks_code_and_refuses_a_used_deployment(anvil: ChainConnection) -> None:
    url = anvil.rpc_url
    assert url
    check_chain("rpc", url, None)  # a node answers: fine
    with pytest.raises(ChainError, match="no contract at"):
        check_chain("rpc", url, "0x" + "12" * 20)
    fresh = FLCoordinatorClient.deploy(anvil)
    check_chain("rpc", url, fresh.address)  # unused deployment: fine
    used = FLCoordinatorClient.deploy(anvil)
    hospital = make_hospital(901, Tier.WEAK)
    anvil.fund_many([hospital.address], 10**18)
    register(used, hospital)
    block = anvil.w3.eth.block_number
    with pytest.raises(ChainError, match=r"used before \(1 hospital\(s\) registered, round 0\)"):
        check_chain("rpc", url, used.address)
    assert anvil.w3.eth.block_number == block  # refused without sending anything


def test_dead_port_is_one_error_not_a_traceback() -> None:
    with pytest.raises(ChainError, match=r"no JSON-RPC node answered at http://127\.0\.0\.1:9"):
        check_chain("rpc", "http://127.0.0.1:9", None)
