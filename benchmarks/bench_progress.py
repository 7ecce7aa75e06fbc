"""What the live progress display costs a round: the same run with and without it.

The same job twice in turn (tiny CNNs on the real PneumoniaMNIST file, N hospitals, R rounds):
once as ``chainlearn run -q`` runs it (no events), once as ``chainlearn run`` on a terminal runs
it (events drained from the progress board every 0.25 s and drawn by rich into a terminal
console that writes to memory). One Ray session serves every run; the pairs alternate so both
see the same load. Reports the median round wall time of each and the overhead.

Usage::

    python benchmarks/bench_progress.py --data-dir ../shared/data --hospitals 6 --rounds 4
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _config(args: argparse.Namespace) -> Any:
    from chainlearn_ray.experiment.loading import load_config

    return load_config(None, {
        "data.dataset": "pneumoniamnist", "data.data_dir": args.data_dir,
        "data.download": False, "hospitals": args.hospitals, "train.rounds": args.rounds,
        "train.epochs": args.epochs, "tiers.weak.arch": args.arch,
        "tiers.medium.arch": args.arch, "tiers.strong.arch": args.arch,
    })


def one_run(cfg: Any, out: Path, live: bool) -> tuple[list[float], float, int]:
    """Round wall times of one run with the live display or without, the CPU seconds of this
    (the driving) process, and the events it drew."""
    from rich.console import Console

    from chainlearn_ray.commands.live import RunDisplay
    from chainlearn_ray.runtime.simulation import run_simulation

    cpu = time.process_time()
    seen = [0]
    if not live:
        summary = run_simulation(cfg, out)
    else:
        console = Console(file=io.StringIO(), force_terminal=True, width=120)
        with RunDisplay(cfg.train.rounds, console) as display:
            def event(ev: Any) -> None:
                seen[0] += 1
                display.event(ev)

            summary = run_simulation(cfg, out, progress=display.say, events=event)
    return [o.round_seconds for o in summary.rounds], time.process_time() - cpu, seen[0]


def post_cost(n: int = 2000) -> float:
    """Seconds one fire-and-forget post to the progress board costs its caller."""
    import ray

    from chainlearn_ray.runtime.progress import ProgressBoard, RunEvent

    board = ProgressBoard.remote()  # type: ignore[attr-defined]
    ray.get(board.drain.remote())
    t0 = time.perf_counter()
    for i in range(n):
        board.post.remote(RunEvent("step", 1, {"hospital": f"h{i % 50:02d}", "phase": "train"}))
    spent = (time.perf_counter() - t0) / n
    ray.get(board.drain.remote())
    ray.kill(board)
    return spent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--hospitals", type=int, default=6)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--arch", default="tiny_cnn:16")
    p.add_argument("--pairs", type=int, default=3)
    args = p.parse_args()
    from chainlearn_ray.runtime.cluster import ensure_ray, stop_ray

    cfg = _config(args)
    started = ensure_ray(None)
    plain: list[float] = []
    live: list[float] = []
    cpu = {False: 0.0, True: 0.0}
    events = 0
    t0 = time.perf_counter()
    try:
        per_post = post_cost()
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.pairs):
                for mode in ((False, True) if i % 2 == 0 else (True, False)):
                    rounds, spent, seen = one_run(cfg, Path(tmp) / f"{i}-{mode}", mode)
                    (live if mode else plain).extend(rounds[1:])  # round 1 overlaps set-up
                    cpu[mode] += spent
                    events += seen
    finally:
        if started:
            stop_ray()
    a, b = statistics.median(plain), statistics.median(live)
    n_rounds = args.pairs * args.rounds
    per_round_events = events / (args.pairs * (args.rounds + 1))  # set-up included
    added = (cpu[True] - cpu[False]) / n_rounds + per_round_events * per_post
    print(f"{args.hospitals} hospitals x {args.rounds} rounds, {args.pairs} pairs, "
          f"{time.perf_counter() - t0:.0f}s in all")
    print(f"median round wall time: without display {a:.3f}s, with display {b:.3f}s "
          f"({100 * (b - a) / a:+.1f} %, machine load included); means "
          f"{statistics.mean(plain):.3f}s / {statistics.mean(live):.3f}s over {len(plain)} / "
          f"{len(live)} rounds")
    print(f"direct cost: {per_round_events:.0f} events a round x {1e6 * per_post:.0f} us a post "
          f"in the coordinator, driving process CPU {cpu[False] / n_rounds:.3f}s -> "
          f"{cpu[True] / n_rounds:.3f}s a round: {added:.3f}s a round = "
          f"{100 * added / a:.1f} % of the median round")


if __name__ == "__main__":
    main()
