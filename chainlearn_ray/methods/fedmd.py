"""FedMD: heterogeneous models agree on a public set through a soft consensus, then train locally.

Each round has two phases. ``communicate``: every client sends its float32 logits on the public
set; the server averages ``softmax(logits / T)`` into the consensus. ``digest``: the server sends
the consensus; every client distils towards it (``KL · T²``, a few epochs at a small learning
rate) and then trains its local epochs on its private shard. The final predictor is the
equal-weight ensemble of the clients' models.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from chainlearn_ray.data.partition import Partition, dirichlet_partition
from chainlearn_ray.errors import ConfigError, DataError, HospitalFailure
from chainlearn_ray.learning.training import distill, train
from chainlearn_ray.methods.aggregation import fedmd_consensus
from chainlearn_ray.methods.base import FederatedMethod
from chainlearn_ray.methods.comm import array_bytes
from chainlearn_ray.methods.messages import Client, ClientResult, RoundConfig, TrainSettings
from chainlearn_ray.methods.names import FEDMD

logger = logging.getLogger(__name__)

COMMUNICATE = "communicate"
DIGEST = "digest"

#: Salt separating the digest's seed from the local training's seed of the same round.
_DIGEST_SALT = 0x0D16


def split_public(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw FedMD's public set from the pooled training set, before any partition.

    ``round(fraction · n)`` indices (at least 1, at most ``n − 1``) are chosen without
    replacement by ``numpy.random.default_rng([seed, 0xFED])``; the rest is private.

    Returns
    -------
    tuple
        ``(public_idx, private_idx)``, both sorted int64.
    """
    y = np.asarray(labels).reshape(-1)
    n = len(y)
    if not 0 < fraction < 1:
        raise ConfigError(f"public fraction must be in (0, 1), got {fraction}")
    if n < 2:
        raise DataError("need at least 2 training samples to split off a public set")
    k = min(max(1, round(fraction * n)), n - 1)
    rng = np.random.default_rng([int(seed), 0xFED])
    public = np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)
    private = np.setdiff1d(np.arange(n, dtype=np.int64), public, assume_unique=True)
    return public, private


def fedmd_split(labels: np.ndarray, n_hospitals: int, alpha: str | float, *, fraction: float,
                seed: int, min_size: int = 10) -> tuple[np.ndarray, list[np.ndarray], Partition]:
    """Public split, then a Dirichlet partition of the private rest over the hospitals.

    Returns
    -------
    tuple
        ``(public_idx, shards, partition)``: shards are indices into the *pooled* training set;
        ``partition`` is the partition of the private part (its indices are private-relative).
    """
    y = np.asarray(labels).reshape(-1)
    public, private = split_public(y, fraction, seed)
    part = dirichlet_partition(y[private], n_hospitals, alpha, seed=seed, min_size=min_size,
                               n_classes=int(y.max()) + 1)
    return public, [private[idx] for idx in part.indices], part


def public_logits(model: nn.Module, x: Tensor, *, batch_size: int = 256,
                  device: str = "cpu") -> np.ndarray:
    """Raw float32 logits of ``model`` on ``x`` (eval mode, fp32; the mode is restored)."""
    dev = torch.device(device)
    model.to(dev)
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = []
    try:
        with torch.inference_mode():
            for start in range(0, int(x.shape[0]), batch_size):
                out.append(model(x[start:start + batch_size].to(dev)).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out).astype(np.float32, copy=False)


class FedMD(FederatedMethod):
    """FedMD with each tier's own architecture.

    Parameters
    ----------
    public_fraction:
        Share of the pooled training set held out as the public set (0.1).
    temperature:
        Distillation temperature T (3).
    digest_epochs, digest_lr:
        Distillation epochs and Adam learning rate per round (2, 1e-4).
    public_x:
        The public images as model inputs; set later with :meth:`attach_public`.
    """

    name: ClassVar[str] = FEDMD
    phases: ClassVar[tuple[str, ...]] = (COMMUNICATE, DIGEST)

    def __init__(self, public_fraction: float = 0.1, temperature: float = 3.0,
                 digest_epochs: int = 2, digest_lr: float = 1e-4,
                 public_x: Tensor | None = None) -> None:
        super().__init__()
        if not 0 < public_fraction < 1:
            raise ConfigError(f"public fraction must be in (0, 1), got {public_fraction}")
        if not temperature > 0 or digest_epochs < 0 or not digest_lr > 0:
            raise ConfigError(f"need temperature > 0, digest_epochs >= 0 and digest_lr > 0; got "
                              f"{temperature}, {digest_epochs}, {digest_lr}")
        self.public_fraction = float(public_fraction)
        self.temperature = float(temperature)
        self.digest_epochs = int(digest_epochs)
        self.digest_lr = float(digest_lr)
        self.public_x = public_x
        self.consensus: np.ndarray | None = None

    def attach_public(self, public_x: Tensor) -> None:
        """Give the method (server and client side) the public set's inputs."""
        if int(public_x.shape[0]) == 0:
            raise DataError("FedMD's public set is empty")
        self.public_x = public_x

    def _public(self) -> Tensor:
        if self.public_x is None:
            raise ConfigError("FedMD has no public set: call attach_public() first")
        return self.public_x

    def _configure(self, round_: int, phase: str) -> RoundConfig:
        if phase == COMMUNICATE:
            return RoundConfig(round_, phase)
        if self.consensus is None:
            raise ConfigError(f"FedMD round {round_}: digest before any consensus")
        return RoundConfig(round_, phase, self.consensus, array_bytes(self.consensus))

    def client_step(self, client: Client, config: RoundConfig,
                    settings: TrainSettings) -> ClientResult:
        """``communicate``: logits on the public set. ``digest``: distil, then train locally.

        With DP only the local training is private: the digest fits public data and the
        consensus, and spends no privacy budget.
        """
        model = client.require_model()
        if config.phase == COMMUNICATE:
            logits = public_logits(model, self._public(), device=settings.device)
            return ClientResult(client.hospital_id, client.tier.label, config.round,
                                config.phase, client.n_samples, logits, array_bytes(logits))
        distill(
            model, self._public(), config.payload, temperature=self.temperature,
            epochs=self.digest_epochs, lr=self.digest_lr, batch_size=settings.batch_size,
            seed=settings.client_seed(client.index, config.round, _DIGEST_SALT),
            device=settings.device, throttle=client.throttle,
        )
        stats = train(
            model, client.x, client.y, epochs=settings.epochs, batch_size=settings.batch_size,
            lr=settings.lr, seed=settings.client_seed(client.index, config.round),
            device=settings.device, throttle=client.throttle, privacy=client.privacy,
        )
        return ClientResult(client.hospital_id, client.tier.label, config.round, config.phase,
                            client.n_samples, None, 0, stats)

    def _aggregate(self, round_: int, phase: str, results: Sequence[ClientResult]) -> None:
        if phase != COMMUNICATE:
            return
        if not results:
            raise HospitalFailure(f"FedMD round {round_}: no client sent logits")
        self.consensus = fedmd_consensus([r.payload for r in results], self.temperature)
