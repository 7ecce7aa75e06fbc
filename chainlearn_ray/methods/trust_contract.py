"""Trust mode of the FLCoordinator contract as a method sees it: :class:`TrustContractPort`, the
seed port (:class:`~chainlearn_ray.methods.contract.ContractPort`) plus challenges, attested
registration with a stake, commit-reveal, audits, the reward pool and the hospitals' exit.

The coordinator is the verifier and the auditor (the deployment's defaults): it issues each
challenge, signs each attestation and reports each audit with the owner key.
"""

from __future__ import annotations

import logging
from typing import Any

from chainlearn_ray.chain.backends import ChainConnection, connect
from chainlearn_ray.chain.statements import sign_attestation
from chainlearn_ray.chain.trust import HospitalAccount, RoundSettlement, TrustConfig
from chainlearn_ray.methods.chain_port import RoundOpening
from chainlearn_ray.methods.contract import HOSPITAL_FUNDING_WEI, ContractPort
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.protocol.weights import WeightScore

logger = logging.getLogger(__name__)


class TrustContractPort(ContractPort):
    """A trust-mode FLCoordinator deployment (deployed with ``trust``, or attached to one)."""

    def __init__(self, conn: ChainConnection, trust: TrustConfig, contract: str | None = None,
                 backend: str = "", score: WeightScore | str = WeightScore.CONFIDENCE) -> None:
        self.trust: TrustConfig = trust
        super().__init__(conn, contract, backend, score)

    @classmethod
    def open_trust(cls, backend: str, trust: TrustConfig, rpc_url: str | None = None,
                   contract: str | None = None,
                   score: WeightScore | str = WeightScore.CONFIDENCE) -> TrustContractPort:
        """Connect to ``backend`` and deploy (or attach to) a trust-mode contract."""
        return cls(connect(backend, rpc_url=rpc_url), trust, contract, backend, score)

    # ------------------------------------------------------------------ registration
    def issue_challenge(self, hospital: str) -> bytes:
        """``issueChallenge`` (the coordinator is the verifier); returns the challenge."""
        self.client.issue_challenge(hospital)
        return self.client.challenge(hospital)

    def register_attested(self, hospital: str, name: str, tier: Tier, bench_hash: bytes,
                          throughput_milli: int, signature: bytes, challenge: bytes,
                          stake_wei: int) -> int:
        """Fund ``hospital`` for its gas, attest ``throughput_milli`` under ``challenge`` and
        ``registerHospitalAttested`` with ``stake_wei`` staked for it; returns the gas."""
        self.conn.fund(hospital, HOSPITAL_FUNDING_WEI)
        attestation = sign_attestation(self.conn.owner.key, hospital, challenge,
                                       throughput_milli, self.chain_id, self.contract)
        return int(self.client.register_hospital_attested(
            hospital, name, tier, bench_hash, throughput_milli, signature, attestation,
            stake_wei).gas_used)

    def fund_rewards(self, amount_wei: int) -> int:
        """``fundRewardPool``; returns the gas."""
        return int(self.client.fund_reward_pool(amount_wei).gas_used)

    # ------------------------------------------------------------------ rounds
    def prepare_commit(self, hospital: str, commitment: bytes,
                       opening: RoundOpening) -> dict[str, Any]:
        """An unsigned ``commitUpdate`` estimated against the state after ``opening``."""
        return self.client.prepare_commit_update(hospital, commitment, fees=opening.fees,
                                                 block=opening.block)

    def start_reveal(self) -> RoundOpening:
        """``startRevealPhase``, with the fee fields of the block right after it."""
        tx = self.client.start_reveal_phase()
        return RoundOpening(int(tx.block_number), int(tx.gas_used),
                            self.conn.fee_fields(max_age=0.0))

    def prepare_reveal(self, hospital: str, args: tuple[bytes, int, int, int, bytes],
                       opening: RoundOpening) -> dict[str, Any]:
        """An unsigned ``revealUpdate`` estimated against the state after ``opening``."""
        return self.client.prepare_reveal_update(hospital, *args, fees=opening.fees,
                                                 block=opening.block)

    def send(self, raw: bytes, operation: str) -> int:
        """Relay a hospital's signed transaction; returns the gas it used."""
        return int(self.client.send_raw(raw, operation).gas_used)

    def report_audit(self, round_: int, hospital: str, model_hash: bytes, confidence: int,
                     ece: int) -> int:
        """``reportAudit`` (the coordinator is the auditor); returns the gas."""
        return int(self.client.report_audit(round_, hospital, model_hash, confidence,
                                            ece).gas_used)

    def close_round(self) -> int:
        """``closeRound`` (a round nobody revealed in); returns the gas."""
        return int(self.client.close_round().gas_used)

    def prepare_withdraw(self, hospital: str) -> dict[str, Any]:
        """An unsigned ``withdraw`` for ``hospital``."""
        return self.client.prepare_withdraw(hospital)

    # ------------------------------------------------------------------ views
    def settlement(self, round_: int, hospital: str) -> RoundSettlement:
        """``getRoundSettlement``."""
        return self.client.round_settlement(round_, hospital)

    def account(self, hospital: str) -> HospitalAccount:
        """``getHospitalAccount``."""
        return self.client.hospital_account(hospital)

    def reserve(self) -> int:
        """``rewardReserve``."""
        return self.client.reward_reserve()
