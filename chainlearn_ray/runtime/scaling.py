"""Scaling study on Ray: one full run per number of hospitals, its per-round cost and memory."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import ray

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.config import RunConfig, replace
from chainlearn_ray.protocol.tiers import TIERS, Tier
from chainlearn_ray.results.manifest import build_manifest
from chainlearn_ray.results.scaling_report import scaling_frame, scaling_rows, write_scaling
from chainlearn_ray.results.store import write_json_atomic
from chainlearn_ray.runtime.cluster import ensure_ray, stop_ray
from chainlearn_ray.runtime.simulation import Progress, RunSummary, run_id_for, run_simulation

logger = logging.getLogger(__name__)

#: Hospital counts of the default scaling study (issue #6).
DEFAULT_SIZES: tuple[int, ...] = (3, 6, 12, 24, 48)


def used_memory_bytes() -> int:
    """System memory in use now: ``MemTotal - MemAvailable`` of ``/proc/meminfo``, in bytes."""
    info: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("MemTotal", "MemAvailable"):
            info[name] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids of every process visible in ``/proc``."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # the command name (field 2) may hold spaces: parse after its closing parenthesis
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_pss_bytes(root: int | None = None) -> int:
    """Proportional set size of process ``root`` (default: this one) and all its descendants.

    Shared pages (torch libraries, the object store) are split among the processes that map
    them, so the sum is what this process tree costs the machine, whoever else runs there.
    Local Ray started by this process (raylet, workers) is in the tree; a cluster's is not.
    """
    tree = _children()
    todo, total = [root if root is not None else os.getpid()], 0
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, ()))
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
                break
    return total


class MemorySampler:
    """Peak memory during a block, sampled in a thread.

    ``peak`` (bytes): system memory in use (``MemTotal - MemAvailable``) above the level at
    construction; it counts every process of the machine. ``peak_tree`` (bytes): the largest
    :func:`tree_pss_bytes` of this process and its descendants (local Ray included), which
    other users of the machine do not disturb. Both are valid after the block.
    """

    def __init__(self, every: float = 0.25) -> None:
        self.every, self.base, self.peak, self.peak_tree = every, used_memory_bytes(), 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def sample(self) -> None:
        """Take one sample now."""
        self.peak = max(self.peak, used_memory_bytes() - self.base)
        self.peak_tree = max(self.peak_tree, tree_pss_bytes())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class Placement:
    """Where one hospital runs: its actor (by name), the actor's process and Ray node."""

    hospital_id: str
    actor: str
    node_id: str
    pid: int


class PlacementProbe:
    """A progress callback that records, when the first round starts, where hospitals run.

    It finds the run's named hospital actors (``chainlearn-<run_id>-<first hospital>``), asks
    each which hospitals it hosts, its process id and its node, then forwards every message.

    Parameters
    ----------
    cfg:
        The configuration the run is started with (it names the run and its hospitals).
    forward:
        Progress callback that receives every message (default: discard).
    """

    def __init__(self, cfg: RunConfig, forward: Progress | None = None) -> None:
        self.run_id = run_id_for(cfg)
        self.hospital_ids = [f"h{i:02d}" for i in range(cfg.n_hospitals)]
        self.forward = forward
        self.placements: dict[str, Placement] = {}
        self.cluster: dict[str, float] = {}
        self.nodes: dict[str, dict[str, float]] = {}

    def __call__(self, message: str) -> None:
        """Forward ``message``; on the first round's announcement, look the actors up."""
        if not self.placements and message.startswith("round "):
            self.capture()
        if self.forward is not None:
            self.forward(message)

    def capture(self) -> dict[str, Placement]:
        """Look up every hospital's actor now (the actors must exist)."""
        found: dict[str, Placement] = {}
        for hid in self.hospital_ids:
            if hid in found:
                continue
            name = f"chainlearn-{self.run_id}-{hid}"
            try:
                actor = ray.get_actor(name)
            except ValueError:  # not the first hospital of its actor: found through the first
                continue
            answers: list[Any] = ray.get(
                [actor.ping.remote(), actor.node_id.remote(), actor.pid.remote()], timeout=60
            )
            hosted, node, pid = answers
            for ident in hosted:
                found[ident["hospital_id"]] = Placement(ident["hospital_id"], name, node, pid)
        missing = sorted(set(self.hospital_ids) - set(found))
        if missing:
            logger.warning("no actor found for hospitals %s of run %s", missing, self.run_id)
        self.placements = found
        self.cluster = {k: float(v) for k, v in ray.cluster_resources().items()}
        self.nodes = {str(n["NodeID"]): {k: float(v) for k, v in n["Resources"].items()}
                      for n in ray.nodes() if n.get("Alive")}
        return found

    def groups(self) -> list[list[str]]:
        """Hospital ids per actor process, in order of first hospital."""
        by_actor: dict[str, list[str]] = {}
        for hid in sorted(self.placements):
            by_actor.setdefault(self.placements[hid].actor, []).append(hid)
        return list(by_actor.values())


def parse_sizes(text: str) -> list[int]:
    """``"3,6,12"`` → ``[3, 6, 12]`` (sorted, unique, each at least 1)."""
    try:
        sizes = sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise ConfigError(f"--hospitals {text!r} must be numbers separated by commas, "
                          "e.g. 3,6,12,24,48") from None
    if not sizes or sizes[0] < 1:
        raise ConfigError(f"--hospitals {text!r} needs at least one count, each >= 1")
    return sizes


def parse_mix(text: str | Mapping[str, Any]) -> dict[str, float]:
    """Tier shares from ``"weak:1,medium:1,strong:2"`` (or a mapping); missing tiers get 0."""
    items: list[tuple[str, Any]]
    if isinstance(text, Mapping):
        items = list(text.items())
    else:
        items = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, share = part.partition(":")
            if not sep:
                raise ConfigError(f"--mix entry {part!r} must look like weak:1")
            items.append((name, share))
    mix = {t.label: 0.0 for t in TIERS}
    for name, share in items:
        try:
            value = float(share)
        except (TypeError, ValueError):
            raise ConfigError(f"--mix share {share!r} of {name} is not a number") from None
        if value < 0:
            raise ConfigError(f"--mix share of {name} cannot be negative")
        mix[Tier.parse(str(name)).label] = value
    if sum(mix.values()) <= 0:
        raise ConfigError("--mix needs a positive share for at least one tier, e.g. weak:1")
    return mix


def split_by_mix(n: int, mix: Mapping[str, float]) -> dict[str, int]:
    """``n`` hospitals over the tiers in proportion to ``mix`` (largest remainders, tier order)."""
    total = sum(mix.values())
    exact = {label: n * mix.get(label, 0.0) / total for label in (t.label for t in TIERS)}
    counts = {label: int(x) for label, x in exact.items()}
    order = sorted(exact, key=lambda lab: -(exact[lab] - counts[lab]))
    for label in order[: n - sum(counts.values())]:
        counts[label] += 1
    return counts


def config_for_size(cfg: RunConfig, n: int, mix: Mapping[str, float]) -> RunConfig:
    """``cfg`` with ``n`` hospitals split by ``mix`` and a name that says ``n``."""
    return replace(cfg, hospitals=split_by_mix(n, mix), name=f"{cfg.name}-n{n}")


@dataclass
class ScalingResult:
    """What a finished scaling study returns."""

    out_dir: Path
    frame: pd.DataFrame
    runs: dict[int, RunSummary] = field(default_factory=dict)
    placements: dict[int, dict[str, Placement]] = field(default_factory=dict)


def run_scaling(cfg: RunConfig, sizes: Sequence[int], mix: Mapping[str, float],
                out_dir: str | Path, *, progress: Progress | None = None) -> ScalingResult:
    """One full federated run per hospital count; per-round cost rows in ``scaling.parquet``.

    Parameters
    ----------
    cfg:
        Base configuration (models, rounds, packing, chain); its hospital counts are replaced.
    sizes:
        Hospital counts to run, e.g. ``[3, 6, 12, 24, 48]``.
    mix:
        Tier shares (see :func:`parse_mix`).
    out_dir:
        Results folder: ``scaling.parquet`` and ``manifest.json`` (rewritten after each size)
        and each size's own run under ``n<N>/``.

    Ray is started once for the whole study (or joined at ``cfg.runtime.address``), so each
    size's peak memory is measured above the same idle-cluster level.
    progress:
        Receives human-readable progress lines.

    Returns
    -------
    ScalingResult
        The tidy frame (columns n_hospitals, round, metric, value) and each run's summary.
    """
    say = progress or (lambda _msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = ScalingResult(out, scaling_frame([]))
    rows: list[dict[str, Any]] = []
    finished: dict[str, Any] = {}
    # one Ray for the whole study: every size starts from the same idle cluster, and the
    # memory of each run is measured above that level
    started_ray = ensure_ray(cfg.runtime.address)
    try:
        for n in sorted(set(sizes)):
            cfg_n = config_for_size(cfg, n, mix)
            say(f"== {n} hospitals ({', '.join(f'{k} {v}' for k, v in cfg_n.hospitals.items())})")
            probe = PlacementProbe(cfg_n, progress)
            t0 = time.perf_counter()
            with MemorySampler() as memory:
                # what a round costs: round 1 inside its own wall time, not in registration
                summary = run_simulation(cfg_n, out / f"n{n:03d}", progress=probe,
                                         first_round_early=False, existing="overwrite")
            rows.extend(scaling_rows(n, summary.rounds, probe.groups(), peak_memory=memory.peak,
                                     peak_tree_memory=memory.peak_tree,
                                     timings=summary.timings,
                                     registrations=summary.registrations))
            result.runs[n], result.placements[n] = summary, dict(probe.placements)
            result.frame = scaling_frame(rows)
            write_scaling(result.frame, out / "scaling.parquet")
            finished[str(n)] = {"run_id": summary.run_id, "folder": f"n{n:03d}",
                                "hospitals": dict(cfg_n.hospitals),
                                "actors": len(probe.groups()),
                                "nodes": len({p.node_id for p in probe.placements.values()}),
                                "seconds": time.perf_counter() - t0}
            write_json_atomic(_manifest(cfg, sizes, mix, finished, probe.cluster),
                              out / "manifest.json")
            say(f"   {n} hospitals done in {finished[str(n)]['seconds']:.1f}s, peak memory "
                f"{memory.peak / 2**30:.2f} GiB (machine), {memory.peak_tree / 2**30:.2f} GiB "
                "(this process tree)")
    finally:
        if started_ray:
            stop_ray()
    return result


def _manifest(cfg: RunConfig, sizes: Sequence[int], mix: Mapping[str, float],
              finished: Mapping[str, Any], cluster: Mapping[str, float]) -> dict[str, Any]:
    done = len(finished) == len(set(sizes))
    return build_manifest(
        cfg.to_dict(), kind="scaling", status="complete" if done else "running",
        sizes=sorted(set(sizes)), mix=dict(mix), runs=dict(finished),
        cluster=cluster,
    )

