"""Time the coordinator's share of each hospital submission and report the contract's round gas.

For every submission the coordinator prepares the unsigned transaction (encode, nonce, gas
estimate, fees) and relays the hospital-signed bytes (send, receipt); the hospital's signing is
timed apart. Wall time and the process's CPU time are both reported: on a shared machine the
CPU time is the steadier figure.

``--mode trust`` times the trust mode's hospital transactions instead (commit, reveal; the
median over all of them, with the stake deposits and withdrawals) and reports its round gas.

Usage::

    python benchmarks/bench_gas.py                       # embedded chain, 3 hospitals, 10 rounds
    python benchmarks/bench_gas.py --chain anvil --hospitals 10 --rounds 5
    python benchmarks/bench_gas.py --mode trust
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time


def _quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"median {statistics.median(ordered):6.1f}  p90 {p90:6.1f}  min {ordered[0]:6.1f}"


def main() -> None:
    """Run the timing loop and print one line per measured quantity."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", default="embedded", choices=["embedded", "anvil"])
    parser.add_argument("--hospitals", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--mode", default="seed", choices=["seed", "trust"])
    args = parser.parse_args()
    if args.mode == "trust":
        _trust(args)
        return

    from chainlearn_ray.chain.backends import connect
    from chainlearn_ray.chain.client import FLCoordinatorClient
    from chainlearn_ray.chain.gas import measurement_hospitals
    from chainlearn_ray.chain.statements import sign_poc
    from chainlearn_ray.chain.tx import encode_submit_update, sign_transaction
    from chainlearn_ray.protocol.poc import benchmark_hash

    wall: list[float] = []
    cpu: list[float] = []
    signing: list[float] = []
    round_gas: list[int] = []
    with connect(args.chain) as conn:
        client = FLCoordinatorClient.deploy(conn)
        members = measurement_hospitals(args.hospitals, seed=1)
        conn.fund_many([account.address for account, _ in members], 10**18)
        for account, tier in members:
            bench = benchmark_hash(100.0, 50, 16, tier)
            sig = sign_poc(account.key, tier, bench, client.chain_id, client.address, name="bench")
            client.register_hospital(account.address, "bench", tier, bench, sig)
        for rnd in range(args.rounds):
            gas = client.start_round().gas_used
            for i, (account, tier) in enumerate(members):
                model_hash = hashlib.sha256(f"{rnd}-{i}".encode()).digest()
                w0, c0 = time.perf_counter(), time.process_time()
                tx = client.prepare_submit_update(
                    account.address, model_hash, 9000, 1000, tier.model_type
                )
                w1, c1 = time.perf_counter(), time.process_time()
                data = encode_submit_update(model_hash, 9000, 1000, tier.model_type)
                raw = sign_transaction(tx, account.key, expected_data=data)
                w2, c2 = time.perf_counter(), time.process_time()
                gas += client.send_raw(raw).gas_used
                w3, c3 = time.perf_counter(), time.process_time()
                wall.append(1e3 * ((w1 - w0) + (w3 - w2)))
                cpu.append(1e3 * ((c1 - c0) + (c3 - c2)))
                signing.append(1e3 * (w2 - w1))
            prediction = hashlib.sha256(bytes([rnd % 256])).digest()
            gas += client.record_ensemble(prediction, len(members)).gas_used
            round_gas.append(gas)
    print(f"chain {args.chain}, {args.hospitals} hospitals, {args.rounds} rounds")
    print(f"coordinator wall ms per submission: {_quantiles(wall)}")
    print(f"coordinator CPU ms per submission:  {_quantiles(cpu)}")
    print(f"hospital signing ms:                {_quantiles(signing)}")
    print(f"round gas (first, last): {round_gas[0]:,} {round_gas[-1]:,}")


def _trust(args: argparse.Namespace) -> None:
    """Trust mode: the coordinator's median time per relayed hospital transaction, round gas."""
    from chainlearn_ray.chain.backends import connect
    from chainlearn_ray.chain.trust_gas import measure_trust_gas

    with connect(args.chain) as conn:
        report = measure_trust_gas(conn, hospitals=args.hospitals, rounds=args.rounds, seed=1)
    print(f"chain {args.chain}, trust mode, {args.hospitals} hospitals, {args.rounds} rounds")
    print(f"coordinator wall ms per hospital transaction (median): "
          f"{report.coordinator_ms_per_submission:.1f}")
    print(f"round gas (first, last): {report.round_total_first:,} {report.round_total_steady:,}")


if __name__ == "__main__":
    main()
