"""Local training, distillation and prediction loops, and determinism of those loops."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainlearn_ray.errors import ConfigError, DataError, ModelError, ResourceError
from chainlearn_ray.learning.hardware import Pacer, Throttle
from chainlearn_ray.learning.models import (
    ARCH_NAME,
    CPU_CHANNELS_LAST,
    CPU_EVAL_BATCH,
    EVAL_BATCH,
    draws_global_rng,
)
from chainlearn_ray.learning.rng import reseed, seeded
from chainlearn_ray.learning.threads import synchronize, torch_threads

if TYPE_CHECKING:
    from chainlearn_ray.learning.privacy import PrivacyAccount

logger = logging.getLogger(__name__)

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class TrainStats:
    """What one call of :func:`train` or :func:`distill` did.

    Attributes
    ----------
    samples:
        Samples processed (summed over epochs).
    steps:
        Optimiser steps.
    seconds:
        Wall time of the loop (includes throttle sleeps).
    compute_seconds:
        Time spent computing steps (excludes throttle sleeps).
    simulated_seconds:
        The hospital's clock. Under a cost-model throttle ``samples × seconds per sample of
        the architecture at the input size × slowdown`` (the same on any machine); under a
        measured throttle ``slowdown × compute_seconds``; without a throttle
        ``compute_seconds``.
    final_loss:
        Mean training loss over the last epoch (sample-weighted).
    epsilon, delta:
        Privacy spent by the hospital so far (private training only, else ``None``).
    """

    samples: int
    steps: int
    seconds: float
    compute_seconds: float
    simulated_seconds: float
    final_loss: float
    epsilon: float | None = None
    delta: float | None = None


def set_determinism(seed: int, threads: int = 1) -> None:
    """Make this process reproducible: seed every RNG, fix torch threads, deterministic kernels.

    Parameters
    ----------
    seed:
        Seed of Python's, numpy's and torch's global generators.
    threads:
        torch intra-op threads (1 per hospital process by default).
    """
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    reseed(seed)
    torch.set_num_threads(int(threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def _check_device(device: str) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ResourceError(f"device {device!r} asked for, but CUDA is not available: use 'cpu' "
                            "or give the hospital a GPU")
    return dev


def _as_inputs(x: Tensor | np.ndarray) -> Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 4 or not t.is_floating_point():
        raise DataError(f"inputs must be a float N×C×H×W tensor (see data.transforms.to_tensor), "
                        f"got {t.dtype} {tuple(t.shape)}")
    return t


def _batches(order: Tensor, batch_size: int) -> list[Tensor]:
    """Split a permutation into batches; a trailing batch of one joins the previous batch.

    (Batch-norm cannot train on one sample whose feature map has shrunk to 1×1.)
    """
    parts = list(torch.split(order, batch_size))
    if len(parts) > 1 and parts[-1].numel() == 1:
        last = parts.pop()
        parts[-1] = torch.cat([parts[-1], last])
    return parts


def _rng_scope(seed: int, dev: torch.device,
               model: nn.Module) -> contextlib.AbstractContextManager[None]:
    """Seed dropout / stochastic depth for the block without leaking into global RNG state.

    A model whose layers draw nothing (:func:`~chainlearn_ray.learning.models.draws_global_rng`)
    needs no seed, and takes no lock: hospitals training such models on threads of one process run
    in parallel (see :mod:`chainlearn_ray.learning.rng`).
    """
    if not draws_global_rng(model):
        return contextlib.nullcontext()
    return seeded(seed, [dev.index or 0] if dev.type == "cuda" else [])


def _channels_last(model: nn.Module, dev: torch.device) -> bool:
    """Whether ``model`` runs channels-last on ``dev`` (always on CUDA; on CPU as its
    architecture says, see ``Architecture.cpu_channels_last``)."""
    return dev.type == "cuda" or bool(getattr(model, CPU_CHANNELS_LAST, False))


def _prepare(model: nn.Module, dev: torch.device) -> nn.Module:
    model.to(dev)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if _channels_last(model, dev):
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def _to_device(x: Tensor, dev: torch.device) -> Tensor:
    """A whole input set on ``dev`` (CUDA: copied once, channels-last)."""
    if dev.type == "cuda":
        return x.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
    return x


def _batch_format(xb: Tensor, channels_last: bool) -> Tensor:
    """One batch in the model's memory format (on CPU converted per batch, not per shard)."""
    return xb.contiguous(memory_format=torch.channels_last) if channels_last else xb


def _fit(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    loss_of: Callable[[Tensor, Tensor], Tensor],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
    throttle: Throttle | None,
) -> TrainStats:
    """The shared loop: fresh Adam, seeded shuffling, optional bf16 autocast and throttle."""
    if epochs < 0 or batch_size < 1 or not lr > 0:
        raise ConfigError(f"need epochs >= 0, batch_size >= 1 and lr > 0; got {epochs}, "
                          f"{batch_size}, {lr}")
    n = int(x.shape[0])
    if n == 0:
        raise DataError("cannot train on an empty shard")
    if int(target.shape[0]) != n:
        raise DataError(f"{n} inputs but {int(target.shape[0])} targets")
    dev = _check_device(device)
    cuda = dev.type == "cuda"
    _prepare(model, dev)
    channels_last = _channels_last(model, dev)
    model.train()
    x_dev, t_dev = _to_device(x, dev), target.to(dev)
    # torch's Adam, implementation named so a change of torch's defaults cannot move trained
    # weights: multi-tensor (foreach) on every device, never the fused kernel. On CPU foreach
    # does the single-tensor default's arithmetic (same bits) in one call per operation rather
    # than one per parameter, so threads training other hospitals wait less for the GIL; the
    # fused CPU kernel rounds differently.
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, foreach=True, fused=False)
    gen = torch.Generator().manual_seed(seed)
    pacer: Pacer | None = None
    if throttle is not None:  # the cost-model clock prices the architecture at this input size
        pacer = throttle.training_pacer(getattr(model, ARCH_NAME, None), int(x.shape[-2]),
                                        int(x.shape[-1]))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if cuda
                else contextlib.nullcontext())
    samples = steps = 0
    epoch_loss = torch.zeros((), device=dev)
    started = time.perf_counter()
    with torch_threads(throttle.threads if throttle is not None else None), \
            _rng_scope(seed, dev, model):
        for _ in range(epochs):
            epoch_loss = torch.zeros((), device=dev)
            for idx in _batches(torch.randperm(n, generator=gen), batch_size):
                t0 = time.perf_counter()
                batch = idx.to(dev) if cuda else idx
                xb = _batch_format(x_dev.index_select(0, batch), channels_last)
                tb = t_dev.index_select(0, batch)
                with autocast:
                    logits = model(xb)
                loss = loss_of(logits.float(), tb)
                model.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                epoch_loss += loss.detach() * len(idx)
                if pacer is not None:
                    synchronize(device)
                    pacer.step(time.perf_counter() - t0, len(idx))
                samples += len(idx)
                steps += 1
    synchronize(device)
    wall = time.perf_counter() - started
    compute = pacer.compute_seconds if pacer is not None else wall
    simulated = pacer.simulated_seconds if pacer is not None else wall
    final = float(epoch_loss.item()) / n if epochs else float("nan")
    if epochs and not np.isfinite(final):
        raise ModelError(f"training diverged (loss {final}); lower the learning rate")
    return TrainStats(samples, steps, wall, compute, simulated, final)


def train(
    model: nn.Module,
    x: Tensor | np.ndarray,
    y: Tensor | np.ndarray,
    *,
    epochs: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int,
    device: str = "cpu",
    throttle: Throttle | None = None,
    prox_mu: float = 0.0,
    prox_reference: Mapping[str, Tensor] | None = None,
    loss_fn: LossFn | None = None,
    privacy: PrivacyAccount | None = None,
) -> TrainStats:
    """Train ``model`` in place with a fresh Adam optimiser (no weight decay).

    Parameters
    ----------
    model:
        The network; it is moved to ``device`` and stays there.
    x:
        Float inputs ``N×C×H×W`` (from :func:`chainlearn_ray.data.transforms.to_tensor`).
    y:
        Integer labels ``(N,)``.
    epochs, batch_size, lr:
        Budget and optimiser (reference: batch 32, Adam lr 1e-3).
    seed:
        Seeds shuffling and dropout; same seed, model and data → identical weights on CPU.
    device:
        ``"cpu"`` or ``"cuda[:i]"``; CUDA runs bf16 autocast, channels-last and TF32.
    throttle:
        Hardware throttle: sets the simulated clock (priced by its cost model, or its factor
        times the measured compute time) and, in sleep mode, really slows training down.
    prox_mu, prox_reference:
        FedProx: adds ``(μ/2)·‖w − w_ref‖²`` over the parameters named in ``prox_reference``
        when ``prox_mu > 0``.
    loss_fn:
        ``loss(logits, labels)``; default cross-entropy.
    privacy:
        The hospital's DP-SGD account (:mod:`~chainlearn_ray.learning.privacy`), or ``None``.

    Returns
    -------
    TrainStats
    """
    xs = _as_inputs(x)
    ys = torch.as_tensor(y)
    if ys.ndim == 2 and ys.shape[1] == 1:
        ys = ys[:, 0]
    if ys.ndim != 1 or ys.is_floating_point():
        raise DataError(f"labels must be an integer (N,) array, got {ys.dtype} {tuple(ys.shape)}")
    ys = ys.long()
    base: LossFn = loss_fn if loss_fn is not None else F.cross_entropy
    if prox_mu < 0:
        raise ConfigError(f"prox_mu must be >= 0, got {prox_mu}")
    if privacy is not None:
        return privacy.fit(model, xs, ys, base, epochs=epochs, lr=lr, seed=seed, device=device,
                           throttle=throttle, prox_mu=prox_mu, prox_reference=prox_reference)
    if prox_mu == 0:
        return _fit(model, xs, ys, base, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                    device=device, throttle=throttle)
    if prox_reference is None:
        raise ConfigError("FedProx (prox_mu > 0) needs prox_reference, the global weights")
    dev = _check_device(device)
    params = dict(_prepare(model, dev).named_parameters())
    missing = [k for k in params if k not in prox_reference]
    if missing:
        raise ModelError(f"prox_reference lacks parameters {missing[:3]}")
    pairs = [(params[k], prox_reference[k].detach().to(dev, torch.float32)) for k in params]

    def prox_loss(logits: Tensor, labels: Tensor) -> Tensor:
        penalty = sum(((p.float() - ref) ** 2).sum() for p, ref in pairs)
        return base(logits, labels) + (prox_mu / 2.0) * penalty

    return _fit(model, xs, ys, prox_loss, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                device=device, throttle=throttle)


def distill(
    model: nn.Module,
    x: Tensor | np.ndarray,
    soft_targets: Tensor | np.ndarray,
    *,
    temperature: float,
    epochs: int,
    lr: float,
    batch_size: int = 32,
    seed: int,
    device: str = "cpu",
    throttle: Throttle | None = None,
) -> TrainStats:
    """FedMD digest: fit ``model`` to consensus probabilities with ``KL · T²``.

    The loss is ``KL(soft_targets ‖ softmax(logits / T)) · T²`` (batch mean), with a fresh Adam.

    Parameters
    ----------
    soft_targets:
        ``(N, C)`` target probabilities (the consensus of ``softmax(logits / T)``).
    temperature:
        T (3 in the protocol).
    """
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    xs = _as_inputs(x)
    targets = torch.as_tensor(np.asarray(soft_targets, dtype=np.float32))
    if targets.ndim != 2:
        raise DataError(f"soft targets must be (N, C), got {tuple(targets.shape)}")
    t = float(temperature)

    def kd_loss(logits: Tensor, probs: Tensor) -> Tensor:
        log_student = F.log_softmax(logits / t, dim=1)
        return F.kl_div(log_student, probs, reduction="batchmean") * (t * t)

    return _fit(model, xs, targets, kd_loss, epochs=epochs, batch_size=batch_size, lr=lr,
                seed=seed, device=device, throttle=throttle)


def predict_proba(
    model: nn.Module,
    x: Tensor | np.ndarray,
    *,
    batch_size: int | None = None,
    device: str = "cpu",
    temperature: float = 1.0,
) -> np.ndarray:
    """Softmax probabilities ``softmax(logits / temperature)`` as a float32 ``(N, C)`` array.

    Runs in eval mode in full fp32 (no autocast); the model's train/eval mode is restored.
    ``batch_size`` defaults to :data:`~chainlearn_ray.learning.models.EVAL_BATCH`, on CPU to the
    architecture's ``cpu_eval_batch``; the probabilities do not depend on it (beyond float
    rounding).
    """
    dev = _check_device(device)
    if batch_size is None:
        batch_size = EVAL_BATCH if dev.type == "cuda" else int(
            getattr(model, CPU_EVAL_BATCH, EVAL_BATCH))
    if batch_size < 1 or not temperature > 0:
        raise ConfigError(f"need batch_size >= 1 and temperature > 0, got {batch_size}, "
                          f"{temperature}")
    xs = _as_inputs(x)
    _prepare(model, dev)
    channels_last = _channels_last(model, dev)
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = []
    try:
        with torch.inference_mode():
            for start in range(0, int(xs.shape[0]), batch_size):
                xb = _batch_format(_to_device(xs[start : start + batch_size], dev),
                                   channels_last)
                logits = model(xb).float()
                out.append(torch.softmax(logits / temperature, dim=1).cpu().numpy())
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)
