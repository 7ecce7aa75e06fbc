"""Server-side aggregation: FedAvg's n_k-weighted state average and FedMD's soft consensus."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from chainlearn_ray.errors import ConfigError, DataError, ModelError

logger = logging.getLogger(__name__)


def _check_sizes(sizes: Sequence[int], n_states: int) -> list[int]:
    if n_states == 0:
        raise ConfigError("FedAvg needs at least one client state to average")
    if len(sizes) != n_states:
        raise ConfigError(f"{n_states} client states but {len(sizes)} sample counts")
    out: list[int] = []
    for n in sizes:
        if isinstance(n, bool) or int(n) != n or int(n) < 0:
            raise ConfigError(f"client sample counts must be non-negative integers, got {n!r}")
        out.append(int(n))
    if sum(out) == 0:
        raise ConfigError("every client reported 0 samples: nothing to average")
    return out


def _check_layout(states: Sequence[Mapping[str, Tensor]]) -> list[str]:
    """Keys of the first state, after checking every state has the same keys, shapes, dtypes."""
    first = states[0]
    keys = list(first)
    for i, state in enumerate(states[1:], start=1):
        if set(state) != set(first):
            extra = sorted(set(state) - set(first))[:3]
            missing = sorted(set(first) - set(state))[:3]
            raise ModelError(f"client state {i} does not match client 0 (extra keys {extra}, "
                             f"missing keys {missing}): FedAvg needs one architecture for all")
        for k in keys:
            a, b = first[k], state[k]
            if not isinstance(b, Tensor) or not isinstance(a, Tensor):
                raise ModelError(f"state entry {k!r} is not a tensor")
            if a.shape != b.shape or a.dtype != b.dtype:
                raise ModelError(f"state entry {k!r} differs between clients: "
                                 f"{a.dtype} {tuple(a.shape)} vs {b.dtype} {tuple(b.shape)}")
    return keys


def _average_entry(tensors: Sequence[Tensor], sizes: Sequence[int], total: int) -> Tensor:
    ref = tensors[0]
    if ref.is_floating_point() or ref.is_complex():
        wide = torch.complex128 if ref.is_complex() else torch.float64
        acc = torch.zeros(ref.shape, dtype=wide)
        for t, n in zip(tensors, sizes, strict=True):
            if n:
                acc += t.detach().to("cpu", wide) * n
        return (acc / total).to(device=ref.device, dtype=ref.dtype)
    # Integer and bool entries (BatchNorm's num_batches_tracked): exact integer weighted mean,
    # rounded half up: floor((2 * Σ n_k t_k + N) / (2N)).
    acc_int = torch.zeros(ref.shape, dtype=torch.int64)
    for t, n in zip(tensors, sizes, strict=True):
        if n:
            acc_int += t.detach().to("cpu", torch.int64) * n
    mean = torch.div(2 * acc_int + total, 2 * total, rounding_mode="floor")
    return mean.to(device=ref.device, dtype=ref.dtype)


def fedavg_average(
    states: Sequence[Mapping[str, Tensor]], sizes: Sequence[int]
) -> dict[str, Tensor]:
    """FedAvg: average of every state entry, client ``k`` weighted by its sample count ``n_k``.

    ``w = Σ_k n_k · w_k / Σ_k n_k`` for each entry, parameters and buffers alike. Floating-point
    (and complex) entries are accumulated in float64 (complex128) and cast back to their dtype;
    integer and bool entries, such as BatchNorm's ``num_batches_tracked``, get the exact integer
    weighted mean rounded half up. Clients with ``n_k = 0`` contribute nothing.

    Parameters
    ----------
    states:
        One state dict per client, all with the same keys, shapes and dtypes.
    sizes:
        Training samples of each client (``n_k``).

    Returns
    -------
    dict[str, torch.Tensor]
        The averaged state, with the first state's key order and devices, as new tensors.

    Raises
    ------
    ConfigError
        No states, mismatched lengths, negative or all-zero sample counts.
    ModelError
        The states disagree on keys, shapes or dtypes.
    """
    counts = _check_sizes(sizes, len(states))
    keys = _check_layout(states)
    total = sum(counts)
    return {k: _average_entry([s[k] for s in states], counts, total) for k in keys}


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)`` in float64 (numerically stable)."""
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fedmd_consensus(logits: Sequence[np.ndarray], temperature: float = 3.0) -> np.ndarray:
    """FedMD consensus: the mean over clients of ``softmax(logits_k / T)``.

    Parameters
    ----------
    logits:
        One ``(N, C)`` logit matrix per client, all on the same public samples.
    temperature:
        Distillation temperature T (3 in the protocol).

    Returns
    -------
    numpy.ndarray
        ``(N, C)`` float32 soft targets (computed in float64; float32 is what is sent back).
    """
    if len(logits) == 0:
        raise DataError("FedMD consensus needs the logits of at least one client")
    shape = np.shape(logits[0])
    if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
        raise DataError(f"client logits must be a non-empty (N, C) matrix, got shape {shape}")
    acc = np.zeros(shape, dtype=np.float64)
    for i, z in enumerate(logits):
        arr = np.asarray(z)
        if arr.shape != shape:
            raise DataError(f"client {i} sent logits of shape {arr.shape}, expected {shape}")
        if not np.all(np.isfinite(arr)):
            raise ModelError(f"client {i} sent NaN or infinite logits: its training diverged")
        acc += softmax(arr, temperature)
    return (acc / len(logits)).astype(np.float32)
