"""Whole runs in this process (no Ray), through the one driver and the in-process executor.

:func:`run_sequential` runs a baseline on plain shards; :func:`run_ours_sequential` runs Ours
with real :class:`~chainlearn_ray.hospital.site.Hospital` objects and a chain connection in
this process. Tests and small studies use them; for the same seed their numbers equal those of
a run on Ray on CPU.
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
from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.experiment.methods import ours_for
from chainlearn_ray.hospital.site import Hospital
from chainlearn_ray.hospital.spec import EvalSplits, TrainShard
from chainlearn_ray.learning.threads import torch_threads
from chainlearn_ray.methods.base import FederatedMethod
from chainlearn_ray.methods.chain_port import ChainPort
from chainlearn_ray.methods.hosting import BaselineClient, initial_state
from chainlearn_ray.methods.messages import Client, TrainSettings
from chainlearn_ray.methods.ours import Ours
from chainlearn_ray.planning.placement import hospital_specs
from chainlearn_ray.protocol.rounds import RoundOutcome
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.results.rows import RunKey
from chainlearn_ray.runtime.driver import Driver
from chainlearn_ray.runtime.in_process import InProcessExecutor

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
        A baseline :class:`~chainlearn_ray.methods.base.FederatedMethod` (FedAvg, FedProx,
        FedMD, Centralized); it serves both sides.
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
    """
    run_key = key if key is not None else RunKey("local", "", 0.0, settings.seed, method.name)
    run_key = replace(run_key, method=method.name)
    with torch_threads(settings.threads):
        n_rounds, epochs = method.schedule(rounds, settings.epochs)
        run_settings = replace(settings, epochs=epochs,
                               dp_epochs=settings.dp_epochs or n_rounds * epochs)
        x_test = _tensor(evals.x_test, evals)
        public_x = None if public is None else _tensor(public, evals)
        hosted = [BaselineClient.create(method, c, run_settings, arch_by_tier, x_test,
                                        n_classes=n_classes, pretrained=pretrained,
                                        public=public_x, threads=None)
                  for c in method.participants(build_clients(shards, evals, tiers))]
        facts = [h.describe() for h in hosted]
        method.initialize(initial_state(method, facts[0], arch_by_tier, n_classes,
                                        pretrained=pretrained, seed=settings.seed,
                                        private=settings.private_models))
        method.bind_test(evals.y_test, n_classes)
        out = SequentialRun(method, [h.client for h in hosted], rounds=n_rounds, epochs=epochs)
        out.rows.extend(method.setup_rows(run_key, n_rounds, epochs, facts))
        driver = Driver(method, InProcessExecutor({h.client_id: h for h in hosted}),
                        [h.client_id for h in hosted])
        for r in range(1, n_rounds + 1):
            outcome = driver.run_round(r)
            out.metrics = dict(outcome.ensemble)
            out.rows.extend(method.round_rows(run_key, outcome))
        assert method.test_probs is not None
        out.test_probs = method.test_probs
        out.rows.extend(method.summary(run_key))
    return out


@dataclass
class OursRun:
    """Outcome of :func:`run_ours_sequential`: the method (its registrations and chain state),
    its hospitals and the rounds."""

    method: Ours
    hospitals: dict[str, Hospital]
    outcomes: list[RoundOutcome] = field(default_factory=list)


def run_ours_sequential(cfg: RunConfig, data: Any, part: Any, port: ChainPort, *,
                        method: Ours | None = None) -> OursRun:
    """Ours (default: with ``cfg``'s settings) on the hospitals of ``cfg`` built in this process,
    against ``port`` (e.g. a :class:`~chainlearn_ray.methods.contract.ContractPort` on the
    embedded chain): registration, then every round of the config. No checkpoints are written.
    """
    specs = hospital_specs(cfg, data)
    evals = EvalSplits(x_val=data.val.images, y_val=data.val.labels, x_test=data.test.images,
                       y_test=data.test.labels, size=cfg.data.resize or cfg.data.size,
                       rgb=cfg.data.rgb, normalize=cfg.data.normalize)
    hospitals = {s.hospital_id: Hospital(s, TrainShard(data.train.images[part.indices[s.index]],
                                                       data.train.labels[part.indices[s.index]]),
                                         evals) for s in specs}
    ours = method or ours_for(cfg, {s.hospital_id: s.hardware_tier.label for s in specs})
    ours.connect(port)
    ours.bind_test(data.test.labels, data.n_classes)
    driver = Driver(ours, InProcessExecutor(hospitals=hospitals), list(hospitals),
                    round_timeout=cfg.runtime.round_timeout)
    plan = driver.plan(cfg.train.rounds)
    driver.setup(plan.get(1))
    run = OursRun(ours, hospitals)
    for r in sorted(plan):
        run.outcomes.append(driver.run_round(r, plan[r], plan.get(r + 1)))
    return run
