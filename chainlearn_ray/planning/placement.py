"""Which hospitals a run has and which actor process hosts each (plain data, before any actor).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from chainlearn_ray.experiment.clock import cost_model_of
from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.experiment.privacy_config import dp_for, is_private
from chainlearn_ray.hospital.spec import HospitalSpec
from chainlearn_ray.planning.resources import arch_cost, balance
from chainlearn_ray.protocol.tiers import Tier


def hospital_specs(cfg: RunConfig, data: Any, gpu_tiers: Collection[str] = (),
                   ckpt: Path | str | None = None) -> list[HospitalSpec]:
    """Every hospital of ``cfg``: identity, hardware tier, models and training settings.

    ``data``: the dataset (classes and channels); ``gpu_tiers``: labels of the tiers whose
    hospitals train on a GPU; ``ckpt``: checkpoint folder (``None``: no checkpoints).
    """
    rgb = cfg.data.rgb
    cost = cost_model_of(cfg)  # None on the measured clock
    specs = []
    private = is_private(cfg)
    for index, tier in enumerate(cfg.hospital_tiers()):
        tc = cfg.tiers[tier.label]
        specs.append(HospitalSpec(
            hospital_id=f"h{index:02d}", index=index, hardware_tier=tier,
            arch_by_tier={label: t.arch for label, t in cfg.tiers.items()},
            seed=cfg.seed, n_classes=data.n_classes,
            in_channels=3 if rgb else data.n_channels,
            target_throughput=tc.target_throughput, threads=tc.threads,
            throttle=cfg.runtime.throttle, cost_model=cost,
            device="cuda" if tier.label in gpu_tiers else "cpu",
            batch_size=cfg.train.batch_size, lr=cfg.train.lr, pretrained=cfg.train.pretrained,
            checkpoint_dir=None if ckpt is None else str(ckpt),
            faults=tuple(cfg.runtime.faults), dp=dp_for(cfg, tier.label),
            dp_epochs=cfg.train.rounds * cfg.train.epochs, private_models=private,
        ))
    return specs


#: Cost of scoring one sample relative to training on it (a forward pass against forward,
#: backward and update).
EVAL_COST = 1 / 3


def actor_groups(cfg: RunConfig, plan: Any, specs: list[HospitalSpec], part: Any,
                  n_eval: int) -> list[tuple[dict[str, Any], list[HospitalSpec]]]:
    """Which hospitals share which actor process, with that process's Ray options.

    Shared processes are balanced by each hospital's work in a round: training on its shard
    for the configured epochs and scoring the ``n_eval`` validation and test samples, which
    every hospital does whatever its shard (at 10 hospitals on PneumoniaMNIST, 40 % of the
    work). Balancing the shards alone put 4 and 6 hospitals in two processes there.
    """
    if plan.mixed_processes:
        costs = {s.hospital_id: (len(part.indices[s.index]) * cfg.train.epochs
                                 + n_eval * EVAL_COST)
                 * arch_cost(cfg.tiers[s.hardware_tier.label].arch) for s in specs}
        by_id = {s.hospital_id: s for s in specs}
        opts: dict[str, Any] = {"num_cpus": plan.mixed_cpus, "num_gpus": 0, "resources": {}}
        if plan.mixed_threads > 1:  # hospitals of the process train on this many threads
            opts["max_concurrency"] = plan.mixed_threads
        return [(dict(opts), [by_id[h] for h in group])
                for group in balance(costs, plan.mixed_processes)]
    groups: list[tuple[dict[str, Any], list[HospitalSpec]]] = []
    for tier in (Tier.WEAK, Tier.MEDIUM, Tier.STRONG):
        per = plan.per_actor.get(tier.label, 1)
        members = [s for s in specs if s.hardware_tier == tier]
        groups.extend((plan.ray_options(tier.label), members[i:i + per])
                      for i in range(0, len(members), per))
    return groups
