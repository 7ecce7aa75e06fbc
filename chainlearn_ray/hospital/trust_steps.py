"""A hospital's own steps in trust mode: answering the verifier's PoC challenge, committing to
and opening its update, handing its model to the auditor, and signing each transaction it sends.

Plain Python on a :class:`~chainlearn_ray.hospital.site.Hospital`; a hospital may lie only in
what these functions send (its behaviour), never in the clock its simulated hardware runs on.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from chainlearn_ray.errors import HospitalFailure
from chainlearn_ray.hospital.site import Hospital
from chainlearn_ray.hospital.spec import RoundReport


@dataclass(frozen=True)
class Opening:
    """What a hospital reveals: the update it committed to and the salt of its commitment."""

    model_hash: bytes
    confidence: int
    ece: int
    model_type: int
    salt: bytes

    def args(self) -> tuple[bytes, int, int, int, bytes]:
        """``revealUpdate``'s arguments."""
        return (self.model_hash, self.confidence, self.ece, self.model_type, self.salt)

    @property
    def commitment(self) -> bytes:
        """``keccak256(abi.encode(modelHash, confidence, ece, modelType, salt))``."""
        from chainlearn_ray.chain.statements import update_commitment

        return update_commitment(*self.args())


def answer_challenge(hospital: Hospital, challenge: bytes, steps: int,
                     batch_size: int) -> dict[str, Any]:
    """Run the challenged benchmark on this hospital's hardware.

    The answer (``values``, ``digest``, the throughput it reports) is the hospital's message;
    ``clock_seconds`` is when the answer reaches the verifier on the simulated hardware's clock:
    the seconds the hardware needed, plus any delay the hospital chooses (it may look slower;
    it has no way to look faster).
    """
    from chainlearn_ray.learning.challenge import run_challenge

    if hospital.throttle is None:
        raise HospitalFailure(f"{hospital.spec.hospital_id} answers a challenge before its "
                              "hardware clock is set (run the PoC first)")
    run = run_challenge(challenge, steps, batch_size, throttle=hospital.throttle,
                        threads=hospital.spec.threads)
    behaviour = hospital.behaviour
    reported = behaviour.reported_throughput or steps * batch_size / run.hardware_seconds
    return {"values": list(run.values), "digest": run.digest,
            "reported_throughput": float(reported), "address": hospital.address,
            "clock_seconds": run.hardware_seconds + float(behaviour.poc_delay)}


def opening_for(hospital: Hospital, report: RoundReport) -> Opening:
    """The update this hospital commits to after training (its report's metrics)."""
    if hospital.tier is None:
        raise HospitalFailure(f"{hospital.spec.hospital_id} commits before registering")
    salt = hospital.commit_salt(report.round, report.model_hash)
    return Opening(bytes(report.model_hash), int(report.confidence_fixed),
                   int(report.ece_fixed), int(hospital.tier.model_type), salt)


def sign_commit(hospital: Hospital, tx: dict[str, Any], commitment: bytes) -> bytes:
    """Sign the prepared ``commitUpdate`` of ``commitment``."""
    from chainlearn_ray.chain.tx import encode_commit_update

    return hospital.sign_intended(tx, encode_commit_update(commitment))


def sign_reveal(hospital: Hospital, tx: dict[str, Any], opening: Opening) -> bytes:
    """Sign the prepared ``revealUpdate`` opening ``opening``."""
    from chainlearn_ray.chain.tx import encode_reveal_update

    return hospital.sign_intended(tx, encode_reveal_update(*opening.args()))


def sign_withdraw(hospital: Hospital, tx: dict[str, Any]) -> bytes:
    """Sign the prepared ``withdraw``: the hospital leaves with its stake and rewards."""
    from chainlearn_ray.chain.tx import encode_withdraw

    return hospital.sign_intended(tx, encode_withdraw())


def hand_model(hospital: Hospital) -> dict[str, Any]:
    """The hospital's current model for the auditor: its architecture and state dict bytes."""
    import torch

    if hospital.model is None or hospital.tier is None:
        raise HospitalFailure(f"{hospital.spec.hospital_id} has no model to hand over")
    arch = (hospital.behaviour.arch_by_tier or hospital.spec.arch_by_tier)[hospital.tier.label]
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in hospital.model.state_dict().items()}, buf)
    return {"arch": arch, "state": buf.getvalue()}
