"""FedAvg and FedProx: one architecture for all, clients train from the global state each round."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import ClassVar

from torch import Tensor

from chainlearn_ray.errors import ConfigError, HospitalFailure
from chainlearn_ray.learning.training import train
from chainlearn_ray.methods.aggregation import fedavg_average
from chainlearn_ray.methods.base import FederatedMethod
from chainlearn_ray.methods.comm import state_bytes
from chainlearn_ray.methods.messages import Client, ClientResult, RoundConfig, TrainSettings
from chainlearn_ray.methods.names import FEDAVG, FEDPROX
from chainlearn_ray.protocol.tiers import Tier

logger = logging.getLogger(__name__)


def _detached(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in state.items()}


class FedAvg(FederatedMethod):
    """FedAvg: every hospital trains the Strong tier's architecture (ResNet-50 in the protocol).

    Each round the server sends the global state; each client loads it, trains its local epochs
    with a fresh Adam and returns its full state; the server averages every state entry weighted
    by the clients' sample counts (:func:`~chainlearn_ray.methods.aggregation.fedavg_average`).
    Traffic: down = ``len(state_dict_bytes(global))``, up = ``len(state_dict_bytes(local))``.

    Parameters
    ----------
    arch_tier:
        Tier whose architecture all clients train (Strong).
    """

    name: ClassVar[str] = FEDAVG
    needs_initial_state: ClassVar[bool] = True
    server_predicts: ClassVar[bool] = True

    def __init__(self, arch_tier: Tier | str = Tier.STRONG) -> None:
        super().__init__()
        self.arch_tier = Tier.parse(arch_tier)
        self.global_state: dict[str, Tensor] | None = None

    @property
    def prox_mu(self) -> float:
        """Proximal coefficient μ (0 for FedAvg)."""
        return 0.0

    def arch_for(self, tier: Tier, arch_by_tier: Mapping[str, str]) -> str:
        """The same architecture for every client: that of :attr:`arch_tier`."""
        return super().arch_for(self.arch_tier, arch_by_tier)

    def initialize(self, initial_state: Mapping[str, Tensor] | None) -> None:
        """Set the initial global state (of a model built with the run seed)."""
        if initial_state is None:
            raise ConfigError(f"{self.name} needs an initial global state")
        self.global_state = _detached(initial_state)

    def _configure(self, round_: int, phase: str) -> RoundConfig:
        if self.global_state is None:
            raise ConfigError(f"{self.name}: call initialize() before the first round")
        return RoundConfig(round_, phase, self.global_state, state_bytes(self.global_state))

    def client_step(self, client: Client, config: RoundConfig,
                    settings: TrainSettings) -> ClientResult:
        """Load the global state, train (with the proximal term for FedProx), return the state."""
        model = client.require_model()
        global_state: Mapping[str, Tensor] = config.payload
        model.load_state_dict(global_state)
        stats = train(
            model, client.x, client.y, epochs=settings.epochs, batch_size=settings.batch_size,
            lr=settings.lr, seed=settings.client_seed(client.index, config.round),
            device=settings.device, throttle=client.throttle, privacy=client.privacy,
            prox_mu=self.prox_mu, prox_reference=global_state if self.prox_mu > 0 else None,
        )
        local = _detached(model.state_dict())
        return ClientResult(client.hospital_id, client.tier.label, config.round, config.phase,
                            client.n_samples, local, state_bytes(local), stats)

    def _aggregate(self, round_: int, phase: str, results: Sequence[ClientResult]) -> None:
        if not results:
            raise HospitalFailure(f"{self.name} round {round_}: no client returned a state")
        self.global_state = fedavg_average([r.payload for r in results],
                                           [r.n_samples for r in results])
        logger.debug("%s round %d: averaged %d client states", self.name, round_, len(results))

    def _predictor_state(self) -> Mapping[str, Tensor]:
        """The global model, scored in a copy of the first participant's network."""
        if self.global_state is None:
            raise ConfigError(f"{self.name}: no global model yet")
        return self.global_state


class FedProx(FedAvg):
    """FedProx: FedAvg whose clients add ``(μ/2)·‖w − w_global‖²`` to their loss.

    Parameters
    ----------
    mu:
        Proximal coefficient μ (0.01 in the protocol).
    """

    name: ClassVar[str] = FEDPROX

    def __init__(self, mu: float = 0.01, arch_tier: Tier | str = Tier.STRONG) -> None:
        super().__init__(arch_tier)
        if not mu > 0:
            raise ConfigError(f"FedProx needs mu > 0 (0 is FedAvg), got {mu}")
        self.mu = float(mu)

    @property
    def prox_mu(self) -> float:
        """Proximal coefficient μ."""
        return self.mu
