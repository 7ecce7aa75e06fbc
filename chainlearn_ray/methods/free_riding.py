"""Rounds in which hospitals may also act on what the chain has made public, for the
free-rider study: a hospital that copies another's submission instead of training.

* Seed protocol (:class:`OursPublic`): after the round's submissions are on chain, a phase in
  which a hospital may submit what it read there. The copier submits another's model hash,
  confidence and ECE; the chain cannot tell.
* Trust mode (:class:`OursTrustPublic`): after the commits, a phase in which a hospital may
  commit what it read (only commitments are public then; the copier copies one); after the
  reveals, a phase in which it may reveal what it read (the copied commitment opens with the
  other's revealed update and salt, if the model type fits its own tier). Its audit then asks
  for the model that hash names, which it does not have.

A copied model hash names the other hospital's model, so that model is what the ensemble and
the auditor use for it (:func:`copied_report`). The honest hospitals ignore these phases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from chainlearn_ray.hospital.spec import RoundReport
from chainlearn_ray.methods.messages import ClientResult, RoundConfig, TrainSettings
from chainlearn_ray.methods.ours import TRAIN, Ours
from chainlearn_ray.methods.ours_trust import REVEAL, SIGN_COMMIT, OursTrust

COPY = "copy"
COPY_COMMIT = "copy_commit"
COPY_REVEAL = "copy_reveal"


def copied_report(own: RoundReport, reports: dict[str, Any], model_hash: bytes,
                  confidence: int, ece: int) -> RoundReport:
    """``own`` report carrying a copied claim: the claimed numbers, and, when the hash names
    another hospital's model of this round, that model's probabilities and metrics."""
    source = next((r for r in reports.values() if r is not own
                   and bytes(r.model_hash) == bytes(model_hash)), None)
    copied = replace(own, model_hash=bytes(model_hash), confidence_fixed=int(confidence),
                     ece_fixed=int(ece))
    if source is None:
        return copied
    return replace(copied, confidence=source.confidence, ece=source.ece,
                   val_accuracy=source.val_accuracy, test_probs=source.test_probs)


class OursPublic(Ours):
    """Ours (seed protocol) with a phase acting on the round's public submissions."""

    def phases_of(self, round_: int) -> tuple[str, ...]:
        """Rounds: train and submit, then act on what was submitted."""
        return super().phases_of(round_) if round_ == 0 else (TRAIN, COPY)

    def configure_ahead(self, round_: int) -> RoundConfig | None:
        """Nothing starts early."""
        return None

    def _configure(self, round_: int, phase: str) -> RoundConfig:
        if phase != COPY:
            return super()._configure(round_, phase)
        state = self._live(round_)
        public = {h: (state.reports[h].model_hash, state.reports[h].confidence_fixed,
                      state.reports[h].ece_fixed) for h in state.gas_submit}
        return RoundConfig(round_, COPY, public, setup=self._setup())

    def review(self, result: ClientResult) -> RoundConfig | None:
        """A hospital holding back in training submits nothing; a copy is submitted as if the
        hospital had trained (the chain has no way to tell)."""
        if result.phase == TRAIN and result.payload is None:
            return None
        if result.phase == COPY:
            if result.payload is None:
                return None
            own, (model_hash, conf, ece) = result.payload
            report = copied_report(own, self._live(result.round).reports, model_hash, conf, ece)
            return super().review(replace(result, phase=TRAIN, payload=report))
        return super().review(result)

    def _aggregate(self, round_: int, phase: str, results: Sequence[ClientResult]) -> None:
        if phase == COPY:
            super()._aggregate(round_, TRAIN, results)

    def client_step(self, client: Any, config: RoundConfig,
                    settings: TrainSettings) -> ClientResult:
        """The copier trains nothing and copies the submission it reads."""
        hospital, phase = client, config.phase
        victim = hospital.behaviour.copies
        if phase not in (TRAIN, COPY) or victim is None:
            if phase == COPY:
                return ClientResult(hospital.spec.hospital_id, hospital.tier.label, config.round,
                                    phase, int(hospital.y_train.shape[0]), None)
            return super().client_step(client, config, settings)
        h, n = hospital.spec.hospital_id, int(hospital.y_train.shape[0])
        if phase == TRAIN:
            hospital.openings = {config.round: hospital.train_round(config.round, 0)}
            return ClientResult(h, hospital.tier.label, config.round, phase, n, None)
        seen = config.payload.get(victim)
        out = None if seen is None else (hospital.openings[config.round], seen)
        return ClientResult(h, hospital.tier.label, config.round, phase, n, out)


class OursTrustPublic(OursTrust):
    """Ours in trust mode with phases acting on the public commitments and openings."""

    def phases_of(self, round_: int) -> tuple[str, ...]:
        """Rounds: train and commit, copy a commitment, reveal, copy an opening, audit."""
        phases: list[str] = []
        for phase in super().phases_of(round_):
            phases.append(phase)
            if round_ > 0 and phase in (TRAIN, REVEAL):
                phases.append(COPY_COMMIT if phase == TRAIN else COPY_REVEAL)
        return tuple(phases)

    def _configure(self, round_: int, phase: str) -> RoundConfig:
        if phase == COPY_COMMIT:
            return RoundConfig(round_, phase, dict(self.ledger.commitments), setup=self._setup())
        if phase == COPY_REVEAL:
            public = {h: self.ledger.opened[h] for h in self.ledger.revealed}
            return RoundConfig(round_, phase, public, setup=self._setup())
        return super()._configure(round_, phase)

    def review(self, result: ClientResult) -> RoundConfig | None:
        """Commit a copied commitment; reveal a copied opening (its model is the other's)."""
        h, payload = result.hospital_id, result.payload
        if result.phase in (COPY_COMMIT, COPY_REVEAL) and payload is None:
            return None
        if result.phase == COPY_COMMIT:
            state = self._live(result.round)
            tx = self._guard("commit", lambda: self.trust_port().prepare_commit(
                self.addresses[h], payload, state.opening))
            self._committing[h] = payload
            return RoundConfig(result.round, SIGN_COMMIT, (tx, payload), setup=self._setup())
        if result.phase == COPY_REVEAL:
            state = self._live(result.round)
            state.reports[h] = copied_report(state.reports[h], state.reports, payload.model_hash,
                                             payload.confidence, payload.ece)
            return super().review(replace(result, phase=REVEAL))
        return super().review(result)

    def client_step(self, client: Any, config: RoundConfig,
                    settings: TrainSettings) -> ClientResult:
        """The copier copies what it reads; the others have nothing to do in these phases."""
        hospital, phase = client, config.phase
        if phase not in (COPY_COMMIT, COPY_REVEAL):
            return super().client_step(client, config, settings)
        victim = hospital.behaviour.copies
        out = None if victim is None else config.payload.get(victim)
        if out is not None and phase == COPY_COMMIT:
            hospital.openings = {config.round: None}  # it will be audited on what it holds
        return ClientResult(hospital.spec.hospital_id, hospital.tier.label, config.round, phase,
                            int(hospital.y_train.shape[0]), out)
