"""Typed client of the FLCoordinator contract: owner transactions, relayed hospital txs, reads."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.contract import Contract

from chainlearn_ray.chain.artifact import ContractArtifact, load_artifact
from chainlearn_ray.chain.backends import ChainConnection
from chainlearn_ray.chain.records import EnsembleRecord, HospitalInfo, RoundSubmission, TxResult
from chainlearn_ray.chain.reverts import RevertDecoder
from chainlearn_ray.chain.trust import SEED_CONFIG_ABI, TrustConfig
from chainlearn_ray.chain.trust_client import TrustOperations
from chainlearn_ray.chain.tx import encode_submit_update, recover_sender
from chainlearn_ray.errors import ChainError, ConfigError, ContractRevertError
from chainlearn_ray.protocol.tiers import ModelType, Tier
from chainlearn_ray.protocol.weights import WeightScore

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _gas_limit(estimate: int) -> int:
    """Gas limit from an estimate, with headroom for state that changes before mining."""
    return estimate + max(estimate // 4, 25_000)


class FLCoordinatorClient(TrustOperations):
    """The FLCoordinator contract at ``address`` on ``conn``.

    Owner transactions are signed with ``conn.owner``; hospital transactions are prepared here
    as plain dicts, signed by the hospital (:func:`chainlearn_ray.chain.tx.sign_transaction`)
    and relayed with :meth:`send_raw`. Every mined transaction is appended to
    :attr:`receipts`. The trust-mode operations come from
    :class:`~chainlearn_ray.chain.trust_client.TrustOperations`.
    """

    def __init__(
        self, conn: ChainConnection, address: str, artifact: ContractArtifact | None = None
    ) -> None:
        self.conn = conn
        self.artifact = artifact or load_artifact()
        self.address = to_checksum_address(address)
        self.chain_id = conn.chain_id
        self.contract: Contract = conn.w3.eth.contract(
            address=self.address, abi=list(self.artifact.abi)
        )
        self.receipts: list[TxResult] = []
        self._reverts = RevertDecoder(self.artifact.abi)

    # ------------------------------------------------------------------ construction
    @classmethod
    def deploy(
        cls,
        conn: ChainConnection,
        artifact: ContractArtifact | None = None,
        trust: TrustConfig | None = None,
        score: WeightScore | str = WeightScore.CONFIDENCE,
    ) -> FLCoordinatorClient:
        """Deploy a new FLCoordinator owned by ``conn.owner`` and return its client.

        ``trust`` selects trust mode with its parameters; ``None`` (the default) deploys the
        seed protocol. ``score`` is what every submission's score field holds (the seed's
        confidence, or validation balanced accuracy). Neither can change afterwards.
        """
        art = artifact or load_artifact()
        factory = conn.w3.eth.contract(abi=list(art.abi), bytecode=art.bytecode)
        config = trust.to_abi() if trust is not None else SEED_CONFIG_ABI
        data = factory.constructor(config, int(WeightScore.parse(score))).data_in_transaction
        result, receipt = _send_signed(conn, conn.owner, None, data, "deploy", None)
        address = receipt.get("contractAddress")
        if not address:
            raise ChainError("contract deployment produced no contract address")
        client = cls(conn, address, art)
        client.receipts.append(result)
        logger.info("deployed FLCoordinator at %s (gas %d)", client.address, result.gas_used)
        return client

    @classmethod
    def attach(
        cls, conn: ChainConnection, address: str, artifact: ContractArtifact | None = None
    ) -> FLCoordinatorClient:
        """Client of an FLCoordinator already deployed at ``address`` (its code is checked)."""
        code = conn.w3.eth.get_code(to_checksum_address(address))
        art = artifact or load_artifact()
        if not art.matches_deployed(bytes(code)):
            raise ChainError(
                f"the code at {address} is not this FLCoordinator build: deploy a new one, or "
                "use the artifact it was deployed from"
            )
        return cls(conn, address, art)

    # ------------------------------------------------------------------ owner transactions
    def register_hospital(
        self, address: str, name: str, tier: Tier | str | int, bench_hash: bytes, signature: bytes
    ) -> TxResult:
        """Register a hospital with its signed Proof of Capacity (owner transaction)."""
        if len(bench_hash) != 32:
            raise ConfigError("benchmark hash must be exactly 32 bytes")
        args = [to_checksum_address(address), name, int(Tier.parse(tier)), bench_hash, signature]
        return self._owner_tx("registerHospital", args)

    def start_round(self) -> TxResult:
        """Open the next round (owner transaction)."""
        return self._owner_tx("startNewRound", [])

    def record_ensemble(self, prediction_hash: bytes, participant_count: int) -> TxResult:
        """Record the round's ensemble prediction hash and close the round (owner transaction)."""
        if len(prediction_hash) != 32:
            raise ConfigError("prediction hash must be exactly 32 bytes")
        return self._owner_tx("recordEnsemblePrediction", [prediction_hash, int(participant_count)])

    def transfer_ownership(self, new_owner: str) -> TxResult:
        """Offer ownership to ``new_owner`` (owner transaction); it moves on
        :meth:`accept_ownership` (``Ownable2Step``)."""
        return self._owner_tx("transferOwnership", [to_checksum_address(new_owner)])

    def accept_ownership(self) -> TxResult:
        """Accept a pending ownership transfer (sent by ``conn.owner``, the pending owner)."""
        return self._owner_tx("acceptOwnership", [])

    def _owner_tx(self, fn_name: str, args: list[Any], value: int = 0) -> TxResult:
        return self._tx_as(self.conn.owner, fn_name, args, value)

    def _tx_as(
        self, account: LocalAccount, fn_name: str, args: list[Any], value: int = 0
    ) -> TxResult:
        """Send ``fn_name(args)`` signed by a key the coordinator holds (owner, verifier,
        auditor) and wait until it is mined."""
        data = self.contract.encode_abi(fn_name, args)
        result, _ = _send_signed(
            self.conn, account, self.address, data, fn_name, self._reverts, value
        )
        self.receipts.append(result)
        return result

    # ------------------------------------------------------------------ hospital transactions
    def prepare_submit_update(
        self,
        hospital_address: str,
        model_hash: bytes,
        confidence: int,
        ece: int,
        model_type: ModelType | int,
        fees: Mapping[str, int] | None = None,
        block: int | None = None,
    ) -> dict[str, Any]:
        """An unsigned ``submitUpdate`` transaction for the hospital to sign itself.

        The gas is estimated against the current state (or the state after block ``block``),
        so a submission the contract would reject (not registered, no open round, duplicate,
        wrong model type, ...) raises :class:`ContractRevertError` here, before anything is
        signed. ``fees`` fixes the EIP-1559 fee fields (default: the connection's current
        ones).

        Returns
        -------
        dict
            Plain data: ``to``, ``data`` (hex), ``value``, ``nonce``, ``gas``, ``chainId``,
            ``type`` and EIP-1559 fee fields.
        """
        data = encode_submit_update(model_hash, confidence, ece, model_type)
        return self._prepare(hospital_address, data, 0, fees, block)

    def _prepare(
        self,
        sender_address: str,
        data: bytes,
        value: int,
        fees: Mapping[str, int] | None,
        block: int | None,
    ) -> dict[str, Any]:
        """An unsigned transaction from ``sender_address`` to the contract, its gas estimated
        (a call the contract rejects raises :class:`ContractRevertError`)."""
        sender = to_checksum_address(sender_address)
        call = {"from": sender, "to": self.address, "data": data, "value": int(value)}
        at = "latest" if block is None else int(block)
        estimate = self._guard(lambda: int(self.conn.w3.eth.estimate_gas(call, at)))  # type: ignore[arg-type]
        return {
            "to": self.address,
            "data": "0x" + data.hex(),
            "value": int(value),
            "nonce": self.conn.nonces.peek(sender),
            "gas": _gas_limit(estimate),
            "chainId": self.chain_id,
            "type": 2,
            **(fees if fees is not None else self.conn.fee_fields()),
        }

    def send_raw(self, raw: bytes, operation: str = "submitUpdate") -> TxResult:
        """Relay a transaction signed by a hospital and wait until it is mined."""
        return self.send_raw_many([raw], operation)[0]

    def send_raw_many(
        self, raws: Sequence[bytes], operation: str = "submitUpdate"
    ) -> list[TxResult]:
        """Relay several signed transactions, then wait for all of their receipts."""
        sent = []
        for raw in raws:
            sender, nonce = recover_sender(bytes(raw))
            payload = bytes(raw)
            try:
                tx_hash = self._guard(partial(self.conn.send_raw, payload))
            except ChainError:
                self.conn.nonces.resync(sender)
                raise
            self.conn.nonces.mark_used(sender, nonce)
            sent.append((tx_hash, sender))
        results = []
        for tx_hash, sender in sent:
            receipt = self.conn.wait_for_receipt(tx_hash)
            if receipt["status"] != 1:
                raise self._replay_failure(receipt, sender)
            result = _result(operation, receipt, sender)
            self.receipts.append(result)
            results.append(result)
        return results

    # ------------------------------------------------------------------ reads
    def weight(self, address: str) -> int:
        """``calculateWeight``: weight from the hospital's latest metrics."""
        return int(self._call("calculateWeight", to_checksum_address(address)))

    def round_weight(self, round_number: int, address: str) -> int:
        """``calculateRoundWeight``: the hospital's weight from its submission in a round."""
        checksum = to_checksum_address(address)
        return int(self._call("calculateRoundWeight", int(round_number), checksum))

    def weight_score(self) -> WeightScore:
        """What this deployment's submissions carry in their score (``confidence``) field."""
        return WeightScore(int(self._call("weightScore")))

    def weight_pure(self, tier: Tier | str | int, confidence: int, ece: int, rounds: int) -> int:
        """``calculateWeightPure``: the on-chain formula for arbitrary inputs."""
        return int(
            self._call("calculateWeightPure", int(Tier.parse(tier)), confidence, ece, rounds)
        )

    def hospital_info(self, address: str) -> HospitalInfo:
        """``getHospitalInfo`` as a :class:`HospitalInfo`."""
        name, cap, assigned, conf, ece, registered, poc, rounds = self._call(
            "getHospitalInfo", to_checksum_address(address)
        )
        return HospitalInfo(
            str(name), Tier(cap), ModelType(assigned), int(conf), int(ece), bool(registered),
            bytes(poc), int(rounds),
        )  # fmt: skip

    def ensemble_record(self, round_number: int) -> EnsembleRecord:
        """``getEnsembleRecord`` as an :class:`EnsembleRecord`."""
        pred, count, ts = self._call("getEnsembleRecord", int(round_number))
        return EnsembleRecord(bytes(pred), int(count), int(ts))

    def round_submission(self, round_number: int, address: str) -> RoundSubmission:
        """``getRoundSubmission`` as a :class:`RoundSubmission`."""
        model_hash, conf, ece, ts, kind = self._call(
            "getRoundSubmission", int(round_number), to_checksum_address(address)
        )
        return RoundSubmission(bytes(model_hash), int(conf), int(ece), int(ts), ModelType(kind))

    def current_round(self) -> int:
        """``currentRound`` (0 before the first round)."""
        return int(self._call("currentRound"))

    def hospital_count(self) -> int:
        """``getHospitalCount``."""
        return int(self._call("getHospitalCount"))

    def round_submitter_count(self, round_number: int) -> int:
        """``getRoundSubmitterCount``."""
        return int(self._call("getRoundSubmitterCount", int(round_number)))

    def model_type(self, tier: Tier | str | int) -> ModelType:
        """``getModelType``: the model type assigned to a tier."""
        return ModelType(self._call("getModelType", int(Tier.parse(tier))))

    def owner(self) -> str:
        """``owner()``."""
        return to_checksum_address(self._call("owner"))

    def pending_owner(self) -> str:
        """``pendingOwner()``: the account that may accept ownership (zero address if none)."""
        return to_checksum_address(self._call("pendingOwner"))

    # ------------------------------------------------------------------ helpers
    def _call(self, fn_name: str, *args: Any) -> Any:
        fn = self.contract.get_function_by_name(fn_name)(*args)
        return self._guard(lambda: fn.call())

    def _guard(self, action: Callable[[], T]) -> T:
        """Run a node call, turning a revert into :class:`ContractRevertError`."""
        try:
            return action()
        except ContractRevertError:
            raise
        except Exception as exc:
            decoded = self._reverts.from_exception(exc)
            if decoded is not None:
                raise decoded from exc
            raise ChainError(f"chain call failed: {exc}") from exc

    def _replay_failure(self, receipt: Any, sender: str) -> ContractRevertError:
        """Re-run a failed mined transaction as a call to recover its revert reason."""
        tx = self.conn.w3.eth.get_transaction(receipt["transactionHash"])
        call = {"from": sender, "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
        try:
            self.conn.w3.eth.call(call, receipt["blockNumber"] - 1)  # type: ignore[arg-type]
        except Exception as exc:
            decoded = self._reverts.from_exception(exc)
            if decoded is not None:
                return decoded
        return ContractRevertError(
            "unknown", (), f"transaction {receipt['transactionHash'].hex()} failed on-chain"
        )


def _result(operation: str, receipt: Any, sender: str) -> TxResult:
    return TxResult(
        operation=operation,
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        gas_used=int(receipt["gasUsed"]),
        block_number=int(receipt["blockNumber"]),
        sender=to_checksum_address(sender),
    )


def _send_signed(
    conn: ChainConnection,
    account: LocalAccount,
    to: str | None,
    data: str | bytes,
    operation: str,
    reverts: RevertDecoder | None,
    value: int = 0,
) -> tuple[TxResult, Any]:
    """Estimate, sign with ``account``, send and wait; reverts become ContractRevertError."""
    payload = data if isinstance(data, str) else "0x" + data.hex()
    call: dict[str, Any] = {"from": account.address, "data": payload, "value": int(value)}
    if to is not None:
        call["to"] = to
    try:
        estimate = int(conn.w3.eth.estimate_gas(call))  # type: ignore[arg-type]
    except Exception as exc:
        decoded = reverts.from_exception(exc) if reverts else None
        if decoded is not None:
            raise decoded from exc
        raise ChainError(f"{operation} cannot be sent: {exc}") from exc
    fields = {key: value for key, value in call.items() if key != "from"}
    fields["gas"] = _gas_limit(estimate)
    try:
        tx_hash = conn.send_as(account, fields)
    except Exception as exc:
        decoded = reverts.from_exception(exc) if reverts else None
        if decoded is not None:
            raise decoded from exc
        raise ChainError(f"{operation} was refused by the node: {exc}") from exc
    receipt = conn.wait_for_receipt(tx_hash)
    if receipt["status"] != 1:
        raise ContractRevertError("unknown", (), f"{operation} failed on-chain")
    return _result(operation, receipt, account.address), receipt
