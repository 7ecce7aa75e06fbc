"""Measuring a cost table on this machine (the ``calibrate`` cost model), cached per machine.

Costs are CPU time of one thread (``time.thread_time``), the best of a few repetitions, so a
busy machine inflates them less than wall time would; still, measure on a quiet machine when
the numbers matter. The cache (``~/.cache/chainlearn/cost-model-<key>.json`` on Linux) is keyed
by host name, CPU model, torch version and torch threads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from chainlearn_ray.learning.cost import POC_KEY, REFERENCE_SIDE, CostModel, cost_key

logger = logging.getLogger(__name__)

#: Version of the calibration cache's format.
_CACHE_VERSION = 1


def _best_cpu_seconds(run: Callable[[], Any], repeats: int) -> float:
    """Least CPU time of this thread over ``repeats`` calls of ``run``."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.thread_time()
        run()
        best = min(best, time.thread_time() - t0)
    return best


def measure_seconds_per_sample(arch: str, *, side: int = REFERENCE_SIDE, in_channels: int = 1,
                               n_classes: int = 2, samples: int = 128, batch_size: int = 32,
                               repeats: int = 3, threads: int = 1, seed: int = 0) -> float:
    """Training seconds per sample of ``arch`` on this machine, in CPU time of one thread.

    Trains on random ``samples`` images with :func:`chainlearn_ray.learning.training.train`
    (batch ``batch_size``); the per-sample cost is the best CPU time of a two-epoch run minus
    that of a one-epoch run, so model set-up does not count.
    """
    import torch

    from chainlearn_ray.learning.models import build_model
    from chainlearn_ray.learning.threads import torch_threads
    from chainlearn_ray.learning.training import train

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, in_channels, side, side, generator=gen)
    y = torch.randint(0, n_classes, (samples,), generator=gen)
    model = build_model(arch, n_classes, in_channels, seed=seed)
    with torch_threads(threads):
        train(model, x, y, epochs=1, batch_size=batch_size, seed=seed)  # warm-up

        def epochs(n: int) -> Callable[[], Any]:
            return lambda: train(model, x, y, epochs=n, batch_size=batch_size, seed=seed)

        one = _best_cpu_seconds(epochs(1), repeats)
        two = _best_cpu_seconds(epochs(2), repeats)
    per_sample = (two - one) / samples
    if not per_sample > 0:  # timer granularity on a tiny model: fall back to the whole run
        per_sample = two / (2 * samples)
    return per_sample


def measure_poc_throughput(*, steps: int = 50, warmup: int = 5, batch_size: int = 16,
                           repeats: int = 3, threads: int = 1) -> float:
    """This machine's unthrottled PoC throughput (samples/s) in CPU time of one thread.

    The best CPU time of a ``2·steps`` benchmark minus that of a ``steps`` one covers
    ``steps`` timed steps without set-up.
    """
    from chainlearn_ray.learning.benchmark import run_benchmark

    def bench(k: int) -> Callable[[], Any]:
        return lambda: run_benchmark(steps=k, warmup=warmup, batch_size=batch_size,
                                     threads=threads)

    bench(steps)()  # warm-up
    short = _best_cpu_seconds(bench(steps), repeats)
    long = _best_cpu_seconds(bench(2 * steps), repeats)
    seconds = long - short
    if not seconds > 0:
        seconds = long / 2
    return steps * batch_size / seconds


def measure_cost_model(archs: Iterable[str], *, sides: Iterable[int] = (REFERENCE_SIDE,),
                       threads: int = 1, repeats: int = 3, poc_steps: int = 50,
                       poc_batch_size: int = 16) -> CostModel:
    """Measure a cost table for ``archs`` at ``sides`` px and the PoC throughput here."""
    costs = {cost_key(arch, side): measure_seconds_per_sample(arch, side=side, threads=threads,
                                                              repeats=repeats)
             for arch in dict.fromkeys(archs) for side in dict.fromkeys(sides)}
    poc = measure_poc_throughput(steps=poc_steps, batch_size=poc_batch_size, repeats=repeats,
                                 threads=threads)
    return CostModel(costs, poc, "calibrated", machine_key(threads))


# ---------------------------------------------------------------------------- calibration cache


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key(threads: int = 1) -> dict[str, Any]:
    """What a calibrated table depends on: host, CPU model, torch version, torch threads."""
    try:
        from importlib.metadata import version

        torch_version = version("torch")
    except Exception:  # pragma: no cover - torch is a dependency
        torch_version = "unknown"
    return {"hostname": socket.gethostname(), "cpu": _cpu_model(), "torch": torch_version,
            "threads": int(threads)}


def default_cache_dir() -> Path:
    """Per-user cache folder of calibrated tables (``~/.cache/chainlearn`` on Linux)."""
    from chainlearn_ray.data.medmnist import user_cache_dir

    return user_cache_dir()


def cache_path(key: Mapping[str, Any], cache_dir: str | Path | None = None) -> Path:
    """The cache file of the table measured on machine ``key``."""
    digest = hashlib.sha256(json.dumps(dict(key), sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir or default_cache_dir()) / f"cost-model-{digest}.json"


def calibrated_cost_model(archs: Iterable[str], *, sides: Iterable[int] = (REFERENCE_SIDE,),
                          threads: int = 1, cache_dir: str | Path | None = None,
                          repeats: int = 3) -> CostModel:
    """This machine's cost table for ``archs`` at ``sides`` px (28 px always): read from the
    cache, measuring (and caching) only what is not there yet."""
    wanted = {cost_key(arch, side): (arch, side) for arch in dict.fromkeys(archs)
              for side in dict.fromkeys([REFERENCE_SIDE, *sides])}
    key = machine_key(threads)
    path = cache_path(key, cache_dir)
    costs: dict[str, float] = {}
    poc: float | None = None
    if path.is_file():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if cached.get("version") == _CACHE_VERSION and cached.get("machine") == key:
                costs = {str(k): float(v) for k, v in cached["seconds_per_sample"].items()}
                poc = float(cached[POC_KEY])
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("ignoring unreadable cost-model cache %s", path)
    missing = [k for k in wanted if k not in costs]
    if missing or poc is None:
        logger.info("calibrating the cost model on this machine for %s (cached in %s)",
                    ", ".join(missing) or "the PoC", path)
        for k in missing:
            arch, side = wanted[k]
            costs[k] = measure_seconds_per_sample(arch, side=side, threads=threads,
                                                  repeats=repeats)
        if poc is None:
            poc = measure_poc_throughput(threads=threads, repeats=repeats)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"version": _CACHE_VERSION, "machine": key,
                                   "seconds_per_sample": costs, POC_KEY: poc},
                                  indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    return CostModel({k: costs[k] for k in wanted} if wanted else costs, poc, "calibrated", key)
