"""The FLCoordinator contract behind the :class:`~chainlearn_ray.methods.chain_port.ChainPort`."""

from __future__ import annotations

import logging
from typing import Any

from chainlearn_ray.chain.artifact import artifact_sha256
from chainlearn_ray.chain.backends import ChainConnection, connect
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.chain.records import HospitalInfo
from chainlearn_ray.chain.trust import TrustConfig
from chainlearn_ray.errors import ChainError, ConfigError
from chainlearn_ray.methods.chain_port import RoundOpening, Update
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.protocol.weights import WeightScore

logger = logging.getLogger(__name__)

#: Ether given to each hospital account for its own gas.
HOSPITAL_FUNDING_WEI = 10**18


class ContractPort:
    """A :class:`~chainlearn_ray.methods.chain_port.ChainPort` over one FLCoordinator deployment.

    Parameters
    ----------
    conn:
        The chain connection (owner key included).
    contract:
        Address of a deployed FLCoordinator to attach to (its code is checked); ``None``:
        deploy a new one.
    backend:
        Name of the backend, as recorded in manifests.
    score:
        What a new deployment's submissions carry in their score field (ignored when
        attaching: an existing deployment says what it holds).
    journal:
        The signed transactions of an earlier run on a fresh chain of this backend (its
        :meth:`journal`): replayed first, and the port attaches to the deployment they made,
        so a resumed run continues on the chain state it left.
    """

    #: Trust-mode parameters of the deployments this port makes (``None``: the seed protocol).
    trust: TrustConfig | None = None

    def __init__(self, conn: ChainConnection, contract: str | None = None,
                 backend: str = "", score: WeightScore | str = WeightScore.CONFIDENCE,
                 journal: list[str] | None = None) -> None:
        self.conn, self.backend, self.attached = conn, backend, bool(contract)
        if journal:
            receipts = conn.replay(journal)
            contract = next((str(r["contractAddress"]) for r in receipts
                             if r.get("contractAddress")), None)
            if contract is None:
                raise ChainError("the run's chain journal deploys no contract")
        self.client = (FLCoordinatorClient.attach(conn, contract) if contract
                       else self._deploy(WeightScore.parse(score)))
        self._score = self.client.weight_score()

    def _deploy(self, score: WeightScore) -> FLCoordinatorClient:
        """A new deployment on this connection, in this port's mode (``trust``), holding
        ``score``."""
        return FLCoordinatorClient.deploy(self.conn, trust=self.trust, score=score)

    @classmethod
    def open(cls, backend: str, rpc_url: str | None = None, contract: str | None = None,
             score: WeightScore | str = WeightScore.CONFIDENCE,
             journal: list[str] | None = None) -> ContractPort:
        """Connect to ``backend`` (``embedded`` runs an in-process EVM) and deploy or attach
        (after replaying ``journal``, when given)."""
        return cls(connect(backend, rpc_url=rpc_url), contract, backend, score, journal)

    def journal(self) -> list[str]:
        """Every signed transaction sent on this connection so far, in order (hex)."""
        return list(self.conn.journal)

    # ------------------------------------------------------------------ the port
    @property
    def chain_id(self) -> int:
        """Id of the chain."""
        return int(self.client.chain_id)

    @property
    def contract(self) -> str:
        """Address of the deployment."""
        return str(self.client.address)

    @property
    def weight_score(self) -> WeightScore:
        """What the deployment's submissions carry in their score (``confidence``) field."""
        return self._score

    def register(self, hospital: str, name: str, tier: Tier, bench_hash: bytes,
                 signature: bytes) -> int:
        """Fund ``hospital`` (:data:`HOSPITAL_FUNDING_WEI`), then ``registerHospital``."""
        self.conn.fund(hospital, HOSPITAL_FUNDING_WEI)
        return int(self.client.register_hospital(hospital, name, tier, bench_hash,
                                                 signature).gas_used)

    def start_round(self) -> RoundOpening:
        """``startNewRound``, with the fee fields of the block right after it."""
        tx = self.client.start_round()
        return RoundOpening(int(tx.block_number), int(tx.gas_used),
                            self.conn.fee_fields(max_age=0.0))

    def prepare_update(self, hospital: str, update: Update,
                       opening: RoundOpening) -> dict[str, Any]:
        """An unsigned ``submitUpdate`` estimated against the state after ``opening``."""
        return self.client.prepare_submit_update(
            hospital, update.model_hash, update.confidence, update.ece, update.model_type,
            fees=opening.fees, block=opening.block)

    def submit(self, raw: bytes) -> int:
        """Relay a signed ``submitUpdate`` and wait until it is mined."""
        return int(self.client.send_raw(raw, "submitUpdate").gas_used)

    def round_weight(self, round_: int, hospital: str) -> int:
        """``calculateRoundWeight``."""
        return int(self.client.round_weight(round_, hospital))

    def record_ensemble(self, prediction_hash: bytes, participants: int) -> int:
        """``recordEnsemblePrediction``."""
        return int(self.client.record_ensemble(prediction_hash, participants).gas_used)

    def hospital_info(self, hospital: str) -> HospitalInfo:
        """``getHospitalInfo``."""
        return self.client.hospital_info(hospital)

    def weight_pure(self, tier: Tier, confidence: int, ece: int, rounds: int) -> int:
        """``calculateWeightPure``."""
        return int(self.client.weight_pure(tier, confidence, ece, rounds))

    # ------------------------------------------------------------------ the deployment
    def info(self) -> dict[str, Any]:
        """Contract address, chain id, backend and artifact hash."""
        return {"contract": self.contract, "chain_id": self.chain_id, "backend": self.backend,
                "artifact_sha256": artifact_sha256(), "weight_score": self._score.label}

    def redeploy(self, score: WeightScore | str | None = None) -> dict[str, Any]:
        """Deploy a fresh FLCoordinator on the same chain (a study variant starts from an empty
        contract), holding ``score`` (default: the current deployment's); returns :meth:`info`
        of the new deployment."""
        if self.attached:
            raise ConfigError("this run attached to an existing deployment (--contract): it "
                              "cannot deploy another; run without --contract")
        self._score = WeightScore.parse(self._score if score is None else score)
        self.client = self._deploy(self._score)
        return self.info()

    def receipts(self) -> list[dict[str, Any]]:
        """Every transaction of the current deployment as plain dicts."""
        return [r.to_dict() for r in self.client.receipts]

    def close(self) -> None:
        """Stop the chain backend (an anvil process, for instance)."""
        self.conn.close()
