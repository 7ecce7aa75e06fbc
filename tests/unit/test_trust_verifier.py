"""The pure parts of trust mode: the challenged benchmark, the verifier's spot-check and its
timing -> tier rule, and the audit rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.hospital.spec import Behaviour
from chainlearn_ray.learning.challenge import recompute_steps, run_challenge
from chainlearn_ray.methods.audit import UNDELIVERED, AuditSplit, deviates, score_model
from chainlearn_ray.protocol.poc import benchmark_hash
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.protocol.verifier import (
    ChallengeAnswerError,
    check_answer,
    spot_check_steps,
    steps_digest,
    verify_capacity,
)

CHALLENGE = bytes(range(32))


def test_a_hospital_can_look_slower_never_faster() -> None:
    # K=50, B=16 in 8 s on the verifier's clock: 100 samples/s -> Medium under 25 / 150
    honest = verify_capacity("medium", 50, 16, 8.0, 25.0, 150.0)
    assert (honest.tier, honest.measured, honest.throughput) == (Tier.MEDIUM, Tier.MEDIUM, 100.0)
    assert honest.bench_hash == benchmark_hash(100.0, 50, 16, Tier.MEDIUM)
    # claiming Strong changes nothing: the verifier's own timing decides
    spoof = verify_capacity("strong", 50, 16, 8.0, 25.0, 150.0)
    assert (spoof.tier, spoof.corrected) == (Tier.MEDIUM, True)
    # holding the answer back only lowers the tier
    slow = verify_capacity("medium", 50, 16, 8.0 + 30.0, 25.0, 150.0)
    assert slow.tier == Tier.WEAK
    # a lower claim than measured stands (a hospital may register below its hardware)
    assert verify_capacity("weak", 50, 16, 1.0, 25.0, 150.0).tier == Tier.WEAK
    # a hospital has no way to shorten the clock: a negative delay is refused
    with pytest.raises(ConfigError, match="poc_delay"):
        Behaviour(poc_delay=-1.0)
    with pytest.raises(ChallengeAnswerError):
        verify_capacity("weak", 50, 16, 0.0, 25.0, 150.0)


def test_spot_check_catches_a_wrong_answer() -> None:
    run = run_challenge(CHALLENGE, 6, 4)
    assert run.digest == steps_digest(CHALLENGE, run.values)
    all_steps = spot_check_steps(CHALLENGE, 6, None)
    assert all_steps == list(range(6))
    check_answer(CHALLENGE, run.values, run.digest, recompute_steps(CHALLENGE, 4, all_steps))
    # a digest that does not belong to the values
    with pytest.raises(ChallengeAnswerError, match="digest"):
        check_answer(CHALLENGE, run.values, bytes(32), {})
    # made-up values with a matching digest: the recomputation catches them
    forged = [v + 0.5 for v in run.values]
    with pytest.raises(ChallengeAnswerError, match="not run as challenged"):
        check_answer(CHALLENGE, forged, steps_digest(CHALLENGE, forged),
                     recompute_steps(CHALLENGE, 4, all_steps))
    # an answer to another challenge does not pass either
    other = run_challenge(bytes(32), 6, 4)
    with pytest.raises(ChallengeAnswerError):
        check_answer(CHALLENGE, other.values, steps_digest(CHALLENGE, other.values),
                     recompute_steps(CHALLENGE, 4, all_steps))


def test_spot_checks_are_seeded_by_the_challenge() -> None:
    picked = spot_check_steps(CHALLENGE, 50, 5)
    assert picked == spot_check_steps(CHALLENGE, 50, 5) and len(set(picked)) == 5
    assert all(0 <= s < 50 for s in picked)
    assert picked != spot_check_steps(bytes(32), 50, 5)
    with pytest.raises(ConfigError, match="spot_checks"):
        spot_check_steps(CHALLENGE, 50, 0)


def test_audit_rule_and_undeliverable_models() -> None:
    assert not deviates((9000, 1000), (8800, 1200), 200)
    assert deviates((10_000, 0), (8000, 1500), 200)
    split = AuditSplit(np.zeros((4, 28, 28), np.uint8), np.array([0, 1, 0, 1]), 2, 1)
    assert score_model(split, None, bytes(32)) == (*UNDELIVERED, False)
    with pytest.raises(ConfigError, match="audit_fraction"):
        AuditSplit(np.zeros((0, 28, 28), np.uint8), np.zeros(0), 2, 1)


def test_the_audit_split_is_held_out_of_the_validation_split(tmp_path: Path) -> None:
    """Trust mode's auditor scores on validation images no hospital is given, drawn like the
    ones each hospital measures its claim on (so an honest claim differs by sampling only)."""
    from chainlearn_ray.data.synthetic import write_synthetic
    from chainlearn_ray.experiment.loading import load_config
    from chainlearn_ray.runtime.simulation import load_partitioned

    write_synthetic(tmp_path, "synthetic", n_classes=2, n_channels=1, n_train=200, n_val=100,
                    n_test=50, seed=0)
    base = {"data.dataset": "synthetic", "data.data_dir": str(tmp_path), "data.min_shard": 16,
            "data.download": False}
    plain, _ = load_partitioned(load_config(None, base))
    trust, _ = load_partitioned(load_config(None, {**base, "chain.mode": "trust"}))
    assert plain.audit is None and len(plain.val) == 100
    assert trust.audit is not None and len(trust.audit) == 50 and len(trust.val) == 50
    seen = {bytes(img) for img in trust.val.images}
    assert not any(bytes(img) in seen for img in trust.audit.images)
    assert len(trust.test) == len(plain.test)  # evaluation stays on the whole test split
