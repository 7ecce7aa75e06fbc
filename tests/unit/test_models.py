"""Model registry: parameter counts, heads and stems, seeding, local pretrained weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from chainlearn_ray.errors import ModelError
from chainlearn_ray.learning.models import (
    ARCHITECTURES,
    DEFAULT_ARCH_BY_TIER,
    build_model,
    count_parameters,
    draws_global_rng,
    imagenet_weights_path,
    parse_arch,
)
from chainlearn_ray.planning.resources import arch_draws_rng
from chainlearn_ray.protocol.tiers import Tier


@pytest.mark.parametrize(
    ("arch", "params"),
    [("mobilenet_v3_small", 1_519_906), ("efficientnet_b0", 4_010_110), ("resnet50", 23_512_130)],
)
def test_two_class_parameter_counts_match_the_protocol(arch: str, params: int) -> None:
    model = build_model(arch, 2, 3)
    assert count_parameters(model) == params
    model.eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 28, 28)).shape == (2, 2)


def test_tier_registry() -> None:
    assert DEFAULT_ARCH_BY_TIER == {Tier.WEAK: "mobilenet_v3_small",
                                    Tier.MEDIUM: "efficientnet_b0", Tier.STRONG: "resnet50"}
    assert set(ARCHITECTURES) == {"mobilenet_v3_small", "efficientnet_b0", "resnet50", "tiny_cnn"}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_which_models_draw_random_numbers_in_training(arch: str) -> None:
    # the planner's torch-free table says what inspecting the built model says
    model = build_model(arch, 2, 1)
    assert draws_global_rng(model) == arch_draws_rng(arch)
    assert arch_draws_rng(arch) == (arch in ("mobilenet_v3_small", "efficientnet_b0"))
    # dropout that drops nothing draws nothing; an unknown layer counts as drawing
    quiet = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.0))
    assert not draws_global_rng(quiet)
    assert draws_global_rng(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.RReLU()))


def test_grey_stem_and_seven_class_head() -> None:
    model = build_model("mobilenet_v3_small", 7, 1, seed=0)
    assert model.features[0][0].in_channels == 1  # type: ignore[index]
    model.eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 7)


@pytest.mark.parametrize(("arch", "width"), [("tiny_cnn", 16), ("tiny_cnn:8", 8),
                                             ("tiny_cnn:32", 32)])
def test_tiny_cnn_widths(arch: str, width: int) -> None:
    model = build_model(arch, 3, 1, seed=0)
    assert model.head.in_features == 4 * width  # type: ignore[union-attr]
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 3)


def test_widths_order_the_cost() -> None:
    sizes = [count_parameters(build_model(f"tiny_cnn:{w}", 2, 1)) for w in (8, 16, 32)]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3


def test_seed_fixes_initialisation_without_touching_global_rng() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("tiny_cnn", 2, 1, seed=5)
    assert torch.equal(torch.rand(1), expected_next)
    b = build_model("tiny_cnn", 2, 1, seed=5)
    c = build_model("tiny_cnn", 2, 1, seed=6)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])
    assert not torch.equal(a.head.weight, c.head.weight)  # type: ignore[union-attr]


@pytest.mark.parametrize("arch", ["vgg16", "tiny_cnn:x", "tiny_cnn:0", "resnet50:4"])
def test_bad_architecture_names(arch: str) -> None:
    with pytest.raises(ModelError):
        parse_arch(arch)


def test_local_weights_keep_backbone_reinit_head_and_adapt_stem(tmp_path: Path) -> None:
    source = build_model("tiny_cnn", 5, 3, seed=1)
    path = tmp_path / "tiny.pt"
    torch.save(source.state_dict(), path)
    loaded = build_model("tiny_cnn", 2, 1, pretrained=path, seed=2)
    fresh = build_model("tiny_cnn", 2, 1, seed=2)
    src, dst = source.state_dict(), loaded.state_dict()
    assert torch.equal(dst["features.4.weight"], src["features.4.weight"])
    assert torch.equal(dst["features.1.running_mean"], src["features.1.running_mean"])
    torch.testing.assert_close(dst["features.0.weight"],
                               src["features.0.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(dst["head.weight"], fresh.state_dict()["head.weight"])


def test_same_shape_weights_load_exactly(tmp_path: Path) -> None:
    source = build_model("tiny_cnn:8", 3, 1, seed=1)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "w.pt")
    loaded = build_model("tiny_cnn:8", 3, 1, pretrained=tmp_path / "w.pt")
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_incompatible_or_missing_weights_fail_loudly(tmp_path: Path) -> None:
    torch.save(build_model("tiny_cnn:8", 2, 1).state_dict(), tmp_path / "w8.pt")
    with pytest.raises(ModelError, match="do not fit"):
        build_model("tiny_cnn:16", 2, 1, pretrained=tmp_path / "w8.pt")
    with pytest.raises(ModelError, match="not found"):
        build_model("tiny_cnn", 2, 1, pretrained=tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ModelError, match="cannot read"):
        build_model("tiny_cnn", 2, 1, pretrained=tmp_path / "junk.pt")


def test_imagenet_weights_come_from_the_hub_cache_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, url = imagenet_weights_path("mobilenet_v3_small")
    assert path.parent == tmp_path / "hub" / "checkpoints" and url.endswith(path.name)
    with pytest.raises(ModelError) as info:
        build_model("mobilenet_v3_small", 2, 1, pretrained="imagenet")
    assert str(path) in str(info.value) and url in str(info.value)
    # a checkpoint in the torchvision layout (1000-class head, RGB stem) placed in the cache
    import torchvision.models as tvm

    stock = tvm.mobilenet_v3_small(weights=None)
    path.parent.mkdir(parents=True)
    torch.save(stock.state_dict(), path)
    model = build_model("mobilenet_v3_small", 2, 1, pretrained="imagenet")
    ours, theirs = model.state_dict(), stock.state_dict()
    assert torch.equal(ours["features.3.block.0.0.weight"], theirs["features.3.block.0.0.weight"])
    torch.testing.assert_close(ours["features.0.0.weight"],
                               theirs["features.0.0.weight"].sum(dim=1, keepdim=True))
    assert ours["classifier.3.weight"].shape == (2, 1024)
    with pytest.raises(ModelError, match="no ImageNet"):
        build_model("tiny_cnn", 2, 1, pretrained="imagenet")


def _batchnorm_momenta(model: torch.nn.Module) -> set[float | None]:
    return {m.momentum for m in model.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}


def test_models_from_scratch_use_default_batchnorm_momentum(tmp_path: Path) -> None:
    # torchvision's MobileNetV3 ships with 0.01; from random initialisation every BatchNorm
    # layer gets PyTorch's default, while pretrained weights keep the architecture's own
    stock = ARCHITECTURES["mobilenet_v3_small"]
    scratch = build_model(stock.name, 2, 1, seed=0)
    assert _batchnorm_momenta(scratch) == {0.1}
    torch.save(scratch.state_dict(), tmp_path / "m.pt")
    assert _batchnorm_momenta(build_model(stock.name, 2, 1, pretrained=tmp_path / "m.pt")) == {
        0.01}


@pytest.mark.slow
def test_mobilenet_from_scratch_predicts_both_classes_after_a_short_run() -> None:
    # 64 steps: with the stock momentum the running statistics stay near their
    # initial values and evaluation-mode predictions collapse to one class
    from chainlearn_ray.learning.training import predict_proba, train

    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (512,), generator=gen)
    x = torch.randn(512, 1, 28, 28, generator=gen) * 0.5 + y.view(-1, 1, 1, 1).float() * 2.0
    model = build_model("mobilenet_v3_small", 2, 1, seed=0)
    train(model, x, y, epochs=4, batch_size=32, lr=1e-3, seed=0)
    pred = predict_proba(model, x).argmax(axis=1)
    assert set(pred.tolist()) == {0, 1}
    assert (pred == y.numpy()).mean() > 0.8
