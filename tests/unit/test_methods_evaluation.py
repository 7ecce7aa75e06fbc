"""Post-hoc methods on Ours' models: equal weights, Local-*, Local-Best, ablations, no training."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import chainlearn_ray.learning.hashing as hashing
import chainlearn_ray.learning.training as training
from chainlearn_ray.chain.backends import connect
from chainlearn_ray.chain.client import FLCoordinatorClient
from chainlearn_ray.data.medmnist import load_dataset
from chainlearn_ray.data.synthetic import write_synthetic
from chainlearn_ray.data.transforms import to_tensor
from chainlearn_ray.errors import ConfigError, DataError
from chainlearn_ray.learning.models import build_model
from chainlearn_ray.learning.threads import torch_threads
from chainlearn_ray.methods.ablations import (
    ablated_weight,
    ablation_inputs,
    describe,
    no_poc_arch_by_tier,
    no_poc_tier,
)
from chainlearn_ray.methods.evaluation import (
    POSTHOC_METHODS,
    HospitalRecord,
    ablation_weights,
    equal_weight,
    evaluate_posthoc,
    headline_metrics,
    local_tier,
    majority_metrics,
    majority_rows,
    select_local_best,
)
from chainlearn_ray.methods.names import POSTHOC_ABLATIONS
from chainlearn_ray.protocol.ensemble import weighted_ensemble
from chainlearn_ray.protocol.metrics import accuracy, reliability
from chainlearn_ray.protocol.tiers import Tier
from chainlearn_ray.protocol.weights import compute_weight
from chainlearn_ray.results.rows import RunKey
from chainlearn_ray.results.schema import COLUMNS, rows_to_frame

KEY = RunKey("r1", "synthetic", 1.0, 42, "ours")

#: (tier, conf, ece, rounds) -> {ablation: hand-computed weight}; formula in SPEC.md §2.
HAND = [
    (Tier.STRONG, 9500, 500, 1,
     {None: 11330, "no_capmul": 9525, "no_conf": 11900, "no_ece": 11900, "no_bonus": 10830}),
    (Tier.WEAK, 8000, 2000, 3,
     {None: 6620, "no_capmul": 7900, "no_conf": 7900, "no_ece": 7900, "no_bonus": 5120}),
    (Tier.MEDIUM, 9000, 1000, 5,
     {None: 10600, "no_capmul": 10600, "no_conf": 11500, "no_ece": 11500, "no_bonus": 8100}),
]


def _probs(correct: np.ndarray, labels: np.ndarray, p: float = 0.8) -> np.ndarray:
    """Two-class probabilities that are right where ``correct`` and wrong elsewhere."""
    pred = np.where(correct, labels, 1 - labels)
    out = np.full((len(labels), 2), 1 - p, dtype=np.float32)
    out[np.arange(len(labels)), pred] = p
    return out


def _record(hid: str, tier: Tier, val_acc: float, test_probs: np.ndarray, conf: int = 9000,
            ece: int = 1000, rounds: int = 3) -> HospitalRecord:
    return HospitalRecord(hid, tier, tier, conf, ece, rounds, val_acc, test_probs)


LABELS = np.array([0, 1] * 10, dtype=np.int64)


def test_ablation_inputs_map_to_the_formula_switches() -> None:
    assert ablation_inputs("no_capmul", "strong", 9000, 100, 2) == (Tier.MEDIUM, 9000, 100, 2)
    assert ablation_inputs("ablation:no_conf", Tier.WEAK, 9000, 100, 2) == (Tier.WEAK, 10000,
                                                                            100, 2)
    assert ablation_inputs("no_ece", 1, 9000, 100, 2) == (Tier.MEDIUM, 9000, 0, 2)
    assert ablation_inputs("no_bonus", 0, 9000, 100, 2) == (Tier.WEAK, 9000, 100, 0)
    assert ablation_inputs(None, 2, 9000, 100, 2) == (Tier.STRONG, 9000, 100, 2)
    assert ablation_inputs("no_poc", 2, 9000, 100, 2)[0] == Tier.MEDIUM
    with pytest.raises(ConfigError):
        ablation_inputs("no_everything", 0, 1, 1, 1)
    assert no_poc_tier("strong") == Tier.MEDIUM
    assert set(no_poc_arch_by_tier().values()) == {"efficientnet_b0"}
    assert "ECE" in describe("ablation:no_ece")


@pytest.mark.parametrize(("tier", "conf", "ece", "rounds", "expected"), HAND)
def test_ablated_weights_equal_hand_computed_values(tier: Tier, conf: int, ece: int, rounds: int,
                                                    expected: dict[str | None, int]) -> None:
    switches = {"no_capmul": "use_capmul", "no_conf": "use_confidence", "no_ece": "use_ece",
                "no_bonus": "use_bonus"}
    for name, weight in expected.items():
        assert ablated_weight(name, tier, conf, ece, rounds) == weight
        if name is not None:
            assert compute_weight(tier, conf, ece, rounds, **{switches[name]: False}) == weight


def test_on_chain_pure_formula_computes_the_same_ablations() -> None:
    conn = connect("embedded")
    try:
        client = FLCoordinatorClient.deploy(conn)
        recs = [_record(f"h{i}", t, 0.5, _probs(np.ones(20, bool), LABELS), c, e, r)
                for i, (t, c, e, r, _) in enumerate(HAND)]
        for name in (None, *POSTHOC_ABLATIONS):
            on_chain = ablation_weights(recs, name, client.weight_pure)
            assert on_chain == [h[4][name] for h in HAND]
    finally:
        conn.close()


def test_weight_fn_receives_the_ablation_inputs() -> None:
    seen: list[tuple[int, int, int, int]] = []

    def recording(tier: Tier, conf: int, ece: int, rounds: int) -> int:
        seen.append((int(tier), conf, ece, rounds))
        return 1

    recs = [_record("h0", Tier.STRONG, 0.5, _probs(np.ones(20, bool), LABELS), 9100, 700, 4)]
    assert ablation_weights(recs, "ablation:no_ece", recording) == [1]
    assert seen == [(2, 9100, 0, 4)]


def test_local_best_is_chosen_by_validation_not_test() -> None:
    good_test = _probs(np.ones(20, bool), LABELS)          # test accuracy 1.0
    bad_test = _probs(np.arange(20) % 4 == 0, LABELS)      # test accuracy 0.25
    recs = [
        _record("h00", Tier.WEAK, 0.60, good_test),          # best on test, worst on val
        _record("h01", Tier.MEDIUM, 0.90, bad_test),         # best on val
        _record("h02", Tier.STRONG, 0.70, good_test),
    ]
    best = select_local_best(recs)
    assert best.hospital_id == "h01"
    rows = evaluate_posthoc(recs, LABELS, 2, key=KEY, round_=3, methods=["local_best"])
    acc = [r["value"] for r in rows if r["metric"] == "accuracy"]
    assert acc == [0.25]
    chosen = [r for r in rows if r["metric"] == "val_accuracy"]
    assert chosen[0]["hospital"] == "h01" and chosen[0]["value"] == 0.90


def test_local_best_ties_go_to_the_lowest_id() -> None:
    p = _probs(np.ones(20, bool), LABELS)
    recs = [_record("h02", Tier.STRONG, 0.8, p), _record("h01", Tier.WEAK, 0.8, p)]
    assert select_local_best(recs).hospital_id == "h01"


def test_local_tier_averages_its_members_and_equal_weight_mixes_all() -> None:
    a = _probs(np.ones(20, bool), LABELS)                  # 1.0
    b = _probs(np.arange(20) < 10, LABELS)                 # 0.5
    c = _probs(np.zeros(20, bool), LABELS, p=0.9)          # 0.0
    recs = [_record("h0", Tier.WEAK, 0.5, a), _record("h1", Tier.WEAK, 0.5, b),
            _record("h2", Tier.STRONG, 0.5, c)]
    weak = local_tier(recs, "weak", LABELS, 2)
    assert weak is not None and weak["accuracy"] == pytest.approx(0.75)
    assert local_tier(recs, Tier.MEDIUM, LABELS, 2) is None
    eq = equal_weight(recs, LABELS, 2)
    expected = headline_metrics(weighted_ensemble([a, b, c], [1, 1, 1]), LABELS, 2)
    assert eq == expected


def test_posthoc_rows_follow_the_schema() -> None:
    recs = [_record(f"h{i:02d}", t, 0.5 + 0.1 * i, _probs(np.arange(20) % (i + 2) != 0, LABELS),
                    c, e, r) for i, (t, c, e, r, _) in enumerate(HAND)]
    rows = evaluate_posthoc(recs, LABELS, 2, key=KEY, round_=5)
    frame = rows_to_frame(rows)
    assert tuple(frame.columns) == COLUMNS
    assert set(frame["method"]) == set(POSTHOC_METHODS)
    assert set(frame["round"]) == {5}
    assert (frame["run_id"] == "r1").all() and (frame["seed"] == 42).all()
    ens = frame[frame["hospital"] == "ensemble"]
    for method in POSTHOC_METHODS:
        got = set(ens[ens["method"] == method]["metric"])
        assert {"accuracy", "macro_f1", "confidence", "ece"} <= got
    w = frame[(frame["method"] == "ablation:no_bonus") & (frame["metric"] == "weight")]
    assert w.set_index("hospital")["value"].to_dict() == {"h00": 10830.0, "h01": 5120.0,
                                                         "h02": 8100.0}
    with pytest.raises(DataError):
        evaluate_posthoc(recs, LABELS, 2, key=KEY, round_=5, methods=["fedavg"])
    with pytest.raises(DataError):
        evaluate_posthoc(recs, LABELS[:5], 2, key=KEY, round_=5)


# ------------------------------------------------------------ real models, no retraining


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list, torch.Tensor,
                                                                       np.ndarray, list]]:
    root: Path = tmp_path_factory.mktemp("posthoc")
    write_synthetic(root, n_train=240, n_val=60, n_test=80, seed=3)
    data = load_dataset("synthetic", root)
    x, y = to_tensor(data.train.images), torch.as_tensor(data.train.labels)
    x_val, x_test = to_tensor(data.val.images), to_tensor(data.test.images)
    models, records = [], []
    with torch_threads(1):
        for i, tier in enumerate((Tier.WEAK, Tier.MEDIUM, Tier.STRONG)):
            model = build_model(f"tiny_cnn:{4 + 2 * i}", 2, 1, seed=i)
            part = slice(80 * i, 80 * (i + 1))
            training.train(model, x[part], y[part], epochs=1 + i, batch_size=16, seed=i)
            val = training.predict_proba(model, x_val)
            rel = reliability(val, data.val.labels)
            models.append(model)
            records.append(HospitalRecord(f"h{i:02d}", tier, tier, rel.confidence_fixed,
                                          rel.ece_fixed, i + 1, accuracy(val, data.val.labels),
                                          training.predict_proba(model, x_test)))
    yield models, x_test, data.test.labels, records


def test_ablations_reuse_the_trained_models_without_training(
    trained: tuple[list, torch.Tensor, np.ndarray, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    models, x_test, labels, records = trained
    before = [hashing.model_hash(m) for m in models]

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("post-hoc evaluation must not train")

    monkeypatch.setattr(training, "train", forbidden)
    monkeypatch.setattr(training, "distill", forbidden)
    rows = evaluate_posthoc(records, labels, 2, key=KEY, round_=3)
    assert [hashing.model_hash(m) for m in models] == before
    # the ablation ensembles equal those recomputed from the untouched models' predictions
    fresh = [training.predict_proba(m, x_test) for m in models]
    switch = {"no_capmul": "use_capmul", "no_conf": "use_confidence", "no_ece": "use_ece",
              "no_bonus": "use_bonus"}
    for name in POSTHOC_ABLATIONS:
        weights = [compute_weight(r.tier, r.confidence_fixed, r.ece_fixed, r.rounds_participated,
                                  **{switch[name]: False}) for r in records]
        probs = weighted_ensemble(fresh, weights, on_zero="equal")
        got = next(r["value"] for r in rows
                   if r["method"] == f"ablation:{name}" and r["metric"] == "accuracy")
        assert got == accuracy(probs, labels)
    assert all(rec.rounds_participated == i + 1 for i, rec in enumerate(records))


def test_method_names_match_the_result_tables() -> None:
    from chainlearn_ray.methods.names import METHODS
    from chainlearn_ray.results.tables import METHOD_DISPLAY

    assert set(METHODS) == set(METHOD_DISPLAY)
    assert set(POSTHOC_METHODS) <= set(METHODS)


def test_majority_predicts_the_pooled_training_majority_class() -> None:
    counts = np.array([[30, 10, 0], [5, 60, 1]])  # pooled: class 1 has 70 of 106
    labels = np.array([1, 1, 0, 2, 1])
    got = majority_metrics(counts, labels, 3)
    assert got["accuracy"] == pytest.approx(3 / 5)
    assert got["balanced_accuracy"] == pytest.approx(1 / 3)
    assert got["confidence"] == pytest.approx(1.0)
    rows = majority_rows(RunKey("r", "d", 1.0, 0, "ours"), counts, labels, 3)
    frame = rows_to_frame(rows)
    assert set(frame["method"]) == {"majority"} and set(frame["hospital"]) == {"ensemble"}
    assert dict(zip(frame["metric"], frame["value"], strict=True))["accuracy"] == pytest.approx(0.6)


def test_majority_needs_counts_of_every_class() -> None:
    with pytest.raises(DataError, match="class counts"):
        majority_metrics(np.array([3, 4]), np.array([0, 1]), 3)
