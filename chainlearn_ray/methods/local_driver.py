"""A sequential, in-process driver of the baseline methods (no Ray, no chain): the reference loop.

It runs exactly the verbs the Ray runtime runs (configure, client step, aggregate per phase) on
plain tensors, one client after another, and returns tidy rows. Tests and small studies use it;
the numbers it produces are the same as those of a distributed run with the same seed on CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from chainlearn_ray.data.transforms import to_tensor
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.hospital.spec import EvalSplits, TrainShard
from chainlearn_ray.learning.models import build_model, count_parameters
from chainlearn_ray.learning.threads import torch_threads
from chainlearn_ray.methods.evaluation import HEADLINE, headline_metrics
from chainlearn_ray.methods.fed import Client, FederatedMethod, TrainSettings
from chainlearn_ray.methods.fedmd import FedMD
from chainlearn_ray.methods.names import result_row
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.results.rows import RunKey
from chainlearn_ray.results.schema import ALL, ENSEMBLE

logger = logging.getLogger(__name__)


@dataclass
class SequentialRun:
    """Outcome of :func:`run_sequential`.

    Attributes
    ----------
    method:
        The method object (its server state: global model, consensus, traffic).
    clients:
        The participants with their trained models.
    rows:
        Tidy result rows: the training budget, each participant's ``shard_size`` and
        ``model_params`` (round 0), per-round ensemble metrics, and the traffic.
    test_probs:
        Final ``(N, C)`` test probabilities of the method's predictor.
    metrics:
        Final headline metrics (accuracy, macro-F1, confidence, ECE on the test split).
    rounds, epochs:
        Rounds run and local epochs per round (Centralized: one round with the whole budget).
    """

    method: FederatedMethod
    clients: list[Client]
    rows: list[dict[str, Any]] = field(default_factory=list)
    test_probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    metrics: dict[str, float] = field(default_factory=dict)
    rounds: int = 0
    epochs: int = 0


def _tensor(images: np.ndarray, evals: EvalSplits) -> torch.Tensor:
    return to_tensor(images, size=evals.size, rgb=evals.rgb,
                     normalize=evals.normalize)  # type: ignore[arg-type]


def build_clients(shards: Sequence[TrainShard], evals: EvalSplits, tiers: Sequence[Tier | str],
                  hospital_ids: Sequence[str] | None = None) -> list[Client]:
    """One :class:`Client` (without a model yet) per shard, inputs transformed like ``evals``."""
    if not shards:
        raise ConfigError("need at least one hospital shard")
    if len(tiers) != len(shards):
        raise ConfigError(f"{len(shards)} shards but {len(tiers)} tiers")
    ids = list(hospital_ids) if hospital_ids is not None else [f"h{i:02d}"
                                                               for i in range(len(shards))]
    if len(ids) != len(shards):
        raise ConfigError(f"{len(shards)} shards but {len(ids)} hospital ids")
    return [
        Client(hospital_id=ids[i], index=i, tier=Tier.parse(tiers[i]),
               x=_tensor(s.x, evals),
               y=torch.as_tensor(np.asarray(s.y).reshape(-1), dtype=torch.long))
        for i, s in enumerate(shards)
    ]


def setup_rows(key: RunKey, method: str, rounds: int, epochs: int,
               participants: Sequence[tuple[str, str, int, int]]) -> list[dict[str, Any]]:
    """Round-0 rows of a baseline: the training budget and each participant's shard and model.

    Parameters
    ----------
    key, method:
        Identifying columns and the method name.
    rounds, epochs:
        Rounds run and local epochs per round (``budget_epochs = rounds · epochs``).
    participants:
        ``(hospital_id, tier label, shard size, model parameters)`` per participant.
    """
    rows = [result_row(key, method, 0, ALL, "", "budget_epochs", rounds * epochs),
            result_row(key, method, 0, ALL, "", "epochs_per_round", epochs)]
    for hid, tier, n_samples, params in participants:
        rows.append(result_row(key, method, 0, hid, tier, "shard_size", n_samples))
        rows.append(result_row(key, method, 0, hid, tier, "model_params", params))
    return rows


def ensemble_rows(key: RunKey, method: str, round_: int,
                  metrics: Mapping[str, float]) -> list[dict[str, Any]]:
    """The headline metrics of a baseline's predictor after round ``round_`` as tidy rows."""
    return [result_row(key, method, round_, ENSEMBLE, "", m, metrics[m]) for m in HEADLINE]


def run_sequential(
    method: FederatedMethod,
    shards: Sequence[TrainShard],
    evals: EvalSplits,
    *,
    tiers: Sequence[Tier | str],
    arch_by_tier: Mapping[str, str],
    n_classes: int,
    rounds: int,
    settings: TrainSettings,
    key: RunKey | None = None,
    public: np.ndarray | None = None,
    pretrained: str | None = None,
) -> SequentialRun:
    """Run a baseline method round by round in this process.

    Parameters
    ----------
    method:
        A :class:`~chainlearn_ray.methods.fed.FederatedMethod` (FedAvg, FedProx, FedMD,
        Centralized).
    shards:
        Each hospital's training images (uint8) and labels.
    evals:
        Test split (scored each round) and the image transform.
    tiers:
        Each hospital's tier (labels its rows; selects FedMD's architectures).
    arch_by_tier:
        Tier label -> architecture (``"tiny_cnn:8"``, ``"resnet50"``, ...).
    n_classes:
        Number of classes.
    rounds:
        Round budget; with ``settings.epochs`` it fixes the training budget of every method.
    settings:
        Local training settings shared by all methods.
    key:
        Identifying columns of the rows (default: run ``"local"``, seed ``settings.seed``).
    public:
        FedMD's public images (uint8), e.g. ``x_train[split_public(...)[0]]``.
    pretrained:
        Passed to :func:`chainlearn_ray.learning.models.build_model`.

    Returns
    -------
    SequentialRun
    """
    with torch_threads(settings.threads):
        return _run(method, shards, evals, tiers=tiers, arch_by_tier=arch_by_tier,
                    n_classes=n_classes, rounds=rounds, settings=settings, key=key,
                    public=public, pretrained=pretrained)


def _run(
    method: FederatedMethod,
    shards: Sequence[TrainShard],
    evals: EvalSplits,
    *,
    tiers: Sequence[Tier | str],
    arch_by_tier: Mapping[str, str],
    n_classes: int,
    rounds: int,
    settings: TrainSettings,
    key: RunKey | None,
    public: np.ndarray | None,
    pretrained: str | None,
) -> SequentialRun:
    run_key = key if key is not None else RunKey("local", "", 0.0, settings.seed, method.name)
    clients = build_clients(shards, evals, tiers)
    if isinstance(method, FedMD):
        if public is None:
            raise ConfigError("FedMD needs the public images (see methods.fedmd.split_public)")
        method.attach_public(_tensor(public, evals))
    n_rounds, epochs = method.schedule(rounds, settings.epochs)
    run_settings = replace(settings, epochs=epochs)
    participants = method.participants(clients)
    in_channels = int(participants[0].x.shape[1])
    for c in participants:
        c.model = build_model(method.arch_for(c.tier, arch_by_tier), n_classes, in_channels,
                              pretrained=pretrained, seed=settings.seed + c.index)
    if method.needs_initial_state:
        init = build_model(method.arch_for(participants[0].tier, arch_by_tier), n_classes,
                           in_channels, pretrained=pretrained, seed=settings.seed)
        method.initialize(init.state_dict())
    x_test = _tensor(evals.x_test, evals)
    y_test = np.asarray(evals.y_test).reshape(-1)
    out = SequentialRun(method, participants, rounds=n_rounds, epochs=epochs)
    out.rows.extend(setup_rows(run_key, method.name, n_rounds, epochs, [
        (c.hospital_id, c.tier.label, c.n_samples, count_parameters(c.require_model()))
        for c in participants]))
    for r in range(1, n_rounds + 1):
        for phase in method.phases:
            config = method.configure_round(r, phase)
            results = [method.client_step(c, config, run_settings) for c in participants]
            method.aggregate(r, phase, results)
        out.test_probs = method.predict(participants, x_test, device=settings.device)
        out.metrics = headline_metrics(out.test_probs, y_test, n_classes)
        out.rows.extend(ensemble_rows(run_key, method.name, r, out.metrics))
        logger.info("%s round %d/%d: accuracy %.3f", method.name, r, n_rounds,
                    out.metrics["accuracy"])
    out.rows.extend(method.summary(run_key))
    return out
