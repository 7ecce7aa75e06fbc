"""What the audit adds to a trust-mode round's wall time: Ours in trust mode with and without
the auditor, in this process on the embedded chain, tiny CNNs on CPU.

Runs alternate (audited, not audited, audited, ...) so both see the same load on a shared
machine; each run's rounds after the first are steady rounds. Prints every round's wall time
and the medians, and the audit's share.

Usage::

    python benchmarks/bench_audit.py --hospitals 10 --pairs 3
    python benchmarks/bench_audit.py --data-dir /work/shared/data --dataset pneumoniamnist
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from chainlearn_ray.experiment.loading import load_config
from chainlearn_ray.experiment.trust_method import ours_trust_for
from chainlearn_ray.experiment.trust_settings import trust_config_of
from chainlearn_ray.methods.trust_contract import TrustContractPort
from chainlearn_ray.planning.placement import hospital_specs
from chainlearn_ray.runtime.sequential import run_ours_sequential
from chainlearn_ray.runtime.simulation import load_partitioned


def _config(args: argparse.Namespace) -> object:
    n = args.hospitals
    mix = f"weak:{n - 2 * (n // 3)},medium:{n // 3},strong:{n // 3}"
    return load_config(None, {
        "hospitals": mix, "data.dataset": args.dataset, "data.data_dir": args.data_dir,
        "data.download": False, "train.rounds": args.rounds, "train.epochs": 1,
        "tiers.weak.arch": "tiny_cnn:4", "tiers.medium.arch": "tiny_cnn:4",
        "tiers.strong.arch": "tiny_cnn:4", "chain.mode": "trust", "poc.steps": 10,
        "poc.warmup": 2, "poc.weak_below": 25.0, "poc.medium_below": 75.0,
        "tiers.weak.target_throughput": 12.0, "tiers.medium.target_throughput": 40.0,
        "tiers.strong.target_throughput": 150.0})


def _run(cfg: object, data: object, part: object, audited: bool
         ) -> tuple[list[float], list[float]]:
    hardware = {s.hospital_id: s.hardware_tier.label
                for s in hospital_specs(cfg, data)}  # type: ignore[arg-type]
    port = TrustContractPort.open_trust("embedded", trust_config_of(cfg))  # type: ignore[arg-type]
    try:
        extra = {} if audited else {"audit": None}
        method = ours_trust_for(cfg, hardware, data, **extra)  # type: ignore[arg-type]
        run = run_ours_sequential(cfg, data, part, port, method=method)  # type: ignore[arg-type]
    finally:
        port.close()
    audit = [method.ledger.audit_seconds.get(o.round, 0.0) for o in run.outcomes]
    return [o.round_seconds for o in run.outcomes], audit


def main() -> None:
    """Run the pairs and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hospitals", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dataset", default="pneumoniamnist")
    parser.add_argument("--data-dir", default="/work/shared/data")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    cfg = _config(args)
    data, part = load_partitioned(cfg)  # type: ignore[arg-type]
    steady: dict[bool, list[float]] = {True: [], False: []}
    shares: list[float] = []
    started = time.perf_counter()
    for pair in range(args.pairs):
        for audited in ((True, False) if pair % 2 == 0 else (False, True)):
            seconds, audit = _run(cfg, data, part, audited)
            steady[audited].extend(seconds[1:])
            if audited:
                shares.extend(a / s for a, s in zip(audit[1:], seconds[1:], strict=True))
            print(f"pair {pair} {'audit   ' if audited else 'no audit'} rounds "
                  f"{', '.join(f'{s:.3f}' for s in seconds)} s", flush=True)
    with_audit, without = (statistics.median(steady[a]) for a in (True, False))
    print(f"median steady round: {with_audit:.3f} s with the audit, {without:.3f} s without: "
          f"+{100 * (with_audit / without - 1):.1f} % ({len(steady[True])} rounds each; "
          f"{time.perf_counter() - started:.0f} s in all)")
    print(f"median share of the audit phase in an audited round: "
          f"{100 * statistics.median(shares):.1f} %")


if __name__ == "__main__":
    main()
