"""EqualWt-Ens, Local-*, Local-Best and the post-hoc ablations as one method of no rounds.

Nothing is trained: its summary re-combines the final models of an Ours run
(:func:`~chainlearn_ray.methods.evaluation.evaluate_posthoc`), every ablated weight computed by
the contract's weight view and checked against the Python formula.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from chainlearn_ray.errors import ChainlearnError, ConfigError
from chainlearn_ray.methods.ablations import ablation_inputs
from chainlearn_ray.methods.base import FederatedMethod
from chainlearn_ray.methods.evaluation import HospitalRecord, evaluate_posthoc
from chainlearn_ray.methods.messages import ClientResult, RoundConfig, TrainSettings
from chainlearn_ray.methods.names import OURS, result_row
from chainlearn_ray.methods.ours import Ours
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.protocol.weights import compute_weight
from chainlearn_ray.results.rows import RunKey

logger = logging.getLogger(__name__)


class ChainWeightMismatch(ChainlearnError):
    """The contract's weight view and the Python formula disagree: the deployed contract is not
    the one this package ships; redeploy it from the packaged artifact."""


class PostHoc(FederatedMethod):
    """The post-hoc methods on the final models of ``ours``.

    Parameters
    ----------
    methods:
        Which post-hoc methods (:data:`~chainlearn_ray.methods.evaluation.POSTHOC_METHODS`).
    ours:
        The finished Ours run (its chain port, registered tiers and last reports).
    hardware:
        Hospital id -> label of its simulated hardware tier.
    round_:
        The final round, written in the rows.
    chain_rows:
        Add Ours' rows of the on-chain state the weights were computed from
        (``chain_confidence``, ``chain_ece``, ``chain_rounds`` per hospital).
    """

    name: ClassVar[str] = "posthoc"
    phases: ClassVar[tuple[str, ...]] = ()
    communicates: ClassVar[bool] = False

    def __init__(self, methods: Sequence[str], ours: Ours, hardware: Mapping[str, str],
                 round_: int, *, chain_rows: bool = False) -> None:
        super().__init__()
        self.methods, self.ours, self.hardware = list(methods), ours, dict(hardware)
        self.round, self.chain_rows = int(round_), chain_rows

    def schedule(self, rounds: int, epochs: int) -> tuple[int, int]:
        """No round: the models were trained by Ours."""
        return 0, epochs

    def _configure(self, round_: int, phase: str) -> RoundConfig:
        raise ConfigError("post-hoc methods run no round")

    def _aggregate(self, round_: int, phase: str, results: Sequence[ClientResult]) -> None:
        return None

    def client_step(self, client: Any, config: RoundConfig,
                    settings: TrainSettings) -> ClientResult:
        """Never called: nothing is trained."""
        raise ConfigError("post-hoc methods have no client step")

    def summary(self, key: RunKey) -> list[dict[str, Any]]:
        """The post-hoc rows, weights from ``calculateWeightPure``."""
        if self._labels is None:
            raise ConfigError("post-hoc methods: call bind_test() first")
        records = [HospitalRecord(
            hospital_id=r["hospital_id"], hardware_tier=Tier.parse(self.hardware[r["hospital_id"]]),
            tier=Tier.parse(r["tier"]), confidence_fixed=int(r["confidence_fixed"]),
            ece_fixed=int(r["ece_fixed"]), rounds_participated=int(r["rounds_participated"]),
            val_accuracy=float(r["val_accuracy"]), test_probs=np.asarray(r["test_probs"]),
        ) for r in self.ours.records()]
        port = self.ours.chain()
        ablations = [None, *(m for m in self.methods if m.startswith("ablation:"))]
        wanted = sorted({_inputs_key(ablation_inputs(a, r.tier, r.confidence_fixed, r.ece_fixed,
                                                     r.rounds_participated))
                         for a in ablations for r in records})
        on_chain = {inputs: port.weight_pure(Tier(inputs[0]), *inputs[1:]) for inputs in wanted}
        for inputs, weight in on_chain.items():
            if compute_weight(*inputs) != weight:
                raise ChainWeightMismatch(f"calculateWeightPure{inputs} = {weight} on chain but "
                                          f"{compute_weight(*inputs)} in Python")

        def chain_weight(tier: Tier, conf: int, ece: int, rounds: int) -> int:
            return on_chain[_inputs_key((tier, conf, ece, rounds))]

        rows = evaluate_posthoc(records, self._labels, self._n_classes, key=key,
                                round_=self.round, methods=self.methods, weight_fn=chain_weight)
        for r in records if self.chain_rows else []:
            for metric, value in (("chain_confidence", r.confidence_fixed),
                                  ("chain_ece", r.ece_fixed),
                                  ("chain_rounds", r.rounds_participated)):
                rows.append(result_row(key, OURS, self.round, r.hospital_id, r.tier.label,
                                       metric, value))
        return rows


def _inputs_key(inputs: tuple[Tier, int, int, int]) -> tuple[int, int, int, int]:
    tier, conf, ece, rounds = inputs
    return int(Tier.parse(tier)), int(conf), int(ece), int(rounds)
