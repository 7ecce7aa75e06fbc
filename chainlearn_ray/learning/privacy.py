"""Differentially private local training (DP-SGD through Opacus): settings, model conversion,
noise calibration over a run's planned steps, and each hospital's accountant across rounds.

A private hospital trains with Poisson sampling (each sample joins a step with probability
``q = batch_size / n``), per-sample gradients clipped to ``max_grad_norm`` and Gaussian noise of
``noise_multiplier × max_grad_norm`` (Opacus' ``GradSampleModule`` and ``DPOptimizer`` around
the same fresh Adam as the non-private loop). The noise multiplier comes from Opacus'
``get_noise_multiplier`` for the hospital's whole run (every round's epochs of its shard), so
the accountant (RDP) reaches the target ε after the last round. Opacus' ``secure_mode`` is off
in simulation: sampling and noise draw from seeded torch generators, so the same seed gives the
same private model.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from chainlearn_ray.errors import ConfigError, DataError, ModelError

if TYPE_CHECKING:  # torch and opacus load where hospitals train
    from torch import Tensor, nn

    from chainlearn_ray.learning.hardware import Throttle
    from chainlearn_ray.learning.training import TrainStats

#: The accountant of every private hospital (Opacus' Rényi-DP accountant).
ACCOUNTANT: Final = "rdp"
#: Opacus' secure RNG is off in simulation (seeded, reproducible noise).
SECURE_MODE: Final = False
#: Rényi orders the accountant searches (Opacus' defaults, extended to high orders, which the
#: larger ε of a sweep need for a tight bound).
RDP_ORDERS: Final = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
                          + [80, 96, 128, 192, 256])
# The first layer's input needs no gradient; Opacus' hooks still see all they need, so torch's
# note that its full backward hook fires on module outputs only is noise.
warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)

#: Salt separating the noise generator's seed from the sampling generator's.
_NOISE_SALT: Final = 0x0D9_5A17


@dataclass(frozen=True)
class DPSettings:
    """A hospital's differential-privacy target (the run config holds the defaults).

    Attributes
    ----------
    epsilon:
        Target ε after the last round (``inf``: no DP).
    delta:
        Target δ (must be below 1/n of the smallest shard).
    max_grad_norm:
        Per-sample gradient clipping bound C.
    """

    epsilon: float
    delta: float
    max_grad_norm: float

    @property
    def enabled(self) -> bool:
        """Whether this asks for private training (a finite ε)."""
        return math.isfinite(self.epsilon)


def require_opacus(where: str) -> None:
    """Raise :class:`ConfigError` naming ``where`` when Opacus is not importable."""
    try:
        import opacus  # noqa: F401
    except ImportError:
        raise ConfigError(f"{where} asks for differential privacy but opacus is not installed: "
                          "pip install 'chainlearn_ray[dp]', or remove the setting") from None


def make_private_model(model: nn.Module, where: str = "the model") -> tuple[nn.Module, list[str]]:
    """``model`` made DP-compatible by Opacus' ``ModuleValidator.fix`` (BatchNorm → GroupNorm;
    activations no longer in place), and the sorted names of the layer types it replaced.

    The model's own attributes (architecture name, CPU memory format, ...) are kept.

    Raises
    ------
    ModelError
        When Opacus cannot make the model private (a layer it cannot fix).
    """
    from opacus.grad_sample import GradSampleModule
    from opacus.validators import ModuleValidator

    before = {type(m).__name__ for m in model.modules()}
    fixed = ModuleValidator.fix(model)
    fixed.train(model.training)
    for layer in fixed.modules():  # Opacus' backward hooks forbid in-place activations
        if getattr(layer, "inplace", False) is True:
            layer.inplace = False
    problems = [str(e) for e in ModuleValidator.validate(fixed, strict=False)]
    problems += [str(e) for e in GradSampleModule.validate(fixed, strict=False)]
    if problems:
        raise ModelError(f"{where}: Opacus cannot make this model private "
                         f"({problems[0].strip()[:160]}); choose another architecture or turn "
                         "differential privacy off for it")
    after = {type(m).__name__ for m in fixed.modules()}
    return fixed, sorted(before - after)


def sample_rate(n: int, batch_size: int) -> float:
    """Poisson sampling rate ``q = min(1, batch_size / n)``."""
    if n < 1:
        raise DataError("a private hospital needs a non-empty shard")
    return min(1.0, batch_size / n)


def planned_steps(n: int, batch_size: int, epochs: int) -> int:
    """Steps of ``epochs`` epochs of Poisson-sampled batches (``ceil(1/q)`` per epoch)."""
    return int(epochs) * math.ceil(1.0 / sample_rate(n, batch_size))


def noise_multiplier(dp: DPSettings, n: int, batch_size: int, epochs: int,
                     where: str = "train.dp.epsilon") -> float:
    """Opacus' noise multiplier reaching ``dp.epsilon`` at ``dp.delta`` after ``epochs`` epochs
    on a shard of ``n`` samples at ``batch_size`` (RDP accountant).

    Raises
    ------
    ConfigError
        When δ is not below 1/n, or no noise level reaches ε in the planned steps.
    """
    from opacus.accountants.utils import get_noise_multiplier

    if not dp.delta < 1.0 / n:
        raise ConfigError(f"{where.rsplit('.', 1)[0]}.delta {dp.delta:g} must be below 1/n of "
                          f"the smallest shard (n = {n}: below {1.0 / n:.3g}); lower delta or "
                          "raise data.min_shard")
    steps = planned_steps(n, batch_size, epochs)
    try:
        return float(get_noise_multiplier(target_epsilon=dp.epsilon, target_delta=dp.delta,
                                          sample_rate=sample_rate(n, batch_size), steps=steps,
                                          accountant=ACCOUNTANT, alphas=list(RDP_ORDERS)))
    except ValueError:
        raise ConfigError(f"{where} {dp.epsilon:g} cannot be reached in the planned {steps} "
                          f"steps on a shard of {n} (δ {dp.delta:g}); raise {where}, or lower "
                          "train.rounds / train.epochs") from None


class PrivacyAccount:
    """One hospital's DP-SGD state across rounds: its target, noise multiplier and accountant.

    Parameters
    ----------
    dp:
        The target.
    n, batch_size:
        Shard size and expected batch size (sets the sampling rate ``q``).
    epochs:
        Epochs planned over the whole run (all rounds), over which the noise is calibrated.
    """

    def __init__(self, dp: DPSettings, n: int, batch_size: int, epochs: int) -> None:
        from opacus.accountants import create_accountant

        self.dp, self.n, self.batch_size = dp, int(n), int(batch_size)
        self.sample_rate = sample_rate(self.n, self.batch_size)
        self.planned = planned_steps(self.n, self.batch_size, epochs)
        self.noise = noise_multiplier(dp, self.n, self.batch_size, epochs)
        self.accountant = create_accountant(mechanism=ACCOUNTANT)

    @property
    def steps(self) -> int:
        """Private steps taken so far."""
        return sum(int(count) for _sigma, _q, count in self.accountant.history)

    def spent(self) -> float:
        """ε spent so far at the target δ (0 before the first step)."""
        if not self.accountant.history:
            return 0.0
        return float(self.accountant.get_epsilon(delta=self.dp.delta, alphas=list(RDP_ORDERS)))

    def history(self) -> list[tuple[float, float, int]]:
        """The accountant's history (for checkpoints)."""
        return [(float(s), float(q), int(c)) for s, q, c in self.accountant.history]

    def restore(self, history: list[tuple[float, float, int]]) -> None:
        """Continue from a checkpointed history."""
        self.accountant.history = [tuple(h) for h in history]

    def fit(self, model: nn.Module, x: Tensor, target: Tensor,
            loss_of: Callable[[Tensor, Tensor], Tensor], *, epochs: int, lr: float, seed: int,
            device: str, throttle: Throttle | None, prox_mu: float = 0.0,
            prox_reference: Mapping[str, Tensor] | None = None) -> TrainStats:
        """Train ``model`` in place with DP-SGD for ``epochs`` epochs and book the steps.

        ``prox_mu``, ``prox_reference``: FedProx's ``(μ/2)‖w − w_global‖²``, which reads no data:
        its gradient is added after clipping and noise (post-processing costs no privacy).
        """
        if epochs < 0 or not lr > 0:
            raise ConfigError(f"need epochs >= 0 and lr > 0; got {epochs}, {lr}")
        penalty = None
        if prox_mu > 0:
            if prox_reference is None:
                raise ConfigError("FedProx (prox_mu > 0) needs prox_reference, the global weights")
            import torch

            params = dict(model.named_parameters())
            pairs = [(params[k], prox_reference[k].detach().to(torch.float32)) for k in params]

            def penalty() -> Tensor:
                total = sum(((p.float() - r.to(p.device)) ** 2).sum() for p, r in pairs)
                return (prox_mu / 2.0) * total  # type: ignore[return-value]

        return _fit_private(self, model, x, target, loss_of, epochs=epochs, lr=lr, seed=seed,
                            device=device, throttle=throttle, penalty=penalty)


def _fit_private(account: PrivacyAccount, model: nn.Module, x: Tensor, target: Tensor,
                 loss_of: Callable[[Tensor, Tensor], Tensor], *, epochs: int, lr: float,
                 seed: int, device: str, throttle: Throttle | None,
                 penalty: Callable[[], Tensor] | None) -> TrainStats:
    """The private loop: Poisson batches, per-sample clipping, seeded noise, a fresh Adam."""
    import numpy as np
    import torch
    from opacus.grad_sample import GradSampleModule
    from opacus.optimizers import DPOptimizer

    from chainlearn_ray.learning.threads import synchronize, torch_threads
    from chainlearn_ray.learning.training import (
        TrainStats,
        _batch_format,
        _check_device,
        _rng_scope,
        _to_device,
    )

    n = int(x.shape[0])
    if n != account.n:
        raise DataError(f"the privacy account was planned for {account.n} samples, not {n}")
    dev = _check_device(device)
    # Opacus' per-sample convolution gradients are wrong for channels-last tensors (silently:
    # the model stops learning), so private training keeps the default memory format.
    model.to(dev).to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    channels_last = False
    model.train()
    x_dev, t_dev = _to_device(x, dev), target.to(dev)
    wrapped = GradSampleModule(model, loss_reduction="mean")
    adam = torch.optim.Adam(model.parameters(), lr=lr, foreach=True, fused=False)
    noise_gen = torch.Generator(device=dev).manual_seed((seed + _NOISE_SALT) % 2**63)
    optimizer = DPOptimizer(adam, noise_multiplier=account.noise,
                            max_grad_norm=account.dp.max_grad_norm,
                            expected_batch_size=max(1, round(account.sample_rate * n)),
                            loss_reduction="mean", generator=noise_gen, secure_mode=SECURE_MODE)
    gen = torch.Generator().manual_seed(seed)
    pacer = None
    if throttle is not None:
        from chainlearn_ray.learning.models import ARCH_NAME

        pacer = throttle.training_pacer(getattr(model, ARCH_NAME, None), int(x.shape[-2]),
                                        int(x.shape[-1]))
    per_epoch = math.ceil(1.0 / account.sample_rate)
    samples = steps = 0
    epoch_loss, epoch_seen = torch.zeros((), device=dev), 0
    started = time.perf_counter()
    try:
        with torch_threads(throttle.threads if throttle is not None else None), \
                _rng_scope(seed, dev, model):
            for _ in range(epochs):
                epoch_loss, epoch_seen = torch.zeros((), device=dev), 0
                for _ in range(per_epoch):
                    t0 = time.perf_counter()
                    idx = torch.nonzero(torch.rand(n, generator=gen) < account.sample_rate)[:, 0]
                    account.accountant.step(noise_multiplier=account.noise,
                                            sample_rate=account.sample_rate)
                    steps += 1
                    if idx.numel() == 0:  # an empty Poisson batch: booked, nothing to learn
                        continue
                    batch = idx.to(dev) if dev.type == "cuda" else idx
                    xb = _batch_format(x_dev.index_select(0, batch), channels_last)
                    loss = loss_of(wrapped(xb).float(), t_dev.index_select(0, batch))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if optimizer.pre_step():  # clip, add noise, scale
                        if penalty is not None:
                            extra = torch.autograd.grad(penalty(), list(model.parameters()))
                            for p, g in zip(model.parameters(), extra, strict=True):
                                p.grad = g if p.grad is None else p.grad + g
                        adam.step()
                    epoch_loss += loss.detach() * len(idx)
                    epoch_seen += len(idx)
                    if pacer is not None:
                        synchronize(device)
                        pacer.step(time.perf_counter() - t0, len(idx))
                    samples += len(idx)
    finally:
        wrapped.zero_grad(set_to_none=True)  # per-sample gradients freed
        wrapped.remove_hooks()  # the plain model is scored and averaged as before
    synchronize(device)
    wall = time.perf_counter() - started
    final = float(epoch_loss.item()) / max(epoch_seen, 1) if epochs else float("nan")
    if epochs and not np.isfinite(final):
        raise ModelError(f"private training diverged (loss {final}); lower the learning rate "
                         "or raise train.dp.max_grad_norm")
    return TrainStats(samples, steps, wall,
                      pacer.compute_seconds if pacer is not None else wall,
                      pacer.simulated_seconds if pacer is not None else wall, final,
                      epsilon=account.spent(), delta=account.dp.delta)


def describe(account: PrivacyAccount | None) -> dict[str, Any]:
    """Plain facts of an account for manifests (empty without one)."""
    if account is None:
        return {}
    return {"noise_multiplier": account.noise, "sample_rate": account.sample_rate,
            "planned_steps": account.planned, "target_epsilon": account.dp.epsilon,
            "delta": account.dp.delta, "max_grad_norm": account.dp.max_grad_norm}
