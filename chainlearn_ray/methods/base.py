"""The verbs every method shares (Ours and the baselines alike), in the spirit of Flower's Strategy.

A run is a set-up (round 0: the phases of :meth:`FederatedMethod.phases_of` ``(0)``, none for
most methods) and rounds ``1..n``, each split into *phases*. For each phase the server side
calls :meth:`~FederatedMethod.configure_round` (what every client receives, and its size in
bytes); each client runs :meth:`~FederatedMethod.client_step` on its own model and data; the
server :meth:`~FederatedMethod.review`\\ s each result as it arrives (and may ask that client a
follow-up), :meth:`~FederatedMethod.accept`\\ s the final results in the order the clients
started, and :meth:`~FederatedMethod.aggregate`\\ s them. After the last phase the method's
predictor is scored (:meth:`~FederatedMethod.configure_evaluate`, client-side
:meth:`~FederatedMethod.client_evaluate`, :meth:`~FederatedMethod.evaluate`), and
:meth:`~FederatedMethod.summary` closes the run. The one driver that calls these verbs is
:class:`chainlearn_ray.runtime.driver.Driver`; everything crossing between the two sides is
plain data (:mod:`chainlearn_ray.methods.messages`).
"""

from __future__ import annotations

import copy
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from chainlearn_ray.errors import ConfigError, HospitalFailure
from chainlearn_ray.methods.comm import SERVE, CommBytes, comm_rows
from chainlearn_ray.methods.evaluation import HEADLINE, headline_metrics
from chainlearn_ray.methods.messages import (
    EVALUATE,
    Client,
    ClientResult,
    RoundConfig,
    TrainSettings,
)
from chainlearn_ray.methods.names import result_row
from chainlearn_ray.protocol.ensemble import weighted_ensemble
from chainlearn_ray.protocol.rounds import ATTENDED, HospitalRound, RoundOutcome
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.results.rows import RunKey
from chainlearn_ray.results.schema import ALL, DP_DELTA, DP_EPSILON, ENSEMBLE

if TYPE_CHECKING:  # torch loads where models are trained, not in the coordinator or driver
    from torch import Tensor

logger = logging.getLogger(__name__)

__all__ = ["Client", "ClientResult", "FederatedMethod", "RoundConfig", "TrainSettings"]


class FederatedMethod(ABC):
    """Base of every method: its verbs, server state and traffic bookkeeping."""

    #: Result method name.
    name: ClassVar[str] = ""
    #: Phases of one round, in order.
    phases: ClassVar[tuple[str, ...]] = ("fit",)
    #: Whether clients exchange anything (Centralized does not).
    communicates: ClassVar[bool] = True
    #: Whether :meth:`initialize` needs the initial global state of a freshly built model.
    needs_initial_state: ClassVar[bool] = False
    #: Whether the final predictor is server state (FedAvg's global model) rather than the
    #: participants' own models (FedMD's ensemble, Centralized's pooled model).
    server_predicts: ClassVar[bool] = False

    def __init__(self) -> None:
        self._comm: dict[tuple[int, str], list[int]] = {}
        self._tiers: dict[str, str] = {}
        self._sent: dict[tuple[int, str], int] = {}
        self._labels: np.ndarray | None = None
        self._n_classes = 0
        #: (round, client) -> (tier, ε spent so far, δ) of clients training with DP
        self._privacy: dict[tuple[int, str], tuple[str, float, float]] = {}
        #: ``(N, C)`` test probabilities of the predictor after the last evaluated round.
        self.test_probs: np.ndarray | None = None

    # ------------------------------------------------------------------ set-up
    def schedule(self, rounds: int, epochs: int) -> tuple[int, int]:
        """``(rounds, epochs per round)`` actually run for a budget of ``rounds × epochs``."""
        if rounds < 1 or epochs < 0:
            raise ConfigError(f"need rounds >= 1 and epochs >= 0, got {rounds}, {epochs}")
        return rounds, epochs

    def arch_for(self, tier: Tier, arch_by_tier: Mapping[str, str]) -> str:
        """Architecture a client of ``tier`` trains (default: its tier's model family)."""
        try:
            return arch_by_tier[tier.label]
        except KeyError:
            raise ConfigError(f"no architecture configured for tier {tier.label}") from None

    def participants(self, clients: Sequence[Client]) -> list[Client]:
        """Who trains (default: every hospital as it is)."""
        return list(clients)

    def initialize(self, initial_state: Mapping[str, Tensor] | None) -> None:  # noqa: B027
        """Server set-up before round 1 (FedAvg: the initial global state). Default: nothing."""

    def bind_test(self, labels: np.ndarray, n_classes: int) -> None:
        """The test labels and class count the predictor is scored against."""
        self._labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self._n_classes = int(n_classes)

    def phases_of(self, round_: int) -> tuple[str, ...]:
        """Phases of ``round_``; round 0 is the set-up before the first round (default: none)."""
        return self.phases if round_ > 0 else ()

    def attending(self, round_: int, clients: Sequence[str]) -> list[str]:
        """Who takes part in ``round_`` (default: every client)."""
        return list(clients)

    # ------------------------------------------------------------------ server verbs
    def configure_round(self, round_: int, phase: str) -> RoundConfig:
        """What every client receives in ``phase`` of ``round_`` (and its size in bytes)."""
        self._check_phase(round_, phase)
        config = self._configure(round_, phase)
        self._sent[(round_, phase)] = config.bytes_down
        return config

    @abstractmethod
    def _configure(self, round_: int, phase: str) -> RoundConfig:
        """Method-specific part of :meth:`configure_round`."""

    def configure_ahead(self, round_: int) -> RoundConfig | None:
        """The first phase's configuration of ``round_`` when it does not depend on the rounds
        before it (clients may then start it while the previous round ends); ``None``
        (default): it does."""
        return None

    def review(self, result: ClientResult) -> RoundConfig | None:
        """Look at one client's result as soon as it arrives (in any order); return a follow-up
        request to the same client, or ``None`` when this result is its last of the phase.

        Raising :class:`HospitalFailure` drops the client from the round. Default: ``None``.
        """
        return None

    def accept(self, result: ClientResult) -> None:  # noqa: B027
        """Take a client's last result of the phase; called in the order the clients started,
        whatever order they finished in. Raising :class:`HospitalFailure` drops the client.
        Default: nothing (:meth:`aggregate` receives every result)."""

    def dropped(self, round_: int, client: str, status: str, reason: str) -> None:
        """A client failed (``status``: failed or timed out) and leaves the round.

        Default: the run cannot go on without it (:class:`HospitalFailure`).
        """
        raise HospitalFailure(f"{self.name}: {client} {status} in round {round_} ({reason}); a "
                              "restarted hospital process loses its baseline client: rerun "
                              f"{self.name}")

    def aggregate(self, round_: int, phase: str, results: Sequence[ClientResult]) -> None:
        """Server side of one phase: fold the clients' results into the server state.

        Also books each returning client's traffic: the result's ``bytes_up`` and the phase's
        configuration ``bytes_down``.
        """
        self._check_phase(round_, phase)
        down = self._sent.get((round_, phase), 0)
        for r in results:
            entry = self._comm.setdefault((round_, r.hospital_id), [0, 0])
            entry[0] += int(r.bytes_up)
            entry[1] += int(down)
            self._tiers[r.hospital_id] = r.tier
            if r.stats is not None and r.stats.epsilon is not None:
                self._privacy[(round_, r.hospital_id)] = (r.tier, float(r.stats.epsilon),
                                                          float(r.stats.delta or 0.0))
        self._aggregate(round_, phase, results)

    @abstractmethod
    def _aggregate(self, round_: int, phase: str, results: Sequence[ClientResult]) -> None:
        """Method-specific part of :meth:`aggregate`."""

    def configure_evaluate(self, round_: int, clients: Sequence[str]) -> dict[str, RoundConfig]:
        """Which clients score the predictor after ``round_``, and what each receives.

        Default: every participant scores its own model; a method whose predictor is server
        state (:attr:`server_predicts`) sends that state to its first participant.
        """
        if not clients:
            raise ConfigError(f"{self.name} has no participants to predict with")
        if self.server_predicts:
            return {clients[0]: RoundConfig(round_, EVALUATE, self._predictor_state())}
        return dict.fromkeys(clients, RoundConfig(round_, EVALUATE))

    def _predictor_state(self) -> Mapping[str, Tensor]:
        """The server-side predictor's state (methods with :attr:`server_predicts`)."""
        raise ConfigError(f"{self.name} predicts with its participants' models")

    def evaluate(self, round_: int, results: Sequence[ClientResult]) -> RoundOutcome:
        """The predictor's headline metrics on the test split after ``round_``, from the
        scoring clients' probabilities (in participant order)."""
        if self._labels is None:
            raise ConfigError(f"{self.name}: call bind_test() before evaluating")
        probs = [np.asarray(r.payload) for r in results]
        self.test_probs = probs[0] if self.server_predicts else self.predict_from_members(probs)
        metrics = headline_metrics(self.test_probs, self._labels, self._n_classes)
        logger.info("%s round %d: accuracy %.3f", self.name, round_, metrics["accuracy"])
        return RoundOutcome(round_, [HospitalRound(r.hospital_id, r.tier, ATTENDED)
                                     for r in results], len(results), metrics)

    def predict_from_members(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        """The final predictor from each participant's own ``(N, C)`` probabilities (in
        participant order). Default: the equal-weight ensemble."""
        if self.server_predicts:
            raise ConfigError(f"{self.name} predicts with its server state")
        if not probs:
            raise ConfigError(f"{self.name} has no participants to predict with")
        return weighted_ensemble(probs, [1] * len(probs))

    # ------------------------------------------------------------------ client verbs
    @abstractmethod
    def client_step(self, client: Any, config: RoundConfig,
                    settings: TrainSettings) -> ClientResult:
        """Client side of one phase: runs on the client's own model and data."""

    def client_evaluate(self, client: Client, config: RoundConfig, settings: TrainSettings,
                        x_test: Tensor) -> ClientResult:
        """Test probabilities of the client's model, or of the state in ``config.payload``
        loaded into a copy of it (a server-side global model)."""
        from chainlearn_ray.learning.training import predict_proba

        model = client.require_model()
        if config.payload is not None:
            model = copy.deepcopy(model)
            model.load_state_dict(config.payload)
        probs = predict_proba(model, x_test, device=settings.device)
        return ClientResult(client.hospital_id, client.tier.label, config.round, config.phase,
                            client.n_samples, probs)

    # ------------------------------------------------------------------ results
    def comm(self, round_: int, hospital_id: str) -> CommBytes:
        """Traffic booked for one hospital in one round."""
        up, down = self._comm.get((round_, hospital_id), (0, 0))
        return CommBytes(up, down)

    def setup_rows(self, key: RunKey, rounds: int, epochs: int,
                   facts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Round-0 rows: the training budget and each participant's shard and model.

        ``facts``: per participant ``client_id``, ``tier``, ``n_samples`` and ``model_params``.
        """
        rows = [result_row(key, self.name, 0, ALL, "", "budget_epochs", rounds * epochs),
                result_row(key, self.name, 0, ALL, "", "epochs_per_round", epochs)]
        for f in facts:
            hid, tier = str(f["client_id"]), str(f["tier"])
            rows.append(result_row(key, self.name, 0, hid, tier, "shard_size", f["n_samples"]))
            rows.append(result_row(key, self.name, 0, hid, tier, "model_params",
                                   f["model_params"]))
        return rows

    def round_rows(self, key: RunKey, outcome: RoundOutcome) -> list[dict[str, Any]]:
        """Tidy rows of one round: the predictor's headline metrics, and the privacy each
        client training with DP has spent so far (``dp_epsilon``, ``dp_delta``)."""
        rows = [result_row(key, self.name, outcome.round, ENSEMBLE, "", m, outcome.ensemble[m])
                for m in HEADLINE]
        for (round_, hid), (tier, eps, delta) in sorted(self._privacy.items()):
            if round_ == outcome.round:
                rows.append(result_row(key, self.name, round_, hid, tier, DP_EPSILON, eps))
                rows.append(result_row(key, self.name, round_, hid, tier, DP_DELTA, delta))
        return rows

    def summary(self, key: RunKey) -> list[dict[str, Any]]:
        """Closing rows: ``comm_bytes_up`` / ``comm_bytes_down`` per hospital per round."""
        if not self.communicates:
            return []
        rows: list[dict[str, Any]] = []
        for (round_, hid), (up, down) in sorted(self._comm.items()):
            rows.extend(comm_rows(key, self.name, round_, hid, self._tiers.get(hid, ""),
                                  CommBytes(up, down)))
        if self._comm:  # one model answers where it is held: nothing crosses the network
            last = max(round_ for round_, _ in self._comm)
            rows.append(result_row(key, self.name, last, ALL, "", SERVE, 0))
        return rows

    def _check_phase(self, round_: int, phase: str) -> None:
        phases = self.phases_of(round_)
        if phase not in phases:
            raise ConfigError(f"{self.name} has phases {phases} in round {round_}, not {phase!r}")
