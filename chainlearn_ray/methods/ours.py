"""Ours: capacity-aware federated ensemble learning with the FLCoordinator contract as server.

Set-up (round 0): each hospital runs its Proof of Capacity and claims a tier; the server checks
the claim against the benchmark record (:func:`~chainlearn_ray.methods.attacks.verify_claim`,
unless PoC is off), the hospital signs its PoC statement for the tier it gets, and the server
registers it on chain. Each round: the round opens on chain; attending hospitals train their own
model and report reliability metrics; the server prepares each report's ``submitUpdate`` (an
:class:`~chainlearn_ray.methods.chain_port.Update`), the hospital signs it, and the server
relays it and reads the hospital's round weight (:mod:`chainlearn_ray.protocol.weights` on
chain); the weighted softmax ensemble (:mod:`chainlearn_ray.protocol.ensemble`) is recorded by
its hash. Ours-Dropout, No PoC and the attacks are this class with other inputs: attendance,
``verify_claims`` and hospital behaviours. The chain is reached only through a
:class:`~chainlearn_ray.methods.chain_port.ChainPort`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from chainlearn_ray.errors import ChainlearnError, ConfigError, HospitalFailure
from chainlearn_ray.hospital.spec import Behaviour
from chainlearn_ray.methods.attacks import ClaimPolicy, settle_claim
from chainlearn_ray.methods.base import FederatedMethod
from chainlearn_ray.methods.chain_port import ChainPort, Update
from chainlearn_ray.methods.comm import array_bytes
from chainlearn_ray.methods.hosting import SiteSetup
from chainlearn_ray.methods.messages import ClientResult, RoundConfig, TrainSettings
from chainlearn_ray.methods.names import OURS, result_row
from chainlearn_ray.methods.ours_round import OursRound
from chainlearn_ray.protocol.rounds import RoundOutcome, draw_attendance, missed_deadline
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.protocol.weights import WeightScore
from chainlearn_ray.results.rows import RunKey, round_rows
from chainlearn_ray.results.schema import ALL

logger = logging.getLogger(__name__)

RESET = "reset"
REGISTER = "register"
SIGN_REGISTRATION = "sign_registration"
TRAIN = "train"
SIGN = "sign"


@dataclass(frozen=True)
class PocSettings:
    """The Proof-of-Capacity benchmark (``warmup`` untimed, then K = ``steps`` timed steps at
    batch B = ``batch_size``) and the tier thresholds; the run config holds their defaults.

    ``reuse``: a hospital reports its previous measurement again when K and B match (a new
    deployment of the same hardware only needs a new signature).
    """

    steps: int
    warmup: int
    batch_size: int
    weak_below: float
    medium_below: float
    reuse: bool = False


class Ours(FederatedMethod):
    """Ours and its variants.

    Parameters
    ----------
    hospitals:
        Every hospital id, in id order.
    epochs:
        Local epochs per round.
    seed:
        Run seed (attendance draws).
    attendance:
        Hospital id -> probability of attending a round (absent: 1); Ours-Dropout's rates.
    deadline:
        Simulated seconds a round's training may take (``None``: no deadline); a later
        hospital is *late* and submits nothing.
    poc:
        The benchmark settings (needed for the set-up).
    verify_claims, claim_policy:
        Check each capacity claim against its benchmark record (PoC on), correcting or refusing
        a claim it does not support; without it every claim is accepted.
    behaviours:
        Hospital id -> behaviour in this variant (absent: honest).
    fresh:
        Reset every hospital first (a variant retraining hospitals that trained before).
    score:
        What each submission's score field holds, and so what the weight rewards: the seed's
        validation confidence, or validation balanced accuracy (Ours-BalAcc). The deployment
        must hold the same (checked on :meth:`connect`).
    """

    name: ClassVar[str] = OURS
    phases: ClassVar[tuple[str, ...]] = (TRAIN,)

    def __init__(self, hospitals: Sequence[str] = (), *, epochs: int = 1, seed: int = 0,
                 attendance: Mapping[str, float] | None = None, deadline: float | None = None,
                 poc: PocSettings | None = None, verify_claims: bool = True,
                 claim_policy: ClaimPolicy = "correct",
                 behaviours: Mapping[str, Behaviour] | None = None, fresh: bool = False,
                 score: WeightScore | str = WeightScore.CONFIDENCE) -> None:
        super().__init__()
        self.hospitals, self.epochs, self.seed = list(hospitals), int(epochs), int(seed)
        self.attendance = dict(attendance or {})
        self.deadline, self.poc = deadline, poc
        self.verify_claims, self.claim_policy = verify_claims, claim_policy
        self.behaviours, self.fresh = dict(behaviours or {}), fresh
        self.score = WeightScore.parse(score)
        self.port: ChainPort | None = None
        self.addresses: dict[str, str] = {}
        self.tiers: dict[str, str] = {}  # hospital -> registered tier
        self.registrations: list[dict[str, Any]] = []
        self.latest: dict[str, Any] = {}  # hospital -> its last submitted RoundReport
        self.calldata: dict[int, dict[str, int]] = {}  # round -> hospital -> signed tx bytes
        self.participants_by_round: dict[int, int] = {}
        self.prediction_bytes: dict[tuple[int, str], int] = {}  # (round, hospital) -> bytes up
        self.query_bytes = 0  # one query image as the models take it, uint8
        self._claims: dict[str, dict[str, Any]] = {}
        self._round: OursRound | None = None

    def connect(self, port: ChainPort) -> None:
        """Reach the chain through ``port`` (on the side that holds the connection)."""
        if port.weight_score != self.score:
            raise ConfigError(f"the deployment's submissions hold {port.weight_score.label} but "
                              f"this method submits {self.score.label}: deploy a contract with "
                              f"chain.weight_score: {self.score.label}")
        self.port = port

    def chain(self) -> ChainPort:
        """The chain port (connected with :meth:`connect`)."""
        if self.port is None:
            raise ConfigError("Ours needs a chain: call connect(port) first")
        return self.port

    def _setup(self) -> SiteSetup:
        """How a hosting process builds this method's client: the hospital itself."""
        return SiteSetup(type(self)())

    # ------------------------------------------------------------------ who and when
    def phases_of(self, round_: int) -> tuple[str, ...]:
        """Set-up: reset (fresh variants), then register; every round: train."""
        if round_ == 0:
            return (RESET, REGISTER) if self.fresh else (REGISTER,)
        return self.phases

    def attending(self, round_: int, clients: Sequence[str]) -> list[str]:
        """Each hospital attends with its probability (seeded per round)."""
        drawn = draw_attendance(self.seed, round_, list(clients), self.attendance)
        return [c for c, yes in drawn.items() if yes]

    # ------------------------------------------------------------------ server verbs
    def _configure(self, round_: int, phase: str) -> RoundConfig:
        if phase == RESET:
            return RoundConfig(0, RESET, dict(self.behaviours), setup=self._setup())
        if phase == REGISTER:
            if self.poc is None:
                raise ConfigError("Ours needs its PoC settings to register hospitals")
            return RoundConfig(0, REGISTER, self.poc, setup=self._setup(), timed=True)
        opening = self.chain().start_round()
        self._round = OursRound(round_, self.hospitals, opening)
        self.calldata[round_] = {}
        return self._train(round_)

    def _train(self, round_: int) -> RoundConfig:
        return RoundConfig(round_, TRAIN, self.epochs, setup=self._setup())

    def configure_ahead(self, round_: int) -> RoundConfig | None:
        """A round's training depends on the hospital and round only: it may start early."""
        return self._train(round_) if round_ > 0 else None

    def review(self, result: ClientResult) -> RoundConfig | None:
        """PoC: check the claim, ask for the PoC statement's signature. Training: late on the
        virtual clock, or prepare the submission and ask the hospital to sign it."""
        h = result.hospital_id
        if result.phase == REGISTER:
            res = dict(result.payload)
            res["claimed_tier"] = res["tier"]
            if self.verify_claims and self.poc is not None:  # what the measurement supports
                res = settle_claim(h, res, self.poc.weak_below, self.poc.medium_below,
                                   self.claim_policy)
            self._claims[h], self.addresses[h] = res, res["address"]
            port = self.chain()
            return RoundConfig(0, SIGN_REGISTRATION, (res["tier"], res["bench_hash"],
                                                      port.chain_id, port.contract),
                               setup=self._setup())
        if result.phase == SIGN:
            self.calldata[result.round][h] = len(result.payload)
            return None
        if result.phase != TRAIN:
            return None
        state = self._live(result.round)
        report = state.reports[h] = result.payload
        self.latest.pop(h, None)
        self.prediction_bytes[(result.round, h)] = array_bytes(report.test_probs)
        self.query_bytes = int(report.extra.get("query_bytes", self.query_bytes))
        if missed_deadline(report.simulated_seconds, self.deadline):
            state.late(h)  # missed the round on the virtual clock
            return None
        score = (report.balanced_accuracy_fixed if self.score == WeightScore.BALANCED_ACCURACY
                 else report.confidence_fixed)
        update = Update(report.model_hash, score, report.ece_fixed,
                        Tier.parse(self.tiers[h]).model_type)
        try:
            tx = self.chain().prepare_update(self.addresses[h], update, state.opening)
        except ChainlearnError as exc:
            raise HospitalFailure(f"prepare: {exc}") from exc
        return RoundConfig(result.round, SIGN, (tx, update), setup=self._setup(), aside=True)

    def accept(self, result: ClientResult) -> None:
        """Register a signed PoC statement, or relay a signed submission and read the weight
        it earned (which depends on that submission only), in start order."""
        h = result.hospital_id
        if result.phase == SIGN_REGISTRATION:
            res = self._claims.pop(h)
            gas = self.chain().register(self.addresses[h], h, Tier.parse(res["tier"]),
                                         res["bench_hash"], bytes(result.payload))
            self.tiers[h] = res["tier"]
            self.registrations.append({
                "hospital_id": h, **{k: v for k, v in res.items() if k != "bench_hash"},
                "bench_hash": "0x" + bytes(res["bench_hash"]).hex(), "gas_register": gas})
        elif result.phase == SIGN:
            port = self.chain()
            try:
                gas = port.submit(bytes(result.payload))
            except ChainlearnError as exc:
                raise HospitalFailure(f"submit: {exc}") from exc
            self._live(result.round).submitted(
                h, gas, port.round_weight(result.round, self.addresses[h]))

    def restore(self, registrations: Sequence[Mapping[str, Any]]) -> None:
        """Take up a run after its set-up from its recorded registrations (a resumed run,
        whose chain already holds them): who is registered under which address and tier."""
        self.registrations = [dict(r) for r in registrations]
        self.addresses = {r["hospital_id"]: r["address"] for r in registrations}
        self.tiers = {r["hospital_id"]: r["tier"] for r in registrations}

    def dropped(self, round_: int, client: str, status: str, reason: str) -> None:
        """A hospital out of a round takes no part in it; none may miss the set-up."""
        if round_ == 0:
            raise HospitalFailure(f"{client} {status} during registration ({reason})")
        self._live(round_).out(client, status, reason)
        logger.warning("%s %s in round %d: %s", client, status, round_, reason)

    def aggregate(self, round_: int, phase: str, results: Sequence[ClientResult]) -> None:
        """After a round's training: the weighted ensemble of the submitted models, recorded
        on chain by its hash."""
        self._check_phase(round_, phase)
        self._aggregate(round_, phase, results)

    def _aggregate(self, round_: int, phase: str, results: Sequence[ClientResult]) -> None:
        if phase != TRAIN:
            return
        state = self._live(round_)
        self.latest.update({h: state.reports[h] for h in state.gas_submit})
        self.participants_by_round[round_] = len(state.gas_submit)
        record = state.ensemble(self._labels, self._n_classes)
        if record is not None:
            state.gas["recordEnsemblePrediction"] = self.chain().record_ensemble(*record)

    def configure_evaluate(self, round_: int, clients: Sequence[str]) -> dict[str, RoundConfig]:
        """Nothing to ask: every report carries its model's test probabilities."""
        return {}

    def evaluate(self, round_: int, results: Sequence[ClientResult]) -> RoundOutcome:
        """Each hospital's and the ensemble's metrics, gas and statuses of the round."""
        state = self._live(round_)
        self._round = None
        return state.outcome(self._labels, self._n_classes, self.tiers)

    # ------------------------------------------------------------------ client verbs
    def client_step(self, client: Any, config: RoundConfig,
                    settings: TrainSettings) -> ClientResult:
        """One request on the hospital (``client``) itself."""
        hospital = client
        h, phase, payload = hospital.spec.hospital_id, config.phase, config.payload
        tier = hospital.tier.label if hospital.tier is not None else ""
        n = int(hospital.y_train.shape[0])
        if phase == RESET:
            out: Any = hospital.reset(payload.get(h))
        elif phase == REGISTER:
            out = {**hospital.run_poc(**asdict(payload)), "address": hospital.address}
        elif phase == SIGN_REGISTRATION:
            out = hospital.sign_registration(*payload)
        elif phase == TRAIN:
            out = hospital.train_round(config.round, int(payload))
            return ClientResult(h, tier, config.round, phase, n, out)
        elif phase == SIGN:
            tx, update = payload
            out = hospital.sign_transaction(tx, update.model_hash, update.confidence, update.ece)
            return ClientResult(h, tier, config.round, phase, n, out, len(out))
        else:
            raise ConfigError(f"Ours has no client step {phase!r}")
        return ClientResult(h, tier, config.round, phase, n, out)

    # ------------------------------------------------------------------ results
    def round_rows(self, key: RunKey, outcome: RoundOutcome) -> list[dict[str, Any]]:
        """Per-hospital metrics and weights, ensemble metrics, gas and times of one round."""
        return round_rows(key, outcome)

    def summary(self, key: RunKey) -> list[dict[str, Any]]:
        """Traffic of every submission: its signed bytes up, the round's weights read down."""
        from chainlearn_ray.methods.comm import (
            SERVE,
            comm_rows,
            ensemble_serve_bytes,
            ours_comm_bytes,
        )

        rows: list[dict[str, Any]] = []
        for round_, lengths in sorted(self.calldata.items()):
            for h, n_bytes in lengths.items():
                rows.extend(comm_rows(key, key.method, round_, h, self.tiers[h], ours_comm_bytes(
                    n_bytes, self.participants_by_round.get(round_, 0),
                    self.prediction_bytes.get((round_, h), 0))))
        if self.calldata:
            last = max(self.calldata)
            members = self.participants_by_round.get(last, 0)
            rows.append(result_row(key, key.method, last, ALL, "", SERVE, ensemble_serve_bytes(
                members, self.query_bytes, self._n_classes)))
        return rows

    def records(self) -> list[dict[str, Any]]:
        """Each registered hospital that submitted: its on-chain tier, last metrics and rounds
        participated (``getHospitalInfo``), with its last model's validation accuracy and test
        probabilities."""
        out = []
        for h in self.tiers:
            rep = self.latest.get(h)
            if rep is None:
                continue
            info = self.chain().hospital_info(self.addresses[h])
            out.append({
                "hospital_id": h, "tier": info.tier.label,
                "confidence_fixed": info.confidence, "ece_fixed": info.ece,
                "rounds_participated": info.rounds_participated,
                "val_accuracy": float(rep.val_accuracy), "test_probs": rep.test_probs,
            })
        return out

    # ------------------------------------------------------------------ helpers
    def _live(self, round_: int) -> OursRound:
        if self._round is None or self._round.round != round_:
            raise ConfigError(f"Ours: round {round_} is not open")
        return self._round
