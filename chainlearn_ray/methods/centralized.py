"""Centralized: one Strong-tier model trained on the pooled training data with the whole budget."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import torch

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.learning.training import train
from chainlearn_ray.methods.base import FederatedMethod
from chainlearn_ray.methods.messages import Client, ClientResult, RoundConfig, TrainSettings
from chainlearn_ray.methods.names import CENTRALIZED
from chainlearn_ray.protocol.tiers import Tier

logger = logging.getLogger(__name__)

#: Participant id of the pooled-data trainer.
CENTRAL_ID = "central"


class Centralized(FederatedMethod):
    """The upper reference: all shards pooled, one model, ``rounds × epochs`` epochs in one go.

    The budget of ``rounds`` rounds of ``epochs`` epochs is run as a single round of
    ``rounds · epochs`` epochs with one Adam optimiser (the reference trains it straight through).
    Nothing is communicated.
    """

    name: ClassVar[str] = CENTRALIZED
    communicates: ClassVar[bool] = False

    def __init__(self, arch_tier: Tier | str = Tier.STRONG) -> None:
        super().__init__()
        self.arch_tier = Tier.parse(arch_tier)

    def schedule(self, rounds: int, epochs: int) -> tuple[int, int]:
        """One round carrying the whole budget."""
        rounds, epochs = super().schedule(rounds, epochs)
        return 1, rounds * epochs

    def arch_for(self, tier: Tier, arch_by_tier: Mapping[str, str]) -> str:
        """The Strong tier's architecture."""
        return super().arch_for(self.arch_tier, arch_by_tier)

    def participants(self, clients: Sequence[Client]) -> list[Client]:
        """One participant holding every hospital's shard (in hospital order)."""
        if not clients:
            raise ConfigError("Centralized needs at least one shard to pool")
        return [Client(
            hospital_id=CENTRAL_ID, index=0, tier=self.arch_tier,
            x=torch.cat([c.x for c in clients]), y=torch.cat([c.y for c in clients]),
        )]

    def _configure(self, round_: int, phase: str) -> RoundConfig:
        return RoundConfig(round_, phase)

    def client_step(self, client: Client, config: RoundConfig,
                    settings: TrainSettings) -> ClientResult:
        """Train the pooled model for the epochs of this (only) round."""
        model = client.require_model()
        stats = train(
            model, client.x, client.y, epochs=settings.epochs, batch_size=settings.batch_size,
            lr=settings.lr, seed=settings.client_seed(client.index, config.round),
            device=settings.device, throttle=client.throttle, privacy=client.privacy,
        )
        return ClientResult(client.hospital_id, client.tier.label, config.round, config.phase,
                            client.n_samples, None, 0, stats)

    def _aggregate(self, round_: int, phase: str, results: Sequence[ClientResult]) -> None:
        return None

    def predict_from_members(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        """The pooled model's own probabilities (its one participant's)."""
        if len(probs) != 1:
            raise ConfigError(f"Centralized predicts with its one pooled model, got "
                              f"{len(probs)} participants")
        return probs[0]
