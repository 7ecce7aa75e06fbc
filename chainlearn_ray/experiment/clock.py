"""A run's simulated clock: the cost model its config names, and what a manifest records of it.

``runtime.cost_model: calibrate`` measures this machine here (once, then cached), which is why
this lives beside the config rather than in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chainlearn_ray.experiment.config import (
    REFERENCE_SECONDS_PER_SAMPLE,
    RunConfig,
    configured_cost_model,
)
from chainlearn_ray.learning.cost import CostModel


def cost_model_of(cfg: RunConfig, cache_dir: str | Path | None = None) -> CostModel | None:
    """The cost model the run's clock uses (``None`` on the measured clock).

    ``calibrate`` measures, once per machine, every architecture of the built-in table and of
    the config's tiers, at 28 px and at the run's input side (cached under ``cache_dir``,
    default ``~/.cache/chainlearn``).
    """
    r = cfg.runtime
    if r.clock != "cost":
        return None
    if isinstance(r.cost_model, str) and r.cost_model == "calibrate":
        from chainlearn_ray.learning.calibration import calibrated_cost_model

        archs = [*REFERENCE_SECONDS_PER_SAMPLE, *(t.arch for t in cfg.tiers.values())]
        side = cfg.data.resize or cfg.data.size
        return calibrated_cost_model(archs, sides=[side], cache_dir=cache_dir)
    return configured_cost_model(r.cost_model)


def config_record(cfg: RunConfig, cost: CostModel | None) -> dict[str, Any]:
    """``cfg`` as plain data with ``runtime.cost_model`` the table actually used, so the
    recorded config reproduces the run's simulated times on any machine."""
    out = cfg.to_dict()
    if cost is not None:
        out["runtime"]["cost_model"] = cost.table()
    return out


def clock_record(cfg: RunConfig, cost: CostModel | None) -> dict[str, Any]:
    """The clock facts of a run manifest: clock, throttle and the cost model (source, table,
    reference size, calibrated machine)."""
    return {"clock": cfg.runtime.clock, "throttle": cfg.runtime.throttle,
            "cost_model": cost.record() if cost is not None else None}
