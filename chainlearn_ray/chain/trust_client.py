"""Trust-mode operations of the contract client: challenges and attested registration, stakes,
commit-reveal, audits, reward pools and the hospital's exit, with typed views of each."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address

from chainlearn_ray.chain.trust import (
    AuditRecord,
    AuditStatus,
    HospitalAccount,
    Phase,
    RoundPhase,
    RoundRewards,
    RoundSettlement,
    TrustConfig,
    trust_config_from_view,
)
from chainlearn_ray.chain.tx import (
    encode_commit_update,
    encode_deposit_stake,
    encode_reveal_update,
    encode_withdraw,
)
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.protocol.tiers import ModelType, Tier

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from chainlearn_ray.chain.backends import ChainConnection
    from chainlearn_ray.chain.records import TxResult

logger = logging.getLogger(__name__)


def _bytes32(what: str, value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise ConfigError(f"{what} must be exactly 32 bytes")
    return bytes(value)


class TrustOperations:
    """Trust-mode methods of :class:`~chainlearn_ray.chain.client.FLCoordinatorClient`.

    Verifier, auditor and owner transactions are signed here with keys the coordinator holds
    (``conn.owner`` unless another account is given); hospital transactions are prepared as
    plain dicts for the hospital to sign (``sign_transaction(tx, key, expected_data=...,
    expected_value=...)``) and relayed with ``send_raw(raw, operation)``. Every method raises
    :class:`~chainlearn_ray.errors.ContractRevertError` with the contract's custom error when
    the contract rejects the call.
    """

    conn: ChainConnection
    address: str
    chain_id: int

    # provided by FLCoordinatorClient
    def _call(self, fn_name: str, *args: Any) -> Any:
        raise NotImplementedError

    def _owner_tx(self, fn_name: str, args: list[Any], value: int = 0) -> TxResult:
        raise NotImplementedError

    def _tx_as(
        self, account: LocalAccount, fn_name: str, args: list[Any], value: int = 0
    ) -> TxResult:
        raise NotImplementedError

    def _prepare(
        self,
        sender_address: str,
        data: bytes,
        value: int,
        fees: Mapping[str, int] | None,
        block: int | None,
    ) -> dict[str, Any]:
        raise NotImplementedError

    # ------------------------------------------------------------------ registration
    def issue_challenge(self, hospital: str, verifier: LocalAccount | None = None) -> TxResult:
        """``issueChallenge``: a fresh PoC challenge for ``hospital`` (verifier transaction,
        signed by ``verifier``, default ``conn.owner``); read it with :meth:`challenge`."""
        account = verifier or self.conn.owner
        return self._tx_as(account, "issueChallenge", [to_checksum_address(hospital)])

    def register_hospital_attested(
        self,
        address: str,
        name: str,
        tier: Tier | str | int,
        bench_hash: bytes,
        throughput_milli: int,
        signature: bytes,
        attestation: bytes,
        stake_wei: int = 0,
    ) -> TxResult:
        """``registerHospitalAttested`` (owner transaction): the hospital's PoC signature over
        the trust statement (``sign_poc(..., challenge=...)``), the verifier's attestation of
        ``throughput_milli`` (``sign_attestation``) and, optionally, a stake the owner pays for
        the hospital (``stake_wei``, the hospital's to withdraw)."""
        args = [to_checksum_address(address), name, int(Tier.parse(tier)),
                _bytes32("benchmark hash", bench_hash), int(throughput_milli), bytes(signature),
                bytes(attestation)]  # fmt: skip
        return self._owner_tx("registerHospitalAttested", args, int(stake_wei))

    def prepare_deposit_stake(
        self,
        hospital_address: str,
        amount_wei: int,
        fees: Mapping[str, int] | None = None,
        block: int | None = None,
    ) -> dict[str, Any]:
        """An unsigned ``depositStake`` transaction sending ``amount_wei`` from the hospital
        (sign it with ``expected_value=amount_wei``)."""
        return self._prepare(hospital_address, encode_deposit_stake(), amount_wei, fees, block)

    # ------------------------------------------------------------------ rounds
    def prepare_commit_update(
        self,
        hospital_address: str,
        commitment: bytes,
        fees: Mapping[str, int] | None = None,
        block: int | None = None,
    ) -> dict[str, Any]:
        """An unsigned ``commitUpdate`` transaction (commitment from ``update_commitment``)."""
        return self._prepare(hospital_address, encode_commit_update(commitment), 0, fees, block)

    def start_reveal_phase(self) -> TxResult:
        """``startRevealPhase``: end the commit phase, open the reveal phase (owner)."""
        return self._owner_tx("startRevealPhase", [])

    def prepare_reveal_update(
        self,
        hospital_address: str,
        model_hash: bytes,
        confidence: int,
        ece: int,
        model_type: ModelType | int,
        salt: bytes,
        fees: Mapping[str, int] | None = None,
        block: int | None = None,
    ) -> dict[str, Any]:
        """An unsigned ``revealUpdate`` transaction opening the hospital's commitment."""
        data = encode_reveal_update(model_hash, confidence, ece, model_type, salt)
        return self._prepare(hospital_address, data, 0, fees, block)

    def report_audit(
        self,
        round_number: int,
        hospital: str,
        model_hash: bytes,
        confidence: int,
        ece: int,
        auditor: LocalAccount | None = None,
    ) -> TxResult:
        """``reportAudit``: the confidence and ECE an auditor measured on the hospital's
        revealed model (signed by ``auditor``, default ``conn.owner``)."""
        args = [int(round_number), to_checksum_address(hospital),
                _bytes32("model hash", model_hash), int(confidence), int(ece)]  # fmt: skip
        return self._tx_as(auditor or self.conn.owner, "reportAudit", args)

    def close_round(self) -> TxResult:
        """``closeRound``: close the current round without an ensemble record (owner), e.g. a
        last round nobody revealed in; its rewards become final."""
        return self._owner_tx("closeRound", [])

    # ------------------------------------------------------------------ rewards and exit
    def fund_reward_pool(self, amount_wei: int) -> TxResult:
        """``fundRewardPool``: add ``amount_wei`` to the reward reserve (owner)."""
        return self._owner_tx("fundRewardPool", [], int(amount_wei))

    def withdraw_reserve(self, to: str, amount_wei: int) -> TxResult:
        """``withdrawReserve``: send ``amount_wei`` of the reserve to ``to`` (owner)."""
        return self._owner_tx("withdrawReserve", [to_checksum_address(to), int(amount_wei)])

    def prepare_withdraw(
        self,
        hospital_address: str,
        fees: Mapping[str, int] | None = None,
        block: int | None = None,
    ) -> dict[str, Any]:
        """An unsigned ``withdraw`` transaction: the hospital leaves with stake + rewards."""
        return self._prepare(hospital_address, encode_withdraw(), 0, fees, block)

    # ------------------------------------------------------------------ views
    def trust_mode(self) -> bool:
        """Whether the deployment runs trust mode (``getTrustConfig().enabled``)."""
        return bool(self._call("getTrustConfig")[0])

    def trust_config(self) -> TrustConfig | None:
        """``getTrustConfig`` (verifier and auditors resolved), ``None`` in seed mode."""
        return trust_config_from_view(self._call("getTrustConfig"))

    def round_phase(self) -> RoundPhase:
        """``getRoundPhase``: the current round, its phase and whether it is closed."""
        round_number, phase, closed = self._call("getRoundPhase")
        return RoundPhase(int(round_number), Phase(phase), bool(closed))

    def challenge(self, hospital: str) -> bytes:
        """``getChallenge``: the challenge pending for ``hospital`` (zeros when none)."""
        return bytes(self._call("getChallenge", to_checksum_address(hospital)))

    def audit(self, round_number: int, hospital: str) -> AuditRecord:
        """``getAudit`` as an :class:`AuditRecord`."""
        status, conf, ece, reports = self._call(
            "getAudit", int(round_number), to_checksum_address(hospital)
        )
        return AuditRecord(AuditStatus(status), int(conf), int(ece), int(reports))

    def round_settlement(self, round_number: int, hospital: str) -> RoundSettlement:
        """``getRoundSettlement``: the hospital's stake, weight, reward and slash in a round."""
        checksum = to_checksum_address(hospital)
        stake, weight, reward, slashed, status, final = self._call(
            "getRoundSettlement", int(round_number), checksum
        )
        return RoundSettlement(int(round_number), checksum, int(stake), int(weight), int(reward),
                               int(slashed), AuditStatus(status), bool(final))  # fmt: skip

    def round_rewards(self, round_number: int) -> RoundRewards:
        """``getRoundRewards``: a round's pool, weights and whether it is final."""
        pool, total, failed, revealed, final, returned = self._call(
            "getRoundRewards", int(round_number)
        )
        return RoundRewards(int(pool), int(total), int(failed), int(revealed), bool(final),
                            bool(returned))  # fmt: skip

    def hospital_account(self, hospital: str) -> HospitalAccount:
        """``getHospitalAccount``: stake, slashes, rewards, withdrawable, exited."""
        stake, slashed, rewards, withdrawable, exited = self._call(
            "getHospitalAccount", to_checksum_address(hospital)
        )
        return HospitalAccount(int(stake), int(slashed), int(rewards), int(withdrawable),
                               bool(exited))  # fmt: skip

    def reward_reserve(self) -> int:
        """``rewardReserve``: wei funded and not yet given to a round."""
        return int(self._call("rewardReserve"))

    def reward_split(
        self, pool_wei: int, weights: Sequence[int], failed: Sequence[bool]
    ) -> tuple[list[int], int]:
        """``calculateRewardSplit``: each submission's reward and the unallocated rest."""
        rewards, unallocated = self._call(
            "calculateRewardSplit", int(pool_wei), [int(w) for w in weights],
            [bool(f) for f in failed],
        )  # fmt: skip
        return [int(r) for r in rewards], int(unallocated)
