"""The Proof-of-Capacity benchmark (SPEC.md §2): timed SGD steps of a small CNN on a fixed batch.

``warmup`` untimed steps, then ``steps`` (K) timed ones at batch ``batch_size`` (B), the device
synchronised before each clock read; throughput = K·B / seconds. A hardware profile's throttle
(:mod:`chainlearn_ray.learning.hardware`) paces it; :mod:`chainlearn_ray.protocol.poc` turns
the result into a tier and a benchmark hash.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from chainlearn_ray.errors import ConfigError, ResourceError
from chainlearn_ray.learning.rng import seeded
from chainlearn_ray.learning.threads import synchronize, torch_threads
from chainlearn_ray.protocol.poc import PoCResult, benchmark_hash, classify
from chainlearn_ray.protocol.tiers import MEDIUM_BELOW, WEAK_BELOW

if TYPE_CHECKING:
    from torch import nn

    from chainlearn_ray.learning.hardware import Throttle


def _poc_network() -> nn.Module:
    """The PoC's small CNN: two conv-ReLU-pool blocks and a linear layer, 3×32×32 → 10."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    )


def run_benchmark(
    *,
    steps: int = 50,
    warmup: int = 5,
    batch_size: int = 16,
    device: str = "cpu",
    seed: int = 0,
    throttle: Throttle | None = None,
    weak_below: float = WEAK_BELOW,
    medium_below: float = MEDIUM_BELOW,
    threads: int | None = None,
) -> PoCResult:
    """Run the Proof-of-Capacity benchmark.

    A small CNN (:func:`_poc_network`, seeded) and a fixed random batch of ``batch_size``
    3×32×32 images with 10-class labels, both in channels-last memory format; ``warmup``
    untimed SGD steps (lr 0.01), then ``steps`` timed ones, synchronising the device before
    every clock read.

    Parameters
    ----------
    steps, warmup, batch_size:
        K timed steps, warm-up steps, batch B.
    device:
        torch device.
    seed:
        Seeds the network and the batch.
    throttle:
        Hardware throttle: caps the throughput at the profile's target (see
        :mod:`chainlearn_ray.learning.hardware`; on the cost-model clock the result is the
        target exactly); its profile's threads are used.
    weak_below, medium_below:
        Tier thresholds in samples/s.
    threads:
        torch threads when no throttle is given (``None``: unchanged).

    Returns
    -------
    PoCResult
    """
    if steps < 1 or warmup < 0 or batch_size < 1:
        raise ConfigError(f"PoC needs steps >= 1, warmup >= 0, batch_size >= 1; got {steps}, "
                          f"{warmup}, {batch_size}")
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ResourceError(f"PoC device {device!r} asked for, but CUDA is not available: "
                            "use device 'cpu' or run on a GPU node")
    pacer = throttle.benchmark_pacer() if throttle is not None else None
    rng_devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with seeded(seed, rng_devices):  # the timed steps below draw nothing
        gen = torch.Generator().manual_seed(seed)
        # channels-last, as local training runs: a third faster on CPU than the default format
        net = _poc_network().to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        x = torch.randn(batch_size, 3, 32, 32, generator=gen).to(
            device, memory_format=torch.channels_last)
        y = torch.randint(0, 10, (batch_size,), generator=gen).to(device)
    with torch_threads(throttle.threads if throttle is not None else threads):
        loss_fn = torch.nn.CrossEntropyLoss()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01)

        def one_step() -> None:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(net(x), y).backward()
            optimizer.step()

        for _ in range(warmup):
            one_step()
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            t0 = time.perf_counter()
            one_step()
            if pacer is not None:
                synchronize(device)
                pacer.step(time.perf_counter() - t0, batch_size)
        synchronize(device)
        wall = time.perf_counter() - start
    compute = pacer.compute_seconds if pacer is not None else wall
    # the simulated clock, unless a measured throttle really slept (then wall time is the truth)
    clocked = pacer is not None and (pacer.mode == "virtual" or pacer.priced)
    seconds = pacer.simulated_seconds if pacer is not None and clocked else wall
    throughput = steps * batch_size / seconds
    tier = classify(throughput, weak_below, medium_below)
    return PoCResult(throughput, steps, batch_size, seconds, tier,
                     benchmark_hash(throughput, steps, batch_size, tier), compute)
