"""Sweeps on Ray Tune: one trial per (dataset, α, seed) cell, results into one Parquet dataset."""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import ray
from ray import tune

from chainlearn_ray.errors import ChainlearnError, ConfigError
from chainlearn_ray.experiment.config import RunConfig
from chainlearn_ray.experiment.grid import Cell
from chainlearn_ray.experiment.study import StudyConfig
from chainlearn_ray.experiment.sweep_plan import (
    SYNTHETIC_FOLDER,
    SweepPlan,
    load_sweep,
    write_synthetic_data,
)
from chainlearn_ray.results.store import (
    append_cell,
    finished_cells,
    write_json_atomic,
)
from chainlearn_ray.runtime.cluster import ensure_ray, stop_ray
from chainlearn_ray.runtime.sweep_cells import (
    cell_identity,
    forget_identity,
    split_finished,
    write_identity,
)
from chainlearn_ray.runtime.sweep_summary import (
    CELLS_FOLDER,
    SWEEP_MANIFEST,
    CellOutcome,
    SweepSummary,
    error_text,
    write_sweep_manifest,
)
from chainlearn_ray.runtime.trials import plan_trials

logger = logging.getLogger(__name__)

__all__ = ["SWEEP_MANIFEST", "SweepSummary", "prepare_sweep", "run_sweep", "select_cells"]

Progress = Callable[[str], None]

class SweepFault(ChainlearnError):
    """An injected trial failure (``sweep.faults``): chaos testing of retries."""


@ray.remote(num_cpus=0)
class _ResultSink:
    """Lives on the driver's node: counts attempts and writes each finished cell atomically."""

    def __init__(self, out_dir: str) -> None:
        self.out = Path(out_dir)
        self.attempts: dict[str, int] = {}

    def begin(self, name: str) -> int:
        self.attempts[name] = self.attempts.get(name, 0) + 1
        return self.attempts[name]

    def store(self, frame: pd.DataFrame, dataset: str, name: str,
              manifest: dict[str, Any] | None, identity: dict[str, Any]) -> str:
        forget_identity(self.out, name)  # the results below replace any earlier ones
        if manifest is not None:
            write_json_atomic(manifest, self.out / CELLS_FOLDER / f"{name}.json")
        path = str(append_cell(frame, self.out, dataset, name))
        write_identity(self.out, name, identity)
        return path

    def attempt_counts(self) -> dict[str, int]:
        return dict(self.attempts)


def _run_cell(cfg: RunConfig, study: StudyConfig, work: Path, say: Progress) -> pd.DataFrame:
    """Every method of one cell (the study engine's cell runner)."""
    from chainlearn_ray.runtime.cell import run_cell

    return run_cell(cfg, study, work, progress=say)


def _trial(config: dict[str, Any], *, cells: Mapping[str, Cell], study: StudyConfig,
           out_dir: str, sink: Any, faults: tuple[str, ...], echo: bool,
           identities: Mapping[str, dict[str, Any]]) -> None:
    """Tune function trainable: run one cell and hand its rows to the sink.

    With ``echo``, the cell's progress lines are printed (Ray forwards them to the driver).
    """
    name = config["cell"]
    cell = cells[name]
    attempt = ray.get(sink.begin.remote(name))
    t0 = time.perf_counter()
    if f"{name}:raise" in faults and attempt == 1:
        raise SweepFault(f"injected failure of cell {name} (attempt {attempt})")
    work = Path(out_dir) / CELLS_FOLDER / name

    def say(message: str) -> None:
        logger.info("%s: %s", name, message)
        if echo:
            print(f"{name}: {message}", flush=True)

    frame = _run_cell(cell.config, study, work, say)
    manifest_file = work / "manifest.json"
    manifest = None
    if manifest_file.is_file():
        import json

        manifest = json.loads(manifest_file.read_text())
    ray.get(sink.store.remote(frame, cell.dataset, name, manifest, identities[name]))
    tune.report({"rows": len(frame), "cell_seconds": time.perf_counter() - t0,
                 "attempt": attempt})


#: A sweep's live counts: cells done, cells in all, failed, running.
Counts = Callable[[int, int, int, int], None]


class _ProgressLines(tune.Callback):
    """Tune callback printing one line per trial event (and, with ``counts``, handing the
    sweep's counts on after each)."""

    def __init__(self, say: Progress, total: int, counts: Counts | None = None) -> None:
        self.say, self.total, self.done, self.failed = say, total, 0, 0
        self.started: dict[str, float] = {}
        self.counts = counts

    def _count(self) -> None:
        if self.counts is not None:
            running = max(0, len(self.started) - self.done)
            self.counts(self.done, self.total, self.failed, running)

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._count()  # keeps the elapsed time and ETA moving between trial events

    def _name(self, trial: Any) -> str:
        return str(trial.config.get("cell", trial.trial_id))

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.started[self._name(trial)] = time.perf_counter()
        self.say(f"[{self.done}/{self.total}] started {self._name(trial)}")
        self._count()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any,
                          **info: Any) -> None:
        self.done += 1
        spent = time.perf_counter() - self.started.get(self._name(trial), time.perf_counter())
        rows = (trial.last_result or {}).get("rows", "?")
        self.say(f"[{self.done}/{self.total}] done {self._name(trial)} in {spent:.1f}s "
                 f"({rows} rows)")
        self._count()

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any,
                         **info: Any) -> None:
        self.say(f"[{self.done}/{self.total}] {self._name(trial)} failed "
                 f"({_trial_error(trial)}); retrying")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.done += 1
        self.failed += 1
        self.say(f"[{self.done}/{self.total}] FAILED {self._name(trial)} ({_trial_error(trial)})")
        self._count()


def _trial_error(trial: Any) -> str:
    """The last line of a trial's latest error, from the error file Tune writes locally."""
    try:
        text = Path(trial.error_file).read_text() if trial.error_file else None
    except Exception:  # the text is a courtesy; a missing file must not stop the sweep
        text = None
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no error text"


def prepare_sweep(path_or_plan: str | Path | SweepPlan, out_dir: str | Path, *,
                  data_dir: str | Path | None = None) -> SweepPlan:
    """Load (or take) the plan of a sweep whose folder is ``out_dir``."""
    if isinstance(path_or_plan, SweepPlan):
        return path_or_plan
    return load_sweep(path_or_plan, Path(out_dir) / SYNTHETIC_FOLDER, data_dir=data_dir)


def check_private_cells(plan: SweepPlan) -> None:
    """Each cell that trains with DP: its ε and δ against its own shards, before any trial
    starts (the cells' synthetic data must be written)."""
    import numpy as np

    from chainlearn_ray.experiment.privacy_config import check_dp_shards, is_private
    from chainlearn_ray.methods import names
    from chainlearn_ray.methods.fedmd import split_public
    from chainlearn_ray.runtime.simulation import load_partitioned

    for cell in plan.cells:
        if not is_private(cell.config):
            continue
        try:
            data, part = load_partitioned(cell.config)
            if names.FEDMD in plan.study.methods:  # FedMD trains on the shards minus its public set
                public = split_public(data.train.labels, plan.study.fedmd_public_fraction,
                                      cell.config.seed)[0]
                try:
                    check_dp_shards(cell.config, [int((~np.isin(np.asarray(i), public)).sum())
                                                  for i in part.indices])
                except ConfigError as exc:
                    raise ConfigError(f"FedMD's shards without its public set: {exc}") from None
        except ConfigError as exc:
            raise ConfigError(f"sweep cell {cell.name}: {exc}") from None


def select_cells(plan: SweepPlan, patterns: Sequence[str] | None) -> SweepPlan:
    """The plan reduced to the cells matching any of the shell ``patterns`` (None: all)."""
    if not patterns:
        return plan
    kept = tuple(c for c in plan.cells if any(fnmatch.fnmatchcase(c.name, p) for p in patterns))
    if not kept:
        raise ConfigError(f"no cell of sweep {plan.name} matches {list(patterns)}; cells are "
                          f"named like {plan.cells[0].name}")
    return dataclasses.replace(plan, cells=kept)


def run_sweep(path_or_config: str | Path | SweepPlan, out_dir: str | Path, *,
              address: str | None = None, max_concurrent: int | None = None,
              resume: bool = True, retries: int = 1, progress: Progress | None = None,
              data_dir: str | Path | None = None,
              cells: Sequence[str] | None = None, counts: Counts | None = None) -> SweepSummary:
    """Run every cell of a sweep as a Ray Tune trial; results land in one Parquet dataset.

    Parameters
    ----------
    path_or_config:
        Experiment YAML file with a ``sweep:`` section, or an expanded :class:`SweepPlan`.
    out_dir:
        Sweep folder: ``results/<dataset>/<cell>.parquet`` (written atomically when a cell
        finishes), ``sweep_manifest.json``, ``cells/`` (per-cell work folders and manifests),
        ``data/`` (synthetic datasets) and ``tune/`` (Tune's experiment state).
    address:
        Ray address (``"auto"`` joins a running cluster); ignored when Ray is already up.
    max_concurrent:
        Trials at once (default: ``sweep.max_concurrent``, else as many as fit the cluster).
    resume:
        Skip cells whose results are already in ``out_dir`` and ran with the config they have
        now (a cell whose config changed is re-run, its results replaced); ``False`` reruns
        them all.
    retries:
        How many times a failed trial is retried (Tune ``FailureConfig.max_failures``).
    progress:
        Receives one line per trial event (default: discard).
    data_dir:
        Folder of real MedMNIST files (overrides ``$CHAINLEARN_DATA`` and the file).
    cells:
        Only the cells whose names match one of these shell patterns (default: every cell).
    counts:
        Receives the live counts (cells done, in all, failed, running) as they change, for a
        progress display.

    Returns
    -------
    SweepSummary
    """
    say = progress or (lambda _m: None)
    if retries < 0:
        raise ConfigError(f"--retries must be >= 0, got {retries}")
    t0 = time.perf_counter()
    out = Path(out_dir).resolve()
    whole = prepare_sweep(path_or_config, out, data_dir=data_dir)
    plan = select_cells(whole, cells)
    out.mkdir(parents=True, exist_ok=True)
    write_synthetic_data(plan)
    check_private_cells(plan)
    done_before, changed = split_finished(out, plan.cells, plan.study)
    if not resume:
        done_before = set()
    elif changed:
        say(f"{len(changed)} finished cell(s) ran with another config than the file's now: "
            f"re-running {', '.join(sorted(changed))}")
    todo = [c for c in plan.cells if c.name not in done_before]
    outcomes = {c.name: CellOutcome(c.name, c.dataset, c.alpha, c.seed,
                                    "skipped" if c.name in done_before else "pending")
                for c in plan.cells}
    say(f"sweep {plan.name}: {len(plan.cells)} cells, {len(plan.cells) - len(todo)} already "
        f"finished, {len(todo)} to run -> {out}")
    started_ray = ensure_ray(address) if todo else False
    summary = SweepSummary(out, plan.name, list(outcomes.values()), 0.0,
                           max_concurrent or plan.grid.max_concurrent or 1)
    interrupted, status = False, "error"
    try:
        if todo:
            k, configs, bundles = plan_trials(plan, todo, max_concurrent or
                                              plan.grid.max_concurrent)
            summary.max_concurrent, summary.trial_bundles = k, bundles
            say(f"{k} trial(s) at once; per trial: {_describe(bundles[todo[0].name])}")
            interrupted = _tune(plan, todo, configs, bundles, k, retries, out, outcomes, say,
                                progress is not None, counts)
        status = "interrupted" if interrupted else "complete"
    except KeyboardInterrupt:
        interrupted, status = True, "interrupted"
        raise
    finally:
        on_disk = finished_cells(out)
        for c in todo:
            o = outcomes[c.name]
            if c.name in on_disk and o.status != "failed":
                o.status = "finished"
        summary.cells = list(outcomes.values())
        summary.seconds = time.perf_counter() - t0
        summary.interrupted = interrupted
        write_sweep_manifest(out, whole, summary, status)
        if started_ray:
            stop_ray()
    return summary


def _describe(bundles: list[dict[str, float]]) -> str:
    total: dict[str, float] = {}
    for b in bundles:
        for k, v in b.items():
            total[k] = total.get(k, 0.0) + v
    parts = ", ".join(f"{k} {v:g}" for k, v in sorted(total.items()))
    return f"{len(bundles)} bundles ({parts}; trial process {bundles[0]})"


def _tune(plan: SweepPlan, todo: list[Cell], configs: dict[str, RunConfig],
          bundles: dict[str, list[dict[str, float]]], k: int, retries: int, out: Path,
          outcomes: dict[str, CellOutcome], say: Progress, echo: bool,
          counts: Counts | None = None) -> bool:
    """Run the trials; fills ``outcomes``; returns True when Tune was interrupted."""
    # the progress lines below replace Tune's own tables and its stack trace per failed
    # attempt (they name the error; the cell's manifest keeps it); either can be set back
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    node = ray.get_runtime_context().get_node_id()
    sink = _ResultSink.options(  # type: ignore[attr-defined]
        scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
            node, soft=False)).remote(str(out))
    cells = {c.name: dataclasses.replace(c, config=configs[c.name]) for c in todo}
    factories = {n: tune.PlacementGroupFactory(b, strategy="PACK") for n, b in bundles.items()}
    trainable = tune.with_resources(
        tune.with_parameters(_trial, cells=cells, study=plan.study, out_dir=str(out), sink=sink,
                             faults=plan.grid.faults, echo=echo,
                             identities={c.name: cell_identity(c, plan.study)
                                         for c in plan.cells if c.name in cells}),
        lambda spec: factories[spec["cell"]],
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"cell": tune.grid_search([c.name for c in todo])},
        tune_config=tune.TuneConfig(max_concurrent_trials=k, reuse_actors=False),
        run_config=tune.RunConfig(
            name=f"{plan.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(out / "tune"),
            failure_config=tune.FailureConfig(max_failures=retries),
            verbose=0, callbacks=[_ProgressLines(say, len(todo), counts)],
        ),
    )
    quiet = _NoRestoreHint()  # on Ctrl-C the command prints the `chainlearn sweep` to resume
    tune_logger = logging.getLogger("ray.tune.tune")
    tune_logger.addFilter(quiet)
    try:
        grid = tuner.fit()
        attempts = ray.get(sink.attempt_counts.remote())
        for i in range(len(grid)):
            result = grid[i]
            name = (result.config or {}).get("cell")
            if name not in outcomes:
                continue
            o = outcomes[name]
            o.attempts = attempts.get(name, 0)
            metrics = result.metrics or {}
            o.seconds = metrics.get("cell_seconds")
            if result.error is not None:
                o.status, o.error = "failed", error_text(result.error)
        # a cell neither stored nor failed was stopped by Ctrl-C (Tune returns early then)
        on_disk = finished_cells(out)
        return any(n not in on_disk and outcomes[n].error is None for n in cells)
    finally:
        tune_logger.removeFilter(quiet)
        ray.kill(sink)


class _NoRestoreHint(logging.Filter):
    """Drops Tune's "Resume experiment with: Tuner.restore(...)" and its stop-signal notice:
    a sweep resumes by running the same ``chainlearn sweep`` command again."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return "Tuner.restore(" not in text and "Stop signal received" not in text
