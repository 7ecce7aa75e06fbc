"""Ours in trust mode: the same rounds as :class:`~chainlearn_ray.methods.ours.Ours`, made safe
against hospitals that cheat.

Set-up: each hospital runs its PoC (its self-report); the verifier (the coordinator) issues a
fresh on-chain challenge to every hospital, times its answer on the hospital hardware's clock,
checks the answer's digest and recomputes all or a seeded sample of its steps
(:mod:`chainlearn_ray.protocol.verifier`), and registers the hospital with the tier its own
timing supports, its attestation and a stake (``registerHospitalAttested``). The reward reserve
is funded for every round. Each round: train, then commit (``commitUpdate``); the reveal phase
opens and every committed hospital reveals; the auditor scores each revealed model on an audit
split no hospital is given (:mod:`chainlearn_ray.methods.audit`). Optimistic: a claim within
the tolerance stands with no transaction; a deviation is reported (``reportAudit``), and the
contract zeroes that round weight and slashes part of the stake. The
ensemble of the weights that stand is recorded, which settles the round's reward pool. After the
last round every hospital withdraws its stake and rewards. Per-round stake, reward and slash of
every hospital become result rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from chainlearn_ray.errors import ChainlearnError, ConfigError, HospitalFailure
from chainlearn_ray.methods.audit import AuditSplit, deviates, score_model
from chainlearn_ray.methods.messages import ClientResult, RoundConfig, TrainSettings
from chainlearn_ray.methods.names import OURS_TRUST
from chainlearn_ray.methods.ours import REGISTER, SIGN_REGISTRATION, TRAIN, Ours
from chainlearn_ray.methods.trust_contract import TrustContractPort
from chainlearn_ray.methods.trust_rounds import TrustLedger
from chainlearn_ray.protocol.rounds import RoundOutcome, missed_deadline
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.protocol.verifier import check_answer, spot_check_steps, verify_capacity
from chainlearn_ray.results.rows import RunKey

logger = logging.getLogger(__name__)

CHALLENGE = "challenge"
SIGN_COMMIT = "sign_commit"
REVEAL = "reveal"
SIGN_REVEAL = "sign_reveal"
AUDIT = "audit"
WITHDRAW = "withdraw"


class OursTrust(Ours):
    """Ours on a trust-mode deployment (see the module docstring).

    Parameters (beyond :class:`~chainlearn_ray.methods.ours.Ours`')
    ----------
    rounds:
        Rounds of the run (the reward reserve is funded for all; withdrawal after the last).
    stake_wei:
        Stake registered for each hospital (at least the deployment's minimum).
    audit:
        The auditor scores every revealed model (``None``: no audit, every claim stands).
    verifier_timed:
        Tiers from the verifier's timing of a challenged PoC; ``False``: from the hospital's
        self-reported throughput (checked only against its own benchmark hash).
    spot_checks:
        Steps of a challenge answer the verifier recomputes (``None``: all).
    """

    name: ClassVar[str] = OURS_TRUST

    def __init__(self, hospitals: Sequence[str] = (), *, rounds: int = 1, stake_wei: int = 0,
                 audit: AuditSplit | None = None, verifier_timed: bool = True,
                 spot_checks: int | None = None, **ours: Any) -> None:
        super().__init__(hospitals, **ours)
        self.rounds, self.stake_wei, self.audit = int(rounds), int(stake_wei), audit
        self.verifier_timed, self.spot_checks = verifier_timed, spot_checks
        self.ledger = TrustLedger()
        self._challenges: dict[str, bytes] = {}
        self._reports: dict[str, dict[str, Any]] = {}
        self._reveal_opening: Any = None
        self._audit_started = 0.0
        self._committing: dict[str, bytes] = {}

    def trust_port(self) -> TrustContractPort:
        """The chain port, which must be a trust-mode one."""
        port = self.chain()
        if not isinstance(port, TrustContractPort):
            raise ConfigError(f"{self.name} needs a trust-mode deployment: set chain.mode: trust")
        return port

    # ------------------------------------------------------------------ who and when
    def phases_of(self, round_: int) -> tuple[str, ...]:
        """Set-up: (reset,) register, challenge. Rounds: train and commit, reveal, audit (when
        auditing), and withdrawal after the last round."""
        if round_ == 0:
            return (*super().phases_of(0), CHALLENGE)
        phases = (TRAIN, REVEAL, AUDIT) if self.audit is not None else (TRAIN, REVEAL)
        return (*phases, WITHDRAW) if round_ == self.rounds else phases

    # ------------------------------------------------------------------ server verbs
    def _configure(self, round_: int, phase: str) -> RoundConfig:
        port = self.trust_port()
        if phase == CHALLENGE:
            assert self.poc is not None
            self._challenges = {h: port.issue_challenge(self.addresses[h])
                                for h in self.hospitals if h in self.addresses}
            return RoundConfig(0, CHALLENGE, (self._challenges, self.poc.steps,
                                              self.poc.batch_size), setup=self._setup(),
                               timed=True)
        if phase == REVEAL:
            self._reveal_opening = port.start_reveal()
            self._live(round_).gas["startRevealPhase"] = self._reveal_opening.gas
            return RoundConfig(round_, REVEAL, tuple(self.ledger.gas_commit),
                               setup=self._setup())
        if phase == AUDIT:
            self._audit_started = time.perf_counter()
            return RoundConfig(round_, AUDIT, None, setup=self._setup())
        if phase == WITHDRAW:
            txs = {h: port.prepare_withdraw(self.addresses[h]) for h in self.tiers
                   if not port.account(self.addresses[h]).exited}
            return RoundConfig(round_, WITHDRAW, txs, setup=self._setup())
        config = super()._configure(round_, phase)
        if phase == TRAIN:
            self.ledger.open(round_)
        return config

    def configure_ahead(self, round_: int) -> RoundConfig | None:
        """Nothing starts early: a round's phases follow one another on chain."""
        return None

    def review(self, result: ClientResult) -> RoundConfig | None:
        """Check each step's result and ask for the signature it calls for."""
        h, phase, payload = result.hospital_id, result.phase, result.payload
        if phase == REGISTER:
            self._reports[h] = dict(payload)
            self.addresses[h] = payload["address"]
            return None
        if phase == CHALLENGE:
            return self._registration(h, payload)
        if phase == TRAIN:
            return self._commit(result)
        if phase == REVEAL:
            if payload is None:
                return None
            tx = self._guard("reveal", lambda: self.trust_port().prepare_reveal(
                self.addresses[h], payload.args(), self._reveal_opening))
            self.ledger.opened[h] = payload
            return RoundConfig(result.round, SIGN_REVEAL, (tx, payload), setup=self._setup())
        if phase == AUDIT:
            if payload is not None and h in self.ledger.revealed:
                hashed = self.ledger.revealed[h]
                self.ledger.audited[h] = score_model(self._audit_split(), payload, hashed)[:2]
            return None
        if phase in (SIGN_COMMIT, SIGN_REVEAL):
            self.calldata[result.round][h] = self.calldata[result.round].get(h, 0) + len(payload)
        return None

    def _guard(self, what: str, action: Any) -> Any:
        try:
            return action()
        except ChainlearnError as exc:
            raise HospitalFailure(f"{what}: {exc}") from exc

    def _audit_split(self) -> AuditSplit:
        assert self.audit is not None
        return self.audit

    def _registration(self, h: str, answer: Mapping[str, Any]) -> RoundConfig:
        """The verifier's check of a challenge answer, and the tier it supports."""
        assert self.poc is not None
        poc, report, challenge = self.poc, self._reports[h], self._challenges[h]
        claimed = report["tier"]
        if self.verifier_timed:
            from chainlearn_ray.learning.challenge import recompute_steps

            steps = spot_check_steps(challenge, poc.steps, self.spot_checks)
            check_answer(challenge, answer["values"], answer["digest"],
                         recompute_steps(challenge, poc.batch_size, steps))
            cap = verify_capacity(claimed, poc.steps, poc.batch_size,
                                  float(answer["clock_seconds"]), poc.weak_below,
                                  poc.medium_below)
            record = {**report, "throughput": cap.throughput, "tier": cap.tier.label,
                      "measured_tier": cap.measured.label, "bench_hash": cap.bench_hash}
        else:  # the hospital's own figure, checked only against its own benchmark hash
            from chainlearn_ray.methods.attacks import settle_claim

            record = settle_claim(h, report, poc.weak_below, poc.medium_below,
                                  self.claim_policy)
        record["claimed_tier"] = claimed
        self._claims[h] = record
        port = self.trust_port()
        return RoundConfig(0, SIGN_REGISTRATION, (record["tier"], record["bench_hash"],
                                                  port.chain_id, port.contract, challenge),
                           setup=self._setup())

    def _commit(self, result: ClientResult) -> RoundConfig | None:
        h = result.hospital_id
        report, commitment = result.payload
        state = self._live(result.round)
        state.reports[h] = report
        self.latest.pop(h, None)
        if commitment is None:  # the hospital commits to nothing of its own
            return None
        if missed_deadline(report.simulated_seconds, self.deadline):
            state.late(h)
            return None
        tx = self._guard("commit", lambda: self.trust_port().prepare_commit(
            self.addresses[h], commitment, state.opening))
        self._committing[h] = commitment
        return RoundConfig(result.round, SIGN_COMMIT, (tx, commitment), setup=self._setup(),
                           aside=True)

    def accept(self, result: ClientResult) -> None:
        """Register, relay commits and reveals, report audits and relay withdrawals, in start
        order."""
        h, phase = result.hospital_id, result.phase
        port = self.trust_port()
        if phase == SIGN_REGISTRATION:
            record = self._claims.pop(h)
            throughput = float(record["throughput"])
            from chainlearn_ray.chain.statements import milli_samples

            gas = port.register_attested(
                self.addresses[h], h, Tier.parse(record["tier"]), record["bench_hash"],
                milli_samples(throughput), bytes(result.payload), self._challenges[h],
                self.stake_wei)
            self.tiers[h] = record["tier"]
            self.registrations.append({
                "hospital_id": h, **{k: v for k, v in record.items() if k != "bench_hash"},
                "bench_hash": "0x" + bytes(record["bench_hash"]).hex(), "gas_register": gas})
        elif phase == SIGN_COMMIT:
            self.ledger.gas_commit[h] = self._guard(
                "commit", lambda: port.send(bytes(result.payload), "commitUpdate"))
            self.ledger.commitments[h] = self._committing.pop(h)
        elif phase == SIGN_REVEAL:
            gas = self._guard("reveal", lambda: port.send(bytes(result.payload), "revealUpdate"))
            self.ledger.revealed[h] = self.ledger.opened[h].model_hash
            self._live(result.round).submitted(
                h, self.ledger.gas_commit.get(h, 0) + gas,
                port.round_weight(result.round, self.addresses[h]))
        elif phase == AUDIT and h in self.ledger.audited:
            # optimistic: a claim within the tolerance stands without a transaction; only a
            # deviation is reported, and the contract then zeroes the weight and slashes
            opened, audited = self.ledger.opened[h], self.ledger.audited[h]
            if deviates((opened.confidence, opened.ece), audited, port.trust.audit_tolerance):
                self.ledger.gas_audit[h] = port.report_audit(
                    result.round, self.addresses[h], self.ledger.revealed[h], *audited)
                self._live(result.round).weights[h] = port.round_weight(result.round,
                                                                        self.addresses[h])
        elif phase == WITHDRAW and result.payload:
            address = self.addresses[h]
            self.ledger.withdrawn[h] = port.account(address).withdrawable_wei
            port.send(bytes(result.payload), "withdraw")

    def _aggregate(self, round_: int, phase: str, results: Sequence[ClientResult]) -> None:
        """After the round's last chain phase: the ensemble of the weights that stand, recorded
        (which settles the reward pool), then every hospital's settlement."""
        closing = AUDIT if self.audit is not None else REVEAL
        if phase == CHALLENGE:
            port = self.trust_port()
            self.ledger.gas_fund = port.fund_rewards(port.trust.reward_per_round_wei
                                                     * self.rounds)
            return
        if phase != closing:
            return
        if phase == AUDIT:
            self.ledger.audit_seconds[round_] = time.perf_counter() - self._audit_started
        port, state = self.trust_port(), self._live(round_)
        self.latest.update({h: state.reports[h] for h in state.gas_submit})
        self.participants_by_round[round_] = len(state.gas_submit)
        record = state.ensemble(self._labels, self._n_classes)
        if record is not None:
            state.gas["recordEnsemblePrediction"] = port.record_ensemble(*record)
        else:
            state.gas["closeRound"] = port.close_round()
        self.ledger.settle(round_, port, {h: self.addresses[h] for h in self.tiers})

    def evaluate(self, round_: int, results: Sequence[ClientResult]) -> RoundOutcome:
        """Ours' outcome; the audit gas joins the round's gas."""
        if self.ledger.gas_audit:
            self._live(round_).gas["reportAudit"] = sum(self.ledger.gas_audit.values())
        return super().evaluate(round_, results)

    # ------------------------------------------------------------------ client verbs
    def client_step(self, client: Any, config: RoundConfig,
                    settings: TrainSettings) -> ClientResult:
        """One trust-mode request on the hospital itself."""
        from chainlearn_ray.hospital import trust_steps

        hospital, phase, payload = client, config.phase, config.payload
        h = hospital.spec.hospital_id
        tier = hospital.tier.label if hospital.tier is not None else ""
        n = int(hospital.y_train.shape[0])
        out: Any
        if phase == CHALLENGE:
            challenges, steps, batch = payload
            out = trust_steps.answer_challenge(hospital, challenges[h], steps, batch)
        elif phase == SIGN_REGISTRATION:
            out = hospital.sign_registration(*payload)
        elif phase == TRAIN:
            report = hospital.train_round(config.round, int(payload))
            if hospital.behaviour.copies is not None:  # a free-rider commits nothing of its own
                hospital.openings = {}
                return ClientResult(h, tier, config.round, phase, n, (report, None))
            opening = trust_steps.opening_for(hospital, report)
            hospital.openings = {config.round: opening}
            return ClientResult(h, tier, config.round, phase, n, (report, opening.commitment))
        elif phase == SIGN_COMMIT:
            out = trust_steps.sign_commit(hospital, *payload)
            return ClientResult(h, tier, config.round, phase, n, out, len(out))
        elif phase == REVEAL:  # only a hospital whose commitment is on chain reveals
            out = hospital.openings.get(config.round) if h in payload else None
            out = out if isinstance(out, trust_steps.Opening) else None
        elif phase == SIGN_REVEAL:
            out = trust_steps.sign_reveal(hospital, *payload)
            return ClientResult(h, tier, config.round, phase, n, out, len(out))
        elif phase == AUDIT:
            out = trust_steps.hand_model(hospital) if config.round in hospital.openings else None
        elif phase == WITHDRAW:
            tx = payload.get(h)
            out = trust_steps.sign_withdraw(hospital, tx) if tx is not None else b""
        else:
            return super().client_step(client, config, settings)
        return ClientResult(h, tier, config.round, phase, n, out)

    # ------------------------------------------------------------------ results
    def summary(self, key: RunKey) -> list[dict[str, Any]]:
        """Ours' traffic rows, each hospital's stake, reward and slash of every round, and what
        each hospital withdrew after the last."""
        settled = [row for r in sorted(self.ledger.settled)
                   for row in self.ledger.rows(key, r, self.tiers)]
        return [*super().summary(key), *settled, *self.ledger.summary_rows(key, self.tiers)]
