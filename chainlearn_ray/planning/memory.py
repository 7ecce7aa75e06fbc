"""Host memory a run's plan needs: actor processes, models in training, data.

An estimate, meant to catch a plan that cannot fit before any actor starts (``--dry-run``
prints it and warns): every actor process holds its own Python, torch and Ray worker
(:data:`PROCESS_GIB`); every hospital its model's weights and its shard as float tensors, and
each hospital training at once also the gradients and Adam's two moments; every process the
evaluation splits. Activations
of a training batch come on top (small at 28 px, large for big models at 224 px).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

#: One actor process (Python, torch, the Ray worker) before it holds any model or data.
PROCESS_GIB = 0.35
#: Float copies of a model's parameters while it trains, beyond its weights: gradients and
#: Adam's two moments.
TRAINING_COPIES = 3
#: Bytes of one float32 value.
FLOAT_BYTES = 4
GIB = float(1 << 30)


@dataclass(frozen=True)
class DataShape:
    """Samples of each split and the tensor shape of one image (channels, side)."""

    train: int
    val: int
    test: int
    channels: int
    side: int

    @property
    def image_bytes(self) -> int:
        """Bytes of one image as a float32 tensor."""
        return self.channels * self.side * self.side * FLOAT_BYTES


@dataclass(frozen=True)
class MemoryEstimate:
    """The estimate of one plan (GiB) and the memory it is compared with."""

    processes: int
    hospitals: int
    processes_gib: float
    models_gib: float
    data_gib: float
    machine_gib: float | None
    isolated_gib: float

    @property
    def total_gib(self) -> float:
        """Everything the plan holds at once."""
        return self.processes_gib + self.models_gib + self.data_gib

    @property
    def exceeds(self) -> bool:
        """Whether the plan needs more than the machine's memory."""
        return self.machine_gib is not None and self.total_gib > self.machine_gib

    def render(self) -> str:
        """The estimate as dry-run lines (a warning when it exceeds the machine)."""
        where = (f" of {self.machine_gib:.1f} GiB on this cluster" if self.machine_gib
                 else "")
        lines = [
            f"Memory estimate: {self.total_gib:.1f} GiB{where} ({self.processes} processes x "
            f"{PROCESS_GIB:.2f} GiB for Python, torch and Ray = {self.processes_gib:.1f}; "
            f"models {self.models_gib:.1f}; data {self.data_gib:.1f}; training "
            "activations on top)"]
        if self.exceeds:
            lines.append(
                f"WARNING: the plan needs about {self.total_gib:.1f} GiB but the cluster has "
                f"{self.machine_gib:.1f} GiB: lower --hospitals-per-actor (auto packs "
                "hospitals into fewer processes) or the number of hospitals")
        return "\n".join(lines)


def estimate_memory(processes: int, params: Mapping[str, int], hospitals: Mapping[str, int],
                    data: DataShape | None, machine_bytes: float | None,
                    training_at_once: int = 1) -> MemoryEstimate:
    """Estimate the host memory of a plan.

    Parameters
    ----------
    processes:
        Actor processes of the hospitals (the coordinator's is added).
    params:
        Tier label -> parameters of that tier's model.
    hospitals:
        Tier label -> hospitals of that tier.
    data:
        The dataset's split sizes and image shape (``None``: unknown, data not counted).
    machine_bytes:
        Memory of the cluster (``None``: unknown, nothing to compare with).
    training_at_once:
        Hospitals that train at the same time (counted with the largest model).
    """
    n = sum(hospitals.values())

    def total(procs: int) -> tuple[float, float, float]:
        proc = (procs + 1) * PROCESS_GIB
        weights = sum(hospitals[t] * params.get(t, 0) for t in hospitals)
        training = min(training_at_once, n) * max(params.values(), default=0) * TRAINING_COPIES
        models = (weights + training) * FLOAT_BYTES / GIB
        held = 0.0
        if data is not None:  # shards once in all; the evaluation splits in every process
            held = (data.train + (data.val + data.test) * (procs + 1)) * data.image_bytes / GIB
        return proc, models, held

    proc, models, held = total(processes)
    isolated = sum(total(n))
    machine = None if machine_bytes is None else machine_bytes / GIB
    return MemoryEstimate(processes + 1, n, proc, models, held, machine, isolated)


def physical_memory_bytes() -> float | None:
    """This machine's physical memory (``None`` where the OS does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None
