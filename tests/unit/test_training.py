"""Training, distillation and prediction loops; determinism; throttled clocks; model hashes."""

from __future__ import annotations

import copy
import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from chainlearn_ray.data.medmnist import load_dataset
from chainlearn_ray.data.synthetic import write_synthetic
from chainlearn_ray.data.transforms import to_tensor
from chainlearn_ray.errors import ConfigError, DataError, ResourceError
from chainlearn_ray.learning.hardware import HardwareProfile, Throttle
from chainlearn_ray.learning.hashing import model_hash, state_dict_bytes
from chainlearn_ray.learning.models import CPU_CHANNELS_LAST, CPU_EVAL_BATCH, build_model
from chainlearn_ray.learning.threads import pin_torch_threads
from chainlearn_ray.learning.training import (
    EVAL_BATCH,
    distill,
    predict_proba,
    set_determinism,
    train,
)
from chainlearn_ray.protocol.metrics import accuracy


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.Tensor, ...]:
    root: Path = tmp_path_factory.mktemp("syn")
    write_synthetic(root, n_classes=3, n_train=480, n_val=60, n_test=150, seed=1)
    ds = load_dataset("synthetic", root)
    return (to_tensor(ds.train.images), torch.as_tensor(ds.train.labels),
            to_tensor(ds.test.images), torch.as_tensor(ds.test.labels))


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_tiny_cnn_learns_synthetic_data_in_two_epochs(data: tuple[torch.Tensor, ...]) -> None:
    set_determinism(0, 1)
    x, y, xt, yt = data
    model = build_model("tiny_cnn", 3, 1, seed=0)
    before = accuracy(predict_proba(model, xt), yt.numpy())
    stats = train(model, x, y, epochs=2, seed=0)
    after = accuracy(predict_proba(model, xt), yt.numpy())
    assert after > 0.85 and after > before + 0.3
    assert stats.samples == 960 and stats.steps == 30
    assert stats.final_loss < 1.0
    assert stats.seconds > 0 and stats.compute_seconds == stats.simulated_seconds


@pytest.mark.parametrize("arch", ["tiny_cnn", "mobilenet_v3_small"])
def test_same_seed_gives_bit_identical_weights_and_probabilities(
    data: tuple[torch.Tensor, ...], arch: str
) -> None:
    x, y, xt, _ = data
    n = 96 if arch == "tiny_cnn" else 40
    runs = []
    for _ in range(2):
        set_determinism(0, 1)
        model = build_model(arch, 3, 1, seed=3)
        train(model, x[:n], y[:n], epochs=1, batch_size=16, seed=11)
        runs.append((model, predict_proba(model, xt[:32])))
    assert same_state(runs[0][0], runs[1][0])
    assert np.array_equal(runs[0][1], runs[1][1])
    assert model_hash(runs[0][0]) == model_hash(runs[1][0])
    other = build_model(arch, 3, 1, seed=3)
    train(other, x[:n], y[:n], epochs=1, batch_size=16, seed=12)
    assert not same_state(runs[0][0], other)


@pytest.mark.parametrize("arch", ["tiny_cnn:8", "mobilenet_v3_small"])
def test_trainings_on_threads_match_trainings_one_after_another(
    data: tuple[torch.Tensor, ...], arch: str
) -> None:
    # as a hospital process with threads runs them: a model that draws nothing trains in
    # parallel, one with dropout takes turns on torch's global generator; same weights either way
    x, y, xt, _ = data
    n = 96 if arch.startswith("tiny") else 40

    def run(seed: int, out: dict[int, tuple[torch.nn.Module, np.ndarray]]) -> None:
        pin_torch_threads(1)
        model = build_model(arch, 3, 1, seed=seed)
        train(model, x[:n], y[:n], epochs=1, batch_size=16, seed=seed + 10)
        out[seed] = (model, predict_proba(model, xt[:32]))

    set_determinism(0, 1)
    alone: dict[int, tuple[torch.nn.Module, np.ndarray]] = {}
    for seed in (1, 2, 3):
        run(seed, alone)
    together: dict[int, tuple[torch.nn.Module, np.ndarray]] = {}
    workers = [threading.Thread(target=run, args=(seed, together)) for seed in (1, 2, 3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(together) == [1, 2, 3]
    for seed in (1, 2, 3):
        assert same_state(alone[seed][0], together[seed][0])
        assert np.array_equal(alone[seed][1], together[seed][1])
    assert not same_state(alone[1][0], alone[2][0])


def test_training_leaves_the_global_rng_alone(data: tuple[torch.Tensor, ...]) -> None:
    x, y, _, _ = data
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    train(build_model("tiny_cnn:8", 3, 1, seed=0), x[:64], y[:64], epochs=1, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_trailing_single_sample_joins_the_last_batch(data: tuple[torch.Tensor, ...]) -> None:
    x, y, _, _ = data
    model = build_model("mobilenet_v3_small", 3, 1, seed=0)  # 1×1 maps: BN needs > 1 sample
    stats = train(model, x[:33], y[:33], epochs=1, seed=0)
    assert (stats.steps, stats.samples) == (1, 33)
    stats = train(model, x[:65], y[:65], epochs=1, seed=0)
    assert (stats.steps, stats.samples) == (2, 65)


def test_torch_adam_training_is_deterministic_and_skips_frozen_parameters(
    data: tuple[torch.Tensor, ...]
) -> None:
    x, y, _, _ = data
    start = build_model("tiny_cnn:8", 3, 1, seed=0)
    runs = []
    for _ in range(2):
        model = copy.deepcopy(start)
        frozen = next(model.parameters())  # a parameter without gradient is left alone
        frozen.requires_grad_(False)
        train(model, x[:400], y[:400], epochs=1, batch_size=16, lr=3e-3, seed=4)
        assert torch.equal(frozen, next(start.parameters()))
        runs.append(model)
    assert same_state(runs[0], runs[1])
    assert not same_state(runs[0], start)


def test_fresh_adam_each_call_and_labels_as_column(data: tuple[torch.Tensor, ...]) -> None:
    x, y, _, _ = data
    a = build_model("tiny_cnn:8", 3, 1, seed=0)
    b = build_model("tiny_cnn:8", 3, 1, seed=0)
    train(a, x[:64], y[:64], epochs=1, seed=1)
    train(a, x[:64], y[:64], epochs=1, seed=2)
    train(b, x[:64].numpy(), y[:64].numpy()[:, None], epochs=1, seed=1)
    c = build_model("tiny_cnn:8", 3, 1)
    c.load_state_dict(b.state_dict())
    train(c, x[:64], y[:64], epochs=1, seed=2)
    assert same_state(a, c)  # second call depends only on the weights, not optimiser state


def test_fedprox_pulls_towards_the_reference(data: tuple[torch.Tensor, ...]) -> None:
    x, y, _, _ = data
    start = build_model("tiny_cnn:8", 3, 1, seed=0)
    reference = {k: v.clone() for k, v in start.state_dict().items()}

    def drift(mu: float) -> float:
        model = build_model("tiny_cnn:8", 3, 1, seed=0)
        train(model, x[:128], y[:128], epochs=2, lr=1e-2, seed=0, prox_mu=mu,
              prox_reference=reference if mu else None)
        return sum(float(((p.detach() - reference[k]) ** 2).sum())
                   for k, p in model.named_parameters())

    free, held = drift(0.0), drift(50.0)
    assert held < 0.5 * free
    with pytest.raises(ConfigError, match="prox_reference"):
        train(start, x[:8], y[:8], epochs=1, seed=0, prox_mu=0.01)
    with pytest.raises(ConfigError):
        train(start, x[:8], y[:8], epochs=1, seed=0, prox_mu=-1.0)


def test_distill_moves_the_student_towards_the_targets(data: tuple[torch.Tensor, ...]) -> None:
    x, y, _, _ = data
    targets = np.full((128, 3), 0.15, dtype=np.float32)
    targets[np.arange(128), y[:128].numpy()] = 0.7
    student = build_model("tiny_cnn:8", 3, 1, seed=8)

    def gap() -> float:
        probs = predict_proba(student, x[:128], temperature=2.0)
        return float(np.sum(targets * (np.log(targets) - np.log(probs)), axis=1).mean())

    before = gap()
    stats = distill(student, x[:128], targets, temperature=2.0, epochs=6, lr=5e-3, seed=0)
    assert gap() < 0.5 * before
    assert stats.samples == 768
    # the reported loss is KL · T², so it is 4 × the KL at the end of the last epoch
    assert stats.final_loss == pytest.approx(4.0 * gap(), rel=0.6)
    with pytest.raises(ConfigError):
        distill(student, x[:8], targets[:8], temperature=0, epochs=1, lr=1e-3, seed=0)


def test_predict_proba_contract(data: tuple[torch.Tensor, ...]) -> None:
    _, _, xt, _ = data
    model = build_model("tiny_cnn:8", 3, 1, seed=0)
    model.train()
    probs = predict_proba(model, xt, batch_size=7)
    assert probs.dtype == np.float32 and probs.shape == (150, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert model.training
    np.testing.assert_allclose(predict_proba(model, xt, batch_size=1000), probs, atol=1e-6)
    soft = predict_proba(model, xt, temperature=10.0)
    assert soft.max(axis=1).mean() < probs.max(axis=1).mean()


def test_cpu_eval_batch_follows_the_architecture_and_keeps_the_probabilities(
    data: tuple[torch.Tensor, ...]
) -> None:
    _, _, xt, _ = data  # 150 samples: 128 + 22 against one batch of 150
    model = build_model("tiny_cnn:8", 3, 1, seed=0)
    assert getattr(model, CPU_EVAL_BATCH) == 128 < EVAL_BATCH < len(xt) * 2
    np.testing.assert_allclose(predict_proba(model, xt),
                               predict_proba(model, xt, batch_size=EVAL_BATCH), atol=1e-6)


@pytest.mark.parametrize(("arch", "channels_last"), [
    ("tiny_cnn:8", True), ("mobilenet_v3_small", True), ("resnet50", False)])
def test_cpu_memory_format_follows_the_architecture(
    data: tuple[torch.Tensor, ...], arch: str, channels_last: bool
) -> None:
    x, y, xt, _ = data
    model = build_model(arch, 3, 1, seed=0)
    reference = copy.deepcopy(model).eval()  # the default format, as built
    assert getattr(model, CPU_CHANNELS_LAST) is channels_last
    assert getattr(model, CPU_EVAL_BATCH) == (128 if arch.startswith("tiny") else EVAL_BATCH)
    probs = predict_proba(model, xt[:40])
    with torch.no_grad():  # same function, whatever the layout of the numbers
        expected = torch.softmax(reference(xt[:40]), dim=1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-4)
    train(model, x[:64], y[:64], epochs=1, seed=0)
    # convolutions whose layout tells the two formats apart (more than one input channel,
    # kernel larger than 1x1) are in the architecture's format
    telling = [p for p in model.parameters()
               if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1]
    assert all(p.is_contiguous(memory_format=torch.channels_last) is channels_last
               for p in telling)
    assert telling or arch == "mobilenet_v3_small"  # depthwise and 1x1 convolutions only


def test_virtual_throttle_scales_the_clock_without_sleeping(
    data: tuple[torch.Tensor, ...]
) -> None:
    x, y, _, _ = data
    throttle = Throttle.from_slowdown(HardwareProfile("weak", mode="virtual"), 4.0)
    stats = train(build_model("tiny_cnn:8", 3, 1), x[:128], y[:128], epochs=1, seed=0,
                  throttle=throttle)
    assert stats.simulated_seconds == pytest.approx(4.0 * stats.compute_seconds)
    assert stats.seconds < 2.0 * stats.compute_seconds + 0.05


def test_sleep_throttle_really_slows_training(data: tuple[torch.Tensor, ...]) -> None:
    x, y, _, _ = data
    throttle = Throttle.from_slowdown(HardwareProfile("weak", mode="sleep"), 3.0)
    stats = train(build_model("tiny_cnn:8", 3, 1), x[:256], y[:256], epochs=1, batch_size=16,
                  seed=0, throttle=throttle)
    assert stats.seconds == pytest.approx(3.0 * stats.compute_seconds, rel=0.2)
    assert stats.simulated_seconds == pytest.approx(3.0 * stats.compute_seconds)


def test_profile_threads_apply_during_training_only(data: tuple[torch.Tensor, ...]) -> None:
    x, y, _, _ = data
    set_determinism(0, 1)
    seen: list[int] = []

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return torch.nn.functional.cross_entropy(logits, labels)

    throttle = Throttle(HardwareProfile("strong", threads=2))
    train(build_model("tiny_cnn:8", 3, 1), x[:32], y[:32], epochs=1, seed=0, throttle=throttle,
          loss_fn=loss)
    assert seen == [2] and torch.get_num_threads() == 1


def test_input_validation(data: tuple[torch.Tensor, ...]) -> None:
    x, y, _, _ = data
    model = build_model("tiny_cnn:8", 3, 1)
    with pytest.raises(DataError):
        train(model, x[:10], y[:9], epochs=1, seed=0)
    with pytest.raises(DataError):
        train(model, x[0], y[:1], epochs=1, seed=0)
    with pytest.raises(DataError):
        train(model, x[:4], y[:4].float(), epochs=1, seed=0)
    with pytest.raises(ConfigError):
        train(model, x[:4], y[:4], epochs=1, batch_size=0, seed=0)
    if not torch.cuda.is_available():
        with pytest.raises(ResourceError):
            train(model, x[:4], y[:4], epochs=1, seed=0, device="cuda")


def test_model_hash_is_canonical() -> None:
    model = build_model("tiny_cnn:8", 2, 1, seed=0)
    state = model.state_dict()
    h = model_hash(model)
    assert len(h) == 32 and h == model_hash(state)
    assert h == hashlib.sha256(state_dict_bytes(state)).digest()
    reordered = dict(reversed(list(state.items())))
    assert model_hash(reordered) == h
    permuted = {k: (v.to(memory_format=torch.channels_last) if v.ndim == 4 else v)
                for k, v in state.items()}
    assert model_hash(permuted) == h
    changed = {k: v.clone() for k, v in state.items()}
    changed["head.bias"][0] += 1e-6
    assert model_hash(changed) != h
    renamed = {("x" + k if k == "head.bias" else k): v for k, v in state.items()}
    assert model_hash(renamed) != h
    as_double = {k: (v.double() if v.is_floating_point() else v) for k, v in state.items()}
    assert model_hash(as_double) != h


def test_state_dict_bytes_size_and_exotic_dtypes() -> None:
    model = build_model("tiny_cnn:8", 2, 1, seed=0)
    state = model.state_dict()
    raw = sum(v.numel() * v.element_size() for v in state.values())
    blob = state_dict_bytes(state)
    assert raw < len(blob) < raw + 100 * len(state)
    bf = {k: (v.bfloat16() if v.is_floating_point() else v) for k, v in state.items()}
    assert len(state_dict_bytes(bf)) < len(blob)
    assert model_hash(bf) == model_hash({k: v.clone() for k, v in bf.items()})
