"""CoordinatorActor: owns the chain connection and the owner key; runs each round's lifecycle."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from chainlearn_ray.errors import ChainlearnError
from chainlearn_ray.protocol.rounds import (
    ABSENT,
    ATTENDED,
    FAILED,
    LATE,
    TIMED_OUT,
    HospitalRound,
    RoundOutcome,
    missed_deadline,
)
from chainlearn_ray.protocol.tiers import Tier

logger = logging.getLogger(__name__)

#: Ether given to each hospital account for its own gas.
HOSPITAL_FUNDING_WEI = 10**18


@ray.remote(max_restarts=0)
class CoordinatorActor:
    """The only holder of a Web3 object; relays hospitals' signed transactions.

    Parameters
    ----------
    backend, rpc_url, contract:
        Chain selection (``embedded`` runs an in-process EVM inside this actor).
    y_test, n_classes:
        Test labels, to score hospitals and the ensemble.
    """

    def __init__(self, backend: str, rpc_url: str | None, contract: str | None,
                 y_test: np.ndarray, n_classes: int) -> None:
        from chainlearn_ray.chain.backends import connect
        from chainlearn_ray.chain.client import FLCoordinatorClient

        self.conn = connect(backend, rpc_url=rpc_url)
        if contract:
            self.client = FLCoordinatorClient.attach(self.conn, contract)
        else:
            self.client = FLCoordinatorClient.deploy(self.conn)
        self.backend = backend
        self.y_test = np.asarray(y_test, dtype=np.int64)
        self.n_classes = int(n_classes)
        self.hosts: dict[str, Any] = {}
        self.addresses: dict[str, str] = {}
        self.tiers: dict[str, str] = {}
        self.latest: dict[str, Any] = {}  # hospital -> its last submitted RoundReport
        self.calldata: dict[int, dict[str, int]] = {}  # round -> hospital -> raw tx bytes
        #: round -> hospital -> its training, started while the round before was ending
        self.early: dict[int, dict[str, Any]] = {}
        #: process -> how many of its hospitals it runs at once (its threads)
        self.slots: dict[int, int] = {}
        #: hospital -> training samples in its shard
        self.samples: dict[str, int] = {}

    # ------------------------------------------------------------------ setup
    def chain_info(self) -> dict[str, Any]:
        """Contract address, chain id, backend, artifact hash and deployment receipts."""
        from chainlearn_ray.chain.artifact import artifact_sha256

        return {
            "contract": self.client.address,
            "chain_id": int(self.client.chain_id),
            "backend": self.backend,
            "artifact_sha256": artifact_sha256(),
        }

    def attach_hospitals(self, hosts: dict[str, Any]) -> list[dict[str, Any]]:
        """Take the hospital actor handles (id -> handle); returns their identities."""
        self.hosts = dict(hosts)
        ids = ray.get([self.hosts[group[0]].ping.remote()
                       for group in self.processes(list(self.hosts)).values()])
        identities = [ident for group in ids for ident in group]
        for ident in identities:
            self.addresses[ident["hospital_id"]] = ident["address"]
            self.slots[id(self.hosts[ident["hospital_id"]])] = int(ident.get("slots", 1))
            self.samples[ident["hospital_id"]] = int(ident.get("train_samples", 0))
        return identities

    def longest_first(self, hospitals: list[str]) -> list[str]:
        """``hospitals`` in the order to start their trainings: largest shard first.

        A process runs its trainings in the order they are sent; with the longest ones first,
        the last to finish on each of its threads are the shortest, so its threads idle least
        at the end of a round. Submissions are relayed in this order too (whatever order
        training finishes in), so relays follow the trainings as they finish instead of
        piling up behind a small hospital early in the list. Equal shards keep hospital order.
        """
        return sorted(hospitals, key=lambda h: -self.samples.get(h, 0))

    def processes(self, hospitals: list[str]) -> dict[int, list[str]]:
        """``hospitals`` grouped by the actor process hosting them, in order of first mention."""
        groups: dict[int, list[str]] = {}
        for h in hospitals:
            groups.setdefault(id(self.hosts[h]), []).append(h)
        return groups

    def register_all(self, poc: dict[str, Any], concurrency: int, verify_claims: bool = True,
                     claim_policy: str = "correct",
                     ahead: tuple[int, list[str], int] | None = None) -> list[dict[str, Any]]:
        """PoC on every hospital, then sign and register each, in hospital order.

        ``ahead``: ``(round, attending, epochs)`` of the first round. A hospital adopts its
        tier (hence its model) when it signs its registration, so that round's training is
        sent right behind the signature and runs while the coordinator registers everyone on
        chain; :meth:`run_round` of that round then takes it (see ``next_attending`` there).
        When every process benchmarks at once (no more process threads than ``concurrency``),
        a process whose benchmarks are done signs and starts training on its own cores while
        the others still measure; otherwise training waits for the last benchmark.

        Each hospital claims a tier with its benchmark record. With ``verify_claims`` the
        coordinator checks the claim against the record (:func:`chainlearn_ray.methods.attacks.
        verify_claim`: a claim the measured throughput does not support is corrected, or
        refused under ``claim_policy="refuse"``), so the tier registered is the tier the
        hospital's own benchmark measured. Without it every claim is accepted (no PoC).

        At most ``concurrency`` benchmarks run at once, each process running as many as it has
        threads (see :meth:`_poc_runs`). Registration waits for the last benchmark: the
        coordinator's transactions would otherwise take CPU from benchmarks still measuring.
        """
        order = list(self.hosts)
        results: dict[str, dict[str, Any]] = {}
        signatures: dict[str, Any] = {}
        round_, attending, epochs = ahead if ahead is not None else (0, [], 0)
        alongside = (sum(self.slots.get(p, 1) for p in self.processes(order))
                     <= max(1, concurrency))
        early = self.early.setdefault(round_, {}) if ahead is not None else {}

        def start(hospitals: list[str]) -> None:  # training follows the signature
            for h in self.longest_first(hospitals):
                if h in attending:
                    early[h] = self.hosts[h].train_round.remote(h, round_, epochs,
                                                                after=signatures[h])

        def measured(hospitals: list[str], runs: dict[str, dict[str, Any]]) -> None:
            for h in hospitals:
                results[h] = self._checked_claim(h, runs[h], poc, verify_claims, claim_policy)
            # a process signs one at a time, and each training follows its signature: signed
            # in the order trainings start, round 1 trains (hence relays) in that order too
            for h in self.longest_first(hospitals):
                signatures[h] = self.hosts[h].sign_registration.remote(
                    h, results[h]["tier"], results[h]["bench_hash"], self.client.chain_id,
                    self.client.address)
            if alongside:
                start(hospitals)

        self._poc_runs(order, poc, concurrency, measured)
        if not alongside:
            start(order)
        return [self._register(h, results[h], ray.get(signatures[h])) for h in order]

    def _poc_runs(self, ids: list[str], poc: dict[str, Any], concurrency: int,
                  done: Callable[[list[str], dict[str, dict[str, Any]]], None]) -> None:
        """Run every hospital's PoC; ``done(hospitals, results)`` as each process finishes
        its hospitals' benchmarks (``results``: hospital -> PoC result so far).

        At most ``concurrency`` benchmarks run at once, so no two share a core, and a process
        runs at most as many as it has threads: processes are taken in the order of their
        first hospital, each benchmarking its hospitals in order as its threads come free.
        """
        groups = self.processes(ids)
        queues = {p: list(hs) for p, hs in groups.items()}  # process -> hospitals not started
        running = dict.fromkeys(groups, 0)  # process -> its benchmarks running
        left = {p: len(hs) for p, hs in groups.items()}  # process -> benchmarks not finished
        hospital_of: dict[Any, tuple[str, int]] = {}  # result ref -> (hospital, process)

        def launch() -> None:
            for process, queue in queues.items():
                while (queue and len(hospital_of) < max(1, concurrency)
                       and running[process] < self.slots.get(process, 1)):
                    h = queue.pop(0)
                    running[process] += 1
                    hospital_of[self.hosts[h].run_poc.remote(h, **poc)] = (h, process)

        results: dict[str, dict[str, Any]] = {}
        launch()
        while hospital_of:
            [ready], _ = ray.wait(list(hospital_of), num_returns=1)
            h, process = hospital_of.pop(ready)
            results[h] = ray.get(ready)
            running[process] -= 1
            left[process] -= 1
            if not left[process]:
                done(groups[process], results)
            launch()

    def _checked_claim(self, h: str, res: dict[str, Any], poc: dict[str, Any],
                       verify: bool, policy: str) -> dict[str, Any]:
        """``res`` with ``claimed_tier`` set and, under ``verify``, the tier and benchmark
        hash its measurement supports."""
        from chainlearn_ray.methods.attacks import verify_claim
        from chainlearn_ray.protocol.poc import benchmark_hash

        res["claimed_tier"] = claimed = res["tier"]
        if not verify:
            return res
        tier = verify_claim(claimed, res["throughput"], res["steps"], res["batch_size"],
                            res["bench_hash"], poc.get("weak_below", 100.0),
                            poc.get("medium_below", 300.0),
                            policy=policy)  # type: ignore[arg-type]
        if tier.label != claimed:
            res["tier"] = tier.label
            res["bench_hash"] = benchmark_hash(res["throughput"], res["steps"],
                                               res["batch_size"], tier)
            logger.warning("%s claimed %s; its benchmark says %s: registered %s", h, claimed,
                           tier.label, tier.label)
        return res

    def _register(self, h: str, res: dict[str, Any], signature: bytes) -> dict[str, Any]:
        """Fund ``h``'s account and register it on chain with its (checked) PoC record."""
        addr = self.addresses[h]
        self.conn.fund(addr, HOSPITAL_FUNDING_WEI)
        tx = self.client.register_hospital(addr, h, res["tier"], res["bench_hash"], signature)
        self.tiers[h] = res["tier"]
        return {
            "hospital_id": h, "address": addr,
            **{k: v for k, v in res.items() if k != "bench_hash"},
            "bench_hash": "0x" + bytes(res["bench_hash"]).hex(),
            "gas_register": int(tx.gas_used),
        }

    # ------------------------------------------------------------------ rounds
    def run_round(self, round_: int, attending: list[str], epochs: int,
                  deadline: float | None, round_timeout: float | None,
                  next_attending: list[str] | None = None) -> RoundOutcome:
        """One round: start on chain, train attending hospitals, submit, weigh, ensemble.

        ``next_attending``: who attends round ``round_ + 1`` (with the same ``epochs``). A
        process then starts its hospitals' next training as soon as every hospital it hosts is
        through this round (trained and signed, or late), instead of idling while the others
        finish and the coordinator ends the round. Nothing else moves: the next round starts
        on chain after this one's ensemble is recorded, and its updates are prepared, signed
        and relayed as always (training seeds depend on hospital and round only). A process
        with a failed or timed-out hospital starts its next round the usual way. The round
        timeout of an early training counts from the start of its own round.
        """
        from chainlearn_ray.protocol.ensemble import predict, prediction_hash, weighted_ensemble
        from chainlearn_ray.protocol.metrics import (
            accuracy,
            confidence,
            expected_calibration_error,
            macro_f1,
        )

        early = self.early.get(round_, {})
        if set(early) - set(attending):  # checked before the chain or any hospital is touched
            raise ChainlearnError(
                f"round {round_}: {sorted(set(early) - set(attending))} started training early "
                "but are not attending; pass the same attendance to both rounds")
        self.early.pop(round_, None)
        started = time.perf_counter()
        clock = _ChainClock()
        gas: dict[str, int] = {}
        with clock:
            tx = self.client.start_round()
        gas["startNewRound"] = int(tx.gas_used)

        status = {h: ABSENT for h in self.hosts}
        errors: dict[str, str] = {}
        down = self._await_hosts([h for h in attending if h not in early],
                                 timeout=max(60.0, round_timeout or 0.0))
        for h, why in down.items():
            status[h], errors[h] = FAILED, why
            logger.warning("hospital %s is down in round %d: %s", h, round_, why)
        requested, attending = attending, [h for h in attending if h not in down]
        order = self.longest_first(attending)
        refs = {early[h] if h in early else self.hosts[h].train_round.remote(h, round_, epochs): h
                for h in order}
        t_train = time.perf_counter()
        # Every transaction of the round is prepared against the state right after
        # startNewRound, with one fee cap, and relayed in the order the trainings started: the
        # same seed and config give the same signed bytes and gas whatever order training
        # finishes in, while each relay already runs once the hospitals before it are done.
        sub = _Submissions(self, round_, order, int(tx.block_number), status, errors)
        ahead = _EarlyStart(self, round_ + 1, next_attending or [], epochs, requested)
        ahead.start_ready(sub)
        reports: dict[str, Any] = {}
        pending = list(refs)
        stop_at = None if round_timeout is None else time.monotonic() + round_timeout
        while pending:
            wait = None if stop_at is None else max(0.0, stop_at - time.monotonic())
            ready, _ = ray.wait(pending + sub.signing(), num_returns=1, timeout=wait)
            if not ready:
                break
            with clock:
                if ready[0] in refs:
                    pending.remove(ready[0])
                    self._trained(refs[ready[0]], ready[0], deadline, reports, sub)
                else:
                    sub.collect(ready[0])
                ahead.start_ready(sub)
                sub.relay_ready()
            if pending:  # others still train: this chain work is off the critical path
                clock.overlap += clock.last
        train_seconds = time.perf_counter() - t_train
        for ref in pending:
            h = refs[ref]
            status[h], errors[h] = TIMED_OUT, f"> {round_timeout}s"
            logger.warning("hospital %s exceeded the round timeout; restarting it", h)
            ray.kill(self.hosts[h], no_restart=False)
            sub.settle(h)

        with clock:
            sub.collect_all()
        # every attending hospital is settled now, so this is the last chance to start the
        # next round, before the last relays: it trains meanwhile
        ahead.start_ready(sub)
        with clock:
            sub.finish()
        submitted, weights = sub.gas, sub.weights
        self.latest.update({h: reports[h] for h in submitted})

        ensemble: dict[str, float] = {}
        ens_hash = None
        rounds_out: list[HospitalRound] = []
        for h in self.hosts:
            rep = reports.get(h)
            hr = HospitalRound(h, self.tiers.get(h, ""), status[h], error=errors.get(h))
            if rep is not None and status[h] == ATTENDED:
                preds = predict(rep.test_probs)
                hr.weight = weights[h]
                hr.accuracy = float(accuracy(preds, self.y_test))
                hr.macro_f1 = float(macro_f1(preds, self.y_test, self.n_classes))
                hr.confidence, hr.ece = rep.confidence, rep.ece
                hr.val_accuracy = rep.val_accuracy
                hr.simulated_seconds, hr.wall_seconds = rep.simulated_seconds, rep.wall_seconds
                hr.samples = rep.samples
                hr.gas_submit = submitted[h]
            elif rep is not None:
                hr.simulated_seconds = rep.simulated_seconds
            rounds_out.append(hr)
        if submitted:
            members = [h for h in self.hosts if h in submitted]  # summed in hospital order
            probs = weighted_ensemble([reports[h].test_probs for h in members],
                                      [weights[h] for h in members], on_zero="equal")
            preds = predict(probs)
            ensemble = {
                "accuracy": float(accuracy(preds, self.y_test)),
                "macro_f1": float(macro_f1(preds, self.y_test, self.n_classes)),
                "confidence": float(confidence(probs)),
                "ece": float(expected_calibration_error(probs, self.y_test)),
            }
            digest = prediction_hash(preds, round_)
            with clock:
                rec = self.client.record_ensemble(digest, len(submitted))
            gas["recordEnsemblePrediction"] = int(rec.gas_used)
            ens_hash = "0x" + digest.hex()
        return RoundOutcome(
            round=round_, hospitals=rounds_out, participants=len(submitted), ensemble=ensemble,
            gas=gas, round_seconds=time.perf_counter() - started, chain_seconds=clock.wall,
            train_seconds=train_seconds, ensemble_hash=ens_hash,
            chain_overlap_seconds=clock.overlap, chain_cpu_seconds=clock.cpu,
        )

    def _trained(self, h: str, ref: Any, deadline: float | None,
                 reports: dict[str, Any], sub: _Submissions) -> None:
        """Take hospital ``h``'s finished training; ask for its signature unless it is out."""
        try:
            reports[h] = ray.get(ref)
            self.latest.pop(h, None)
        except (RayActorError, RayTaskError, ChainlearnError) as exc:
            sub.status[h], sub.errors[h] = FAILED, type(exc).__name__
            logger.warning("hospital %s failed in round %d: %s", h, sub.round, exc)
            sub.settle(h)
            return
        if missed_deadline(reports[h].simulated_seconds, deadline):
            sub.status[h] = LATE  # missed the round on the virtual clock
            sub.settle(h)
        else:
            sub.request(h, reports[h])

    def _await_hosts(self, hospitals: list[str], timeout: float) -> dict[str, str]:
        """Wait until the actors of ``hospitals`` answer (a restarted one reloads its checkpoint).

        Returns hospital -> why, for those whose actor is still down after ``timeout`` seconds.
        """
        pending = {process: self.hosts[group[0]]
                   for process, group in self.processes(hospitals).items()}
        last_error: dict[int, str] = {}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            refs = {actor.ping.remote(): key for key, actor in pending.items()}
            ready, _ = ray.wait(list(refs), num_returns=len(refs),
                                timeout=max(0.1, deadline - time.monotonic()))
            for ref in ready:
                try:
                    ray.get(ref)
                    pending.pop(refs[ref], None)
                except (RayActorError, RayTaskError) as exc:
                    # restarting: ask again; keep the reason in case it never comes back
                    last_error[refs[ref]] = f"{type(exc).__name__}: {str(exc)[:300]}"
            if pending:
                time.sleep(0.2)
        return {
            h: "did not come back after a restart within "
               f"{timeout:.0f}s ({last_error.get(id(self.hosts[h]), 'no answer')})"
            for h in hospitals if id(self.hosts[h]) in pending
        }

    # ------------------------------------------------------------------ study support
    def redeploy(self) -> dict[str, Any]:
        """Deploy a fresh FLCoordinator on the same chain and forget every registration.

        A study variant (another training of the same hospitals) then starts from an empty
        contract, so nothing of an earlier variant's state reaches its weights. Returns
        :meth:`chain_info` of the new deployment.
        """
        from chainlearn_ray.chain.client import FLCoordinatorClient

        self.client = FLCoordinatorClient.deploy(self.conn)
        self.tiers, self.latest, self.calldata, self.early = {}, {}, {}, {}
        return self.chain_info()

    def weights_pure(self, inputs: list[tuple[int, int, int, int]]) -> list[int]:
        """The contract's ``calculateWeightPure`` for each ``(tier, confidence, ece, rounds)``."""
        return [int(self.client.weight_pure(t, c, e, r)) for t, c, e, r in inputs]

    def hospital_records(self) -> list[dict[str, Any]]:
        """Each registered hospital that submitted: its on-chain tier, last metrics and rounds
        participated (``getHospitalInfo``), with its last model's validation accuracy and test
        probabilities."""
        out = []
        for h in self.tiers:
            rep = self.latest.get(h)
            if rep is None:
                continue
            info = self.client.hospital_info(self.addresses[h])
            out.append({
                "hospital_id": h, "tier": info.tier.label,
                "confidence_fixed": info.confidence, "ece_fixed": info.ece,
                "rounds_participated": info.rounds_participated,
                "val_accuracy": float(rep.val_accuracy), "test_probs": rep.test_probs,
            })
        return out

    def calldata_lengths(self) -> dict[int, dict[str, int]]:
        """round -> hospital -> bytes of its raw signed submitUpdate transaction."""
        return {r: dict(v) for r, v in self.calldata.items()}

    def receipts(self) -> list[dict[str, Any]]:
        """Every transaction of the run as plain dicts."""
        return [r.to_dict() for r in self.client.receipts]

    def close(self) -> None:
        """Stop the chain backend (an anvil process, for instance)."""
        self.conn.close()


class _ChainClock:
    """Wall and CPU time of the coordinator's chain work in one round: ``with clock:`` adds
    a span; ``last`` is the latest span's wall time, ``overlap`` what the caller counted as
    done while hospitals were still training."""

    def __init__(self) -> None:
        self.wall = self.cpu = self.overlap = self.last = 0.0

    def __enter__(self) -> None:
        self._t0, self._c0 = time.perf_counter(), time.process_time()

    def __exit__(self, *exc: object) -> None:
        self.last = time.perf_counter() - self._t0
        self.wall += self.last
        self.cpu += time.process_time() - self._c0


class _Submissions:
    """One round's submissions: prepared and signed as hospitals finish, relayed in order.

    ``relay_ready`` relays the longest settled prefix of ``order`` (signed, or out of
    the round), reading each hospital's round weight right after its transaction: that weight
    depends on its own submission only.
    """

    def __init__(self, coordinator: CoordinatorActor, round_: int, order: list[str],
                 block: int, status: dict[str, str], errors: dict[str, str]) -> None:
        self.c, self.round, self.order, self.block = coordinator, round_, list(order), block
        self.status, self.errors = status, errors
        self.fees = coordinator.conn.fee_fields(max_age=0.0)
        self._signing: dict[Any, str] = {}  # signature ref -> hospital
        self._raws: dict[str, bytes] = {}
        self._settled: set[str] = set()
        self.gas: dict[str, int] = {}  # relay order
        self.weights: dict[str, int] = {}
        coordinator.calldata[round_] = {}

    def signing(self) -> list[Any]:
        """Signature requests still outstanding."""
        return list(self._signing)

    def settle(self, h: str) -> None:
        """``h`` submits nothing this round (failed, late or timed out)."""
        self._settled.add(h)

    def request(self, h: str, report: Any) -> None:
        """Prepare ``h``'s submitUpdate and ask the hospital to sign it (in its own actor
        concurrency group, so a packed process signs while it trains its next hospital)."""
        try:
            tx = self.c.client.prepare_submit_update(
                self.c.addresses[h], report.model_hash, report.confidence_fixed,
                report.ece_fixed, Tier.parse(self.c.tiers[h]).model_type, fees=self.fees,
                block=self.block,
            )
        except ChainlearnError as exc:
            self._fail(h, f"prepare: {exc}", exc)
            return
        ref = self.c.hosts[h].sign_transaction.remote(
            h, tx, report.model_hash, report.confidence_fixed, report.ece_fixed)
        self._signing[ref] = h

    def collect(self, ref: Any, timeout: float | None = None) -> None:
        """Take a finished (or, with ``timeout``, awaited) signature."""
        h = self._signing.pop(ref)
        try:
            raw = bytes(ray.get(ref, timeout=timeout))
        except (RayActorError, RayTaskError, GetTimeoutError) as exc:
            self._fail(h, f"sign: {type(exc).__name__}", exc)
            return
        self._raws[h] = raw
        self.c.calldata[self.round][h] = len(raw)
        self._settled.add(h)

    def through(self, h: str) -> bool:
        """``h`` is done with this round without failing: signed, or late."""
        return h in self._settled and self.status[h] not in (FAILED, TIMED_OUT)

    def relay_ready(self) -> None:
        """Relay, in order, every submission no earlier hospital is still holding up."""
        while self.order and self.order[0] in self._settled:
            h = self.order.pop(0)
            raw = self._raws.pop(h, None)
            if raw is None:
                continue
            try:
                result = self.c.client.send_raw(raw, "submitUpdate")
            except ChainlearnError as exc:
                self._fail(h, f"submit: {exc}", exc)
                continue
            self.status[h] = ATTENDED
            self.gas[h] = int(result.gas_used)
            self.weights[h] = int(self.c.client.round_weight(self.round, self.c.addresses[h]))

    def collect_all(self) -> None:
        """After training: await the remaining signatures (a minute at most each)."""
        for ref in list(self._signing):
            self.collect(ref, timeout=60)

    def finish(self) -> None:
        """After :meth:`collect_all`: relay everything left."""
        self._settled.update(self.order)
        self.relay_ready()

    def _fail(self, h: str, why: str, exc: BaseException) -> None:
        self.status[h], self.errors[h] = FAILED, why
        self._settled.add(h)
        logger.warning("submission of %s failed in round %d: %s", h, self.round, exc)


class _EarlyStart:
    """The next round's training, started process by process while this round ends.

    A process's calls start in the order they arrive (one at a time, or on its threads as
    they come free), so a hospital's next training would queue behind everything its process
    still has to do in this round; it is only sent once all of them are through, so it never
    delays a training or signature of this round.
    """

    def __init__(self, coordinator: CoordinatorActor, round_: int, attending: list[str],
                 epochs: int, current: list[str]) -> None:
        self.c, self.round, self.epochs = coordinator, round_, epochs
        nxt, now = set(attending), set(current)
        self.waiting = {
            process: ([h for h in hs if h in now], [h for h in hs if h in nxt])
            for process, hs in coordinator.processes(list(coordinator.hosts)).items()
            if nxt.intersection(hs)
        }

    def start_ready(self, sub: _Submissions) -> None:
        """Start the next round in every process whose hospitals are all through this one."""
        for process, (now, nxt) in list(self.waiting.items()):
            if all(sub.through(h) for h in now):
                del self.waiting[process]
                early = self.c.early.setdefault(self.round, {})
                for h in self.c.longest_first(nxt):
                    early[h] = self.c.hosts[h].train_round.remote(h, self.round, self.epochs)
