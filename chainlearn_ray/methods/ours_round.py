"""One open round of Ours: who is in or out, what each reported, the weights the chain gave,
and the ensemble those weights make."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from chainlearn_ray.methods.chain_port import RoundOpening
from chainlearn_ray.methods.evaluation import headline_metrics
from chainlearn_ray.protocol.ensemble import predict, prediction_hash, weighted_ensemble
from chainlearn_ray.protocol.metrics import accuracy, macro_f1
from chainlearn_ray.protocol.rounds import ABSENT, ATTENDED, LATE, HospitalRound, RoundOutcome

logger = logging.getLogger(__name__)


class OursRound:
    """The bookkeeping of round ``round`` among ``hospitals`` (id order), opened by
    ``opening``."""

    def __init__(self, round_: int, hospitals: Sequence[str], opening: RoundOpening) -> None:
        self.round, self.hospitals, self.opening = round_, list(hospitals), opening
        self.status = dict.fromkeys(self.hospitals, ABSENT)
        self.errors: dict[str, str] = {}
        self.reports: dict[str, Any] = {}  # hospital -> its RoundReport of this round
        self.gas_submit: dict[str, int] = {}  # relay order
        self.weights: dict[str, int] = {}
        self.gas: dict[str, int] = {"startNewRound": opening.gas}
        self.ensemble_metrics: dict[str, float] = {}
        self.ensemble_hash: str | None = None

    def late(self, h: str) -> None:
        """``h`` trained past the deadline: it submits nothing."""
        self.status[h] = LATE

    def out(self, h: str, status: str, why: str) -> None:
        """``h`` failed or timed out."""
        self.status[h], self.errors[h] = status, why

    def submitted(self, h: str, gas: int, weight: int) -> None:
        """``h``'s submission is on chain and earned ``weight``."""
        self.status[h] = ATTENDED
        self.gas_submit[h], self.weights[h] = gas, weight

    def ensemble(self, labels: np.ndarray | None, n_classes: int) -> tuple[bytes, int] | None:
        """The weighted ensemble of the submitted models, summed in hospital order: its
        metrics on the test labels, and ``(prediction hash, participants)`` to record on
        chain (``None`` when nobody submitted)."""
        members = [h for h in self.hospitals if h in self.gas_submit]
        if not members:
            return None
        probs = weighted_ensemble([self.reports[h].test_probs for h in members],
                                  [self.weights[h] for h in members], on_zero="equal")
        preds = predict(probs)
        if labels is not None:
            self.ensemble_metrics = {k: float(v) for k, v in
                                     headline_metrics(probs, labels, n_classes).items()}
        digest = prediction_hash(preds, self.round)
        self.ensemble_hash = "0x" + digest.hex()
        return digest, len(members)

    def outcome(self, labels: np.ndarray | None, n_classes: int,
                tiers: Mapping[str, str]) -> RoundOutcome:
        """Each hospital's outcome (registered tier; metrics of the submitted ones on the test
        labels), the ensemble's metrics and the round's gas."""
        rounds_out: list[HospitalRound] = []
        for h in self.hospitals:
            rep = self.reports.get(h)
            hr = HospitalRound(h, tiers.get(h, ""), self.status[h], error=self.errors.get(h))
            if rep is not None:  # privacy is spent by training, submitted or not
                hr.dp_epsilon = rep.extra.get("dp_epsilon")
                hr.dp_delta = rep.extra.get("dp_delta")
            if rep is not None and self.status[h] == ATTENDED:
                preds = predict(rep.test_probs)
                hr.weight = self.weights[h]
                if labels is not None:
                    hr.accuracy = float(accuracy(preds, labels))
                    hr.macro_f1 = float(macro_f1(preds, labels, n_classes))
                hr.confidence, hr.ece = rep.confidence, rep.ece
                hr.val_accuracy = rep.val_accuracy
                hr.simulated_seconds, hr.wall_seconds = rep.simulated_seconds, rep.wall_seconds
                hr.samples = rep.samples
                hr.gas_submit = self.gas_submit[h]
            elif rep is not None:
                hr.simulated_seconds = rep.simulated_seconds
            rounds_out.append(hr)
        return RoundOutcome(round=self.round, hospitals=rounds_out,
                            participants=len(self.gas_submit), ensemble=self.ensemble_metrics,
                            gas=dict(self.gas), ensemble_hash=self.ensemble_hash)
