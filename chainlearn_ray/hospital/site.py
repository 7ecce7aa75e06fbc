"""One simulated hospital: its key, shard, hardware profile, model, PoC and local training.

Plain Python (no Ray): ``chainlearn_ray.runtime.hospital_actor`` hosts these objects inside Ray
actors.
A hospital never holds a Web3 object; it signs its PoC statement and its own transactions and
hands plain bytes back.
"""

from __future__ import annotations

import io
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from chainlearn_ray.chain.signing import key_address
from chainlearn_ray.errors import HospitalFailure
from chainlearn_ray.hospital.faults import inject_fault
from chainlearn_ray.hospital.spec import (
    Behaviour,
    EvalSplits,
    HospitalSpec,
    RoundReport,
    TrainShard,
    derive_private_key,
    hospital_seed,
    shard_positions,
)
from chainlearn_ray.protocol.tiers import Tier

logger = logging.getLogger(__name__)


class Hospital:
    """A simulated hospital.

    Parameters
    ----------
    spec:
        Identity and configuration.
    shard:
        Its own training data.
    evals:
        The shared validation (metric) and test splits, and the image transform.
    """

    def __init__(self, spec: HospitalSpec, shard: TrainShard, evals: EvalSplits) -> None:
        import torch

        from chainlearn_ray.learning.training import set_determinism

        self.spec = spec
        set_determinism(spec.seed, spec.threads)
        self._key = derive_private_key(spec.seed, spec.index)
        self.address: str = key_address(self._key)
        self._x_shard = evals.to_tensor(shard.x)
        self._y_shard = torch.tensor(np.asarray(shard.y), dtype=torch.long)  # copy: read-only
        self.x_train, self.y_train = self._x_shard, self._y_shard
        self.behaviour = Behaviour()
        self.epochs_trained = 0
        self.x_val, self.x_test = evals.inputs()
        self.y_val = np.asarray(evals.y_val, dtype=np.int64)
        self.tier: Tier | None = None
        self.contract: str | None = None
        self.model: Any = None
        self.throttle: Any = None
        if spec.cost_model is not None:  # the cost-model clock: nothing to calibrate
            from chainlearn_ray.learning.hardware import Throttle

            self.throttle = Throttle.from_cost_model(self._profile(), spec.cost_model)
        self.rounds_trained = 0
        self.poc: Any = None
        self.openings: dict[int, Any] = {}  # round -> what it committed to (trust mode)
        self.privacy: Any = None  # its DP-SGD account, built at its first private training
        self._restore()

    # ---------------------------------------------------------------- identity / PoC
    def identity(self) -> dict[str, Any]:
        """Public identity: id, address, hardware tier, registered tier (if any)."""
        return {
            "hospital_id": self.spec.hospital_id,
            "address": self.address,
            "hardware_tier": self.spec.hardware_tier.label,
            "tier": self.tier.label if self.tier is not None else None,
            "rounds_trained": self.rounds_trained,
            "epochs_trained": self.epochs_trained,
            "train_samples": int(self.y_train.shape[0]),
        }

    def reset(self, behaviour: Behaviour | None = None) -> dict[str, Any]:
        """Start afresh for a new deployment: no tier, no contract, no model, no rounds.

        The next registration builds the model again from the same seed, so an honest hospital
        reset this way trains exactly as a new one would. The PoC measurement (the hardware)
        and the throttle calibration are kept. Returns :meth:`identity`.
        """
        from chainlearn_ray.learning.rng import reseed

        self.behaviour = behaviour or Behaviour()
        self.tier, self.contract, self.model = None, None, None
        self.privacy = None  # a new deployment spends a new budget
        self.rounds_trained = self.epochs_trained = 0
        self._apply_fraction()
        path = self._checkpoint_path()
        if path is not None and path.exists():
            path.unlink()
        reseed(self.spec.seed)
        return self.identity()

    def _apply_fraction(self) -> None:
        n = int(self._y_shard.shape[0])
        pos = shard_positions(n, self.behaviour.data_fraction, self.spec.seed, self.spec.index)
        if len(pos) == n:
            self.x_train, self.y_train = self._x_shard, self._y_shard
        else:
            import torch

            idx = torch.as_tensor(pos, dtype=torch.long)
            self.x_train, self.y_train = self._x_shard[idx], self._y_shard[idx]

    def _profile(self) -> Any:
        from chainlearn_ray.learning.hardware import HardwareProfile

        return HardwareProfile(
            name=self.spec.hardware_tier.label,
            threads=self.spec.threads,
            target_throughput=self.spec.target_throughput,
            device=self.spec.device,
            mode=self.spec.throttle,  # type: ignore[arg-type]  # validated by config
        )

    def run_poc(self, steps: int, warmup: int, batch_size: int, weak_below: float,
                medium_below: float, reuse: bool = False) -> dict[str, Any]:
        """Run the Proof-of-Capacity benchmark under this hospital's hardware profile.

        ``reuse``: report the previous measurement again when its K and B match (the hardware
        has not changed; a new deployment only needs a new signature). ``tier`` and
        ``bench_hash`` are the hospital's *claim* (its behaviour's ``claimed_tier``, else the
        measured tier); ``measured_tier`` is what the benchmark measured.
        """
        from chainlearn_ray.learning.benchmark import run_benchmark
        from chainlearn_ray.learning.hardware import Throttle
        from chainlearn_ray.protocol.poc import benchmark_hash, classify

        result = self.poc
        if not (reuse and result is not None and int(result.steps) == steps
                and int(result.batch_size) == batch_size):
            profile = self._profile()
            # One run serves both purposes: the PoC clock is capped at the profile's target,
            # and on the measured clock the run's raw compute time calibrates the training
            # slow-down of this hospital (on the cost-model clock the throttle is already set).
            result = run_benchmark(
                steps=steps, warmup=warmup, batch_size=batch_size, device=self.spec.device,
                seed=self.spec.seed, throttle=self.throttle or Throttle(profile, 1.0),
                weak_below=weak_below, medium_below=medium_below, threads=self.spec.threads,
            )
            if self.throttle is None:
                raw = result.steps * result.batch_size / max(result.compute_seconds, 1e-9)
                self.throttle = Throttle.from_profile(profile, raw)
            self.poc = result
        throughput = float(self.behaviour.reported_throughput or result.throughput)
        measured = classify(throughput, weak_below, medium_below)
        bench_hash = benchmark_hash(throughput, result.steps, result.batch_size, measured)
        claim = measured
        if self.behaviour.claimed_tier is not None:
            claim = Tier.parse(self.behaviour.claimed_tier)
            bench_hash = benchmark_hash(throughput, result.steps, result.batch_size, claim)
        return {
            "throughput": throughput,
            "steps": int(result.steps),
            "batch_size": int(result.batch_size),
            "seconds": float(result.seconds),
            "tier": claim.label,
            "measured_tier": measured.label,
            "bench_hash": bench_hash,
            "slowdown": float(getattr(self.throttle, "slowdown", 1.0)),
        }

    def sign_registration(self, tier: str, bench_hash: bytes, chain_id: int,
                          contract: str, challenge: bytes | None = None) -> bytes:
        """Sign the PoC statement for ``tier`` on this deployment under this hospital's id (the
        name it is registered under), with the verifier's ``challenge`` in trust mode, and adopt
        ``tier``."""
        from chainlearn_ray.chain.statements import sign_poc

        self.tier = Tier.parse(tier)
        self.contract = contract
        signature = sign_poc(self._key, self.tier, bench_hash, chain_id, contract,
                             name=self.spec.hospital_id, challenge=challenge)
        self._ensure_model()
        self._checkpoint(0)
        return signature

    # ---------------------------------------------------------------- training
    def _ensure_model(self) -> None:
        if self.model is not None:
            return
        if self.tier is None:
            raise HospitalFailure(f"{self.spec.hospital_id} has no registered tier yet")
        from chainlearn_ray.learning.models import build_model

        arch = (self.behaviour.arch_by_tier or self.spec.arch_by_tier)[self.tier.label]
        self.model = build_model(
            arch, self.spec.n_classes, self.spec.in_channels,
            pretrained=self.spec.pretrained, seed=self.spec.seed + self.spec.index,
        )
        if self.spec.private_models:
            from chainlearn_ray.learning.privacy import make_private_model

            self.model = make_private_model(self.model, arch)[0]

    def _account(self) -> Any:
        """Its DP-SGD account (``None`` without DP), planned for the shard it trains on."""
        if self.privacy is None and self.spec.dp is not None:
            from chainlearn_ray.learning.privacy import PrivacyAccount

            self.privacy = PrivacyAccount(self.spec.dp, int(self.y_train.shape[0]),
                                          self.spec.batch_size, self.spec.dp_epochs)
        return self.privacy

    def train_round(self, round_: int, epochs: int) -> RoundReport:
        """Train ``epochs`` local epochs, then measure reliability and test probabilities.

        Under a behaviour with ``total_epochs`` it trains only what is left of that budget; with
        ``reported`` it reports those metrics (the measured ones stay in ``extra``).
        """
        from chainlearn_ray.learning.hashing import model_hash
        from chainlearn_ray.learning.training import predict_proba, train
        from chainlearn_ray.protocol.metrics import (
            accuracy,
            balanced_accuracy,
            reliability,
            to_fixed,
        )

        inject_fault(self.spec, round_)
        self._ensure_model()
        started = time.perf_counter()
        budget = self.behaviour.total_epochs
        if budget is not None:
            epochs = max(0, min(epochs, budget - self.epochs_trained))
        stats = train(
            self.model, self.x_train, self.y_train, epochs=epochs,
            batch_size=self.spec.batch_size, lr=self.spec.lr,
            seed=hospital_seed(self.spec.seed, self.spec.index, round_),
            device=self.spec.device, throttle=self.throttle, privacy=self._account(),
        )
        val_probs = predict_proba(self.model, self.x_val, device=self.spec.device)
        rel = reliability(val_probs, self.y_val)
        test_probs = predict_proba(self.model, self.x_test, device=self.spec.device)
        self.rounds_trained += 1
        self.epochs_trained += epochs
        self._checkpoint(round_)
        conf_fixed, ece_fixed = int(rel.confidence_fixed), int(rel.ece_fixed)
        balacc_fixed = to_fixed(balanced_accuracy(val_probs, self.y_val, val_probs.shape[1]))
        # one query image as the model takes it (uint8 channels × side²): the bytes serving the
        # ensemble sends this hospital's model per query
        extra: dict[str, Any] = {"epochs": epochs,
                                 "query_bytes": int(math.prod(self.x_test.shape[1:]))}
        if stats.epsilon is not None:
            extra.update(dp_epsilon=stats.epsilon, dp_delta=stats.delta)
        if self.behaviour.reported is not None:
            extra.update(measured_confidence_fixed=conf_fixed, measured_ece_fixed=ece_fixed,
                         measured_balanced_accuracy_fixed=balacc_fixed)
            conf_fixed, ece_fixed = (int(v) for v in self.behaviour.reported)
            balacc_fixed = conf_fixed
        return RoundReport(
            hospital_id=self.spec.hospital_id,
            round=round_,
            model_hash=model_hash(self.model),
            confidence_fixed=conf_fixed,
            ece_fixed=ece_fixed,
            confidence=float(rel.confidence),
            ece=float(rel.ece),
            val_accuracy=float(accuracy(val_probs, self.y_val)),
            test_probs=test_probs,
            samples=int(stats.samples),
            wall_seconds=time.perf_counter() - started,
            compute_seconds=float(stats.compute_seconds),
            simulated_seconds=float(stats.simulated_seconds),
            final_loss=float(stats.final_loss),
            extra=extra,
            balanced_accuracy_fixed=balacc_fixed,
        )

    def sign_transaction(self, tx: dict[str, Any], model_hash: bytes, confidence: int,
                         ece: int) -> bytes:
        """Sign the submitUpdate transaction after checking it carries exactly our submission
        to the contract we registered with."""
        from chainlearn_ray.chain.tx import encode_submit_update, sign_transaction

        if self.tier is None or self.contract is None:
            raise HospitalFailure(f"{self.spec.hospital_id} cannot submit before registering")
        intended = encode_submit_update(model_hash, confidence, ece, self.tier.model_type)
        return sign_transaction(tx, self._key, expected_data=intended, expected_to=self.contract)

    def sign_intended(self, tx: dict[str, Any], data: bytes, value: int = 0) -> bytes:
        """Sign a prepared transaction after checking it carries exactly ``data`` and
        ``value`` to the contract this hospital registered with (trust-mode operations)."""
        from chainlearn_ray.chain.tx import sign_transaction

        if self.contract is None:
            raise HospitalFailure(f"{self.spec.hospital_id} cannot transact before registering")
        return sign_transaction(tx, self._key, expected_data=data, expected_to=self.contract,
                                expected_value=value)

    def commit_salt(self, round_: int, model_hash: bytes) -> bytes:
        """The secret salt of this hospital's commitment in ``round_``: derived from its key,
        so nobody else can compute it and a rerun draws the same one."""
        from eth_utils import keccak

        return bytes(keccak(self._key + round_.to_bytes(4, "big") + bytes(model_hash)))

    # ---------------------------------------------------------------- checkpoints
    def _checkpoint_path(self) -> Path | None:
        if not self.spec.checkpoint_dir:
            return None
        return Path(self.spec.checkpoint_dir) / f"{self.spec.hospital_id}.pt"

    def _checkpoint(self, round_: int | None = None) -> None:
        """Write the hospital's state; ``round_``: the round it ends (tags a copy, see
        :mod:`chainlearn_ray.hospital.checkpoints`)."""
        import torch

        from chainlearn_ray.hospital.checkpoints import publish

        path = self._checkpoint_path()
        if path is None or self.model is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(
            {
                "model": self.model.state_dict(),
                "tier": int(self.tier) if self.tier is not None else None,
                "contract": self.contract,
                "rounds_trained": self.rounds_trained,
                "epochs_trained": self.epochs_trained,
                "behaviour": asdict(self.behaviour),
                "slowdown": getattr(self.throttle, "slowdown", None),
                "dp_history": None if self.privacy is None else self.privacy.history(),
            },
            buf,
        )
        tmp = path.with_suffix(".pt.tmp")
        tmp.write_bytes(buf.getvalue())
        publish(tmp, path.parent, self.spec.hospital_id, round_)

    def _restore(self) -> None:
        import torch

        path = self._checkpoint_path()
        if path is None or not path.exists():
            return
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("behaviour"):
            raw = dict(state["behaviour"])
            if raw.get("reported") is not None:
                raw["reported"] = tuple(raw["reported"])
            self.behaviour = Behaviour(**raw)
            self._apply_fraction()
        self.epochs_trained = int(state.get("epochs_trained", 0))
        self.contract = state.get("contract")
        if state.get("tier") is not None:
            self.tier = Tier(int(state["tier"]))
            self._ensure_model()
            self.model.load_state_dict(state["model"])
        self.rounds_trained = int(state.get("rounds_trained", 0))
        if state.get("dp_history") and self._account() is not None:
            self.privacy.restore(state["dp_history"])
        if state.get("slowdown") is not None and self.spec.cost_model is None:
            from chainlearn_ray.learning.hardware import Throttle

            self.throttle = Throttle.from_slowdown(self._profile(), float(state["slowdown"]))
        logger.warning("%s restored from checkpoint after %d rounds", self.spec.hospital_id,
                       self.rounds_trained)
