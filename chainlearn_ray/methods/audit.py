"""The auditor: scores a submitted model on an audit split no hospital is given, exactly as a
hospital computes its claim (:func:`chainlearn_ray.protocol.metrics.reliability`), and says
whether the claim stands within the tolerance.

A hospital hands over its model (architecture and state dict); the auditor rebuilds it, checks it
is the model the hospital committed to (:func:`~chainlearn_ray.learning.hashing.model_hash`) and
scores it. A model that is not the committed one (a free-rider cannot hand over a model it only
copied the hash of) scores confidence 0 and ECE 10000: nothing of what it claimed stands.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.protocol.metrics import reliability
from chainlearn_ray.protocol.weights import SCALE

#: What an undeliverable model is audited at: (confidence, ECE) fixed point.
UNDELIVERED: tuple[int, int] = (0, SCALE)


@dataclass(frozen=True)
class AuditSplit:
    """Images (uint8, MedMNIST layout) and labels the auditor holds, with the run's transform
    and the model shape (classes, input channels)."""

    x: np.ndarray
    y: np.ndarray
    n_classes: int
    in_channels: int
    size: int = 28
    rgb: bool = False
    normalize: str = "dataset"
    _inputs: list[Any] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.x) == 0 or len(self.x) != len(self.y):
            raise ConfigError("the audit split needs images with one label each: raise "
                              "trust.audit_fraction")

    def inputs(self) -> Any:
        """The images through the transform (built once)."""
        if not self._inputs:
            from chainlearn_ray.data.transforms import to_tensor

            self._inputs.append(to_tensor(np.array(self.x), size=self.size, rgb=self.rgb,
                                          normalize=self.normalize))  # type: ignore[arg-type]
        return self._inputs[0]


def audit_positions(n: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted positions of a seeded ``fraction`` of ``n`` samples: the audit split's."""
    if not 0 < fraction < 1:
        raise ConfigError(f"chain.audit_fraction must be in (0, 1), got {fraction}")
    return np.sort(np.random.default_rng([int(seed), 0xA0D17]).choice(
        n, size=max(1, round(n * fraction)), replace=False))


def score_model(split: AuditSplit, handed: dict[str, Any] | None,
                committed: bytes) -> tuple[int, int, bool]:
    """``(confidence, ece, delivered)`` of the handed model on the audit split, fixed point;
    :data:`UNDELIVERED` when nothing was handed or the model is not the committed one."""
    if handed is None:
        return (*UNDELIVERED, False)
    import torch

    from chainlearn_ray.learning.hashing import model_hash
    from chainlearn_ray.learning.models import build_model
    from chainlearn_ray.learning.training import predict_proba

    model = build_model(str(handed["arch"]), split.n_classes, split.in_channels, seed=0)
    state = torch.load(io.BytesIO(bytes(handed["state"])), map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError):
        return (*UNDELIVERED, False)
    if model_hash(model) != bytes(committed):
        return (*UNDELIVERED, False)
    rel = reliability(predict_proba(model, split.inputs()), split.y)
    return int(rel.confidence_fixed), int(rel.ece_fixed), True


def deviates(claimed: tuple[int, int], audited: tuple[int, int], tolerance: int) -> bool:
    """Whether a claim fails its audit: confidence or ECE off by more than ``tolerance`` (the
    contract's rule; the optimistic auditor reports only such claims)."""
    return any(abs(int(c) - int(a)) > tolerance for c, a in zip(claimed, audited, strict=True))
