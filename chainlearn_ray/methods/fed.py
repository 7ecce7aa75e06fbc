"""The shared verbs of the baseline methods (FedAvg, FedProx, FedMD, Centralized), Flower-style.

A method splits a round into one or more *phases*. For each phase the server side calls
:meth:`FederatedMethod.configure_round` (what every client receives, and its size in bytes), each
client runs :meth:`FederatedMethod.client_step` on its own model and data, and the server calls
:meth:`FederatedMethod.aggregate` with the results. Everything that crosses between the two sides
is plain data (state dicts, numpy arrays, ints), so the same objects run in-process
(:mod:`chainlearn_ray.methods.local_driver`) or with clients inside Ray actors.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from torch import Tensor, nn

from chainlearn_ray.errors import ConfigError, HospitalFailure
from chainlearn_ray.hospital.spec import hospital_seed
from chainlearn_ray.learning.hardware import Throttle
from chainlearn_ray.learning.training import TrainStats
from chainlearn_ray.methods.comm import CommBytes, comm_rows
from chainlearn_ray.protocol.ensemble import weighted_ensemble
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.results.rows import RunKey

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """The shared local-training budget and optimiser of every method.

    Attributes
    ----------
    epochs:
        Local epochs per round (the reference: 3 per round, 5 rounds).
    batch_size, lr:
        Mini-batch size and Adam learning rate (reference: 32, 1e-3; fresh Adam every call).
    seed:
        Run seed; each client's per-round seed is derived from it.
    device:
        torch device of the clients' training.
    threads:
        torch intra-op threads of an in-process run (``None``: leave the process setting);
        one thread per simulated hospital, as in the Ray runtime.
    """

    epochs: int
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ConfigError(f"need epochs >= 0, batch_size >= 1 and lr > 0; got "
                              f"{self.epochs}, {self.batch_size}, {self.lr}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 or None, got {self.threads}")

    def client_seed(self, index: int, round_: int, salt: int = 0) -> int:
        """Seed of client ``index`` in ``round_`` (``salt`` separates steps of one round)."""
        return (hospital_seed(self.seed, index, round_) + salt) % 2**32


@dataclass
class Client:
    """One participant as the client-side step sees it: identity, training tensors, model.

    Attributes
    ----------
    hospital_id, index, tier:
        Identity; ``index`` derives the seeds, ``tier`` selects the architecture (via
        :meth:`FederatedMethod.arch_for`) and labels its result rows.
    x, y:
        Float ``N×C×H×W`` inputs and integer labels of its own training shard.
    model:
        Its network (persistent across rounds); ``None`` until built.
    throttle:
        Its hardware throttle, if any.
    """

    hospital_id: str
    index: int
    tier: Tier
    x: Tensor
    y: Tensor
    model: nn.Module | None = None
    throttle: Throttle | None = None

    @classmethod
    def from_hospital(cls, hospital: Any, model: nn.Module | None = None) -> Client:
        """The client view of a :class:`chainlearn_ray.hospital.site.Hospital` (its tensors, tier,
        throttle and, unless ``model`` is given, its own model)."""
        tier = hospital.tier if hospital.tier is not None else hospital.spec.hardware_tier
        return cls(
            hospital_id=hospital.spec.hospital_id, index=hospital.spec.index, tier=Tier(tier),
            x=hospital.x_train, y=hospital.y_train,
            model=model if model is not None else hospital.model, throttle=hospital.throttle,
        )

    @property
    def n_samples(self) -> int:
        """Training samples (``n_k``)."""
        return int(self.x.shape[0])

    def require_model(self) -> nn.Module:
        """The model, or :class:`HospitalFailure` when it was never built."""
        if self.model is None:
            raise HospitalFailure(f"{self.hospital_id} has no model: build it before training")
        return self.model


@dataclass(frozen=True)
class RoundConfig:
    """What the server sends every client in one phase, and its size on the wire."""

    round: int
    phase: str
    payload: Any = None
    bytes_down: int = 0


@dataclass(frozen=True)
class ClientResult:
    """What one client returns from one phase, and its size on the wire."""

    hospital_id: str
    tier: str
    round: int
    phase: str
    n_samples: int
    payload: Any = None
    bytes_up: int = 0
    stats: TrainStats | None = None


class FederatedMethod(ABC):
    """Base of the baseline methods: server state, shared verbs and traffic bookkeeping."""

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

    # ------------------------------------------------------------------ the verbs
    def configure_round(self, round_: int, phase: str) -> RoundConfig:
        """What every client receives in ``phase`` of ``round_`` (and its size in bytes)."""
        self._check_phase(phase)
        config = self._configure(round_, phase)
        self._sent[(round_, phase)] = config.bytes_down
        return config

    @abstractmethod
    def _configure(self, round_: int, phase: str) -> RoundConfig:
        """Method-specific part of :meth:`configure_round`."""

    @abstractmethod
    def client_step(self, client: Client, config: RoundConfig,
                    settings: TrainSettings) -> ClientResult:
        """Client side of one phase: runs on the client's own model and data."""

    def aggregate(self, round_: int, phase: str, results: Sequence[ClientResult]) -> None:
        """Server side of one phase: fold the clients' results into the server state.

        Also books each returning client's traffic: the result's ``bytes_up`` and the phase's
        configuration ``bytes_down``.
        """
        self._check_phase(phase)
        down = self._sent.get((round_, phase), 0)
        for r in results:
            entry = self._comm.setdefault((round_, r.hospital_id), [0, 0])
            entry[0] += int(r.bytes_up)
            entry[1] += int(down)
            self._tiers[r.hospital_id] = r.tier
        self._aggregate(round_, phase, results)

    @abstractmethod
    def _aggregate(self, round_: int, phase: str, results: Sequence[ClientResult]) -> None:
        """Method-specific part of :meth:`aggregate`."""

    @abstractmethod
    def predict(self, clients: Sequence[Client], x: Tensor, device: str = "cpu") -> np.ndarray:
        """``(N, C)`` probabilities of the method's final predictor on ``x``."""

    def predict_from_members(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        """The final predictor from each participant's own ``(N, C)`` probabilities.

        Drivers whose participant models live elsewhere (Ray actors) call this with the
        members' probabilities, in participant order. Default: the equal-weight ensemble.
        """
        if self.server_predicts:
            raise ConfigError(f"{self.name} predicts with its server state: call predict()")
        if not probs:
            raise ConfigError(f"{self.name} has no participants to predict with")
        return weighted_ensemble(probs, [1] * len(probs))

    # ------------------------------------------------------------------ results
    def comm(self, round_: int, hospital_id: str) -> CommBytes:
        """Traffic booked for one hospital in one round."""
        up, down = self._comm.get((round_, hospital_id), (0, 0))
        return CommBytes(up, down)

    def summary(self, key: RunKey) -> list[dict[str, Any]]:
        """Tidy rows ``comm_bytes_up`` / ``comm_bytes_down`` per hospital per round."""
        if not self.communicates:
            return []
        rows: list[dict[str, Any]] = []
        for (round_, hid), (up, down) in sorted(self._comm.items()):
            rows.extend(comm_rows(key, self.name, round_, hid, self._tiers.get(hid, ""),
                                  CommBytes(up, down)))
        return rows

    def _check_phase(self, phase: str) -> None:
        if phase not in self.phases:
            raise ConfigError(f"{self.name} has phases {self.phases}, not {phase!r}")
