"""Tier → architecture registry: torchvision backbones with a C-class head, and a tiny CNN."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from chainlearn_ray.errors import ModelError
from chainlearn_ray.learning.rng import seeded
from chainlearn_ray.protocol.tiers import Tier

logger = logging.getLogger(__name__)

#: Attribute :func:`build_model` sets on a model: its :attr:`Architecture.cpu_channels_last`.
CPU_CHANNELS_LAST = "chainlearn_cpu_channels_last"
#: Attribute :func:`build_model` sets on a model: its :attr:`Architecture.cpu_eval_batch`.
CPU_EVAL_BATCH = "chainlearn_cpu_eval_batch"
#: Attribute :func:`build_model` sets on a model: the architecture name it was built from
#: (``"tiny_cnn:8"``), which the virtual clock's cost model prices.
ARCH_NAME = "chainlearn_arch"
#: Samples per forward pass when scoring, unless an architecture names its own for CPU.
EVAL_BATCH = 256

#: Width of ``"tiny_cnn"`` without a ``:<width>`` suffix.
TINY_DEFAULT_WIDTH = 16


class TinyCNN(nn.Module):
    """Three conv-BN-ReLU blocks (``w``, ``2w``, ``4w`` channels), global pooling, linear head.

    Works on any input side ``>= 4``; ``width`` scales the cost (``"tiny_cnn:8"`` … ``":32"``).
    """

    def __init__(self, n_classes: int, in_channels: int = 1, width: int = TINY_DEFAULT_WIDTH):
        super().__init__()
        w = int(width)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1, bias=False),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * w, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(N, n_classes)``."""
        return self.head(self.features(x))


@dataclass(frozen=True)
class Architecture:
    """How to build one architecture and where its stem convolution and head live.

    Attributes
    ----------
    name:
        Registry name.
    stem:
        Dotted path of the first convolution (adapted to the input channels).
    head:
        Dotted path of the final linear layer (replaced for C classes).
    weights_enum:
        torchvision weights attribute used for ``pretrained="imagenet"`` (``""`` if none).
    cpu_channels_last:
        Whether it runs in channels-last memory format on CPU. Measured at 28 px, batch 32, one
        thread: training 1.3-1.6x and evaluation 2-3x faster for the tiny CNN, MobileNetV3-Small
        and EfficientNet-B0; ResNet-50 trains no faster and evaluates slower, so it stays in the
        default format. (On CUDA every model runs channels-last.)
    cpu_eval_batch:
        Samples per forward pass when it scores data on CPU. The tiny CNN's activations are
        large for its compute: at 28 px, one thread, a batch of 128 scores 25-38 % faster than
        256 (its widest activation then fits a 4 MB L2 cache); MobileNetV3-Small, EfficientNet-B0
        and ResNet-50 are as fast or faster at 256. The probabilities are the same either way (bit
        for bit on that machine).
    """

    name: str
    stem: str
    head: str
    weights_enum: str = ""
    cpu_channels_last: bool = True
    cpu_eval_batch: int = EVAL_BATCH


ARCHITECTURES: dict[str, Architecture] = {
    "mobilenet_v3_small": Architecture(
        "mobilenet_v3_small", "features.0.0", "classifier.3", "MobileNet_V3_Small_Weights"
    ),
    "efficientnet_b0": Architecture(
        "efficientnet_b0", "features.0.0", "classifier.1", "EfficientNet_B0_Weights"
    ),
    "resnet50": Architecture("resnet50", "conv1", "fc", "ResNet50_Weights",
                             cpu_channels_last=False),
    "tiny_cnn": Architecture("tiny_cnn", "features.0", "head", cpu_eval_batch=128),
}

#: The protocol's model per tier (Weak → Light, Medium → Medium, Strong → Heavy).
DEFAULT_ARCH_BY_TIER: dict[Tier, str] = {
    Tier.WEAK: "mobilenet_v3_small",
    Tier.MEDIUM: "efficientnet_b0",
    Tier.STRONG: "resnet50",
}


def parse_arch(arch: str) -> tuple[Architecture, int | None]:
    """Split ``"tiny_cnn:8"`` into its registry entry and width (``None`` without a suffix).

    Raises
    ------
    ModelError
        Unknown name, or a width suffix on an architecture that takes none.
    """
    name, _, suffix = str(arch).strip().partition(":")
    if name not in ARCHITECTURES:
        raise ModelError(f"unknown architecture {arch!r}: use one of {', '.join(ARCHITECTURES)}"
                         " (tiny_cnn accepts a width suffix, e.g. tiny_cnn:8)")
    width: int | None = None
    if suffix:
        if name != "tiny_cnn":
            raise ModelError(f"only tiny_cnn takes a width suffix, got {arch!r}")
        try:
            width = int(suffix)
        except ValueError:
            raise ModelError(f"tiny_cnn width must be an integer, got {arch!r}") from None
        if width < 1:
            raise ModelError(f"tiny_cnn width must be positive, got {arch!r}")
    return ARCHITECTURES[name], width


def _get(module: nn.Module, dotted: str) -> nn.Module:
    return module.get_submodule(dotted)


def _set(module: nn.Module, dotted: str, new: nn.Module) -> None:
    parent, _, leaf = dotted.rpartition(".")
    owner = module.get_submodule(parent) if parent else module
    setattr(owner, leaf, new)


def _torchvision(spec: Architecture) -> nn.Module:
    """The torchvision architecture with its stock stem (3 channels) and head (1000 classes)."""
    import torchvision.models as tvm

    return getattr(tvm, spec.name)(weights=None)


#: BatchNorm momentum of every model trained from random initialisation (PyTorch's default).
SCRATCH_BN_MOMENTUM = 0.1


def _scratch_batchnorm(model: nn.Module) -> None:
    """Give every BatchNorm layer PyTorch's default momentum.

    torchvision's MobileNetV3 uses 0.01, a setting for long ImageNet training (and for
    fine-tuning weights whose running statistics are already right). From random
    initialisation, the few hundred steps of a federated run leave its running statistics
    near their initial values, and evaluation-mode predictions collapse to one class.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = SCRATCH_BN_MOMENTUM


def _replace_stem(model: nn.Module, spec: Architecture, in_channels: int) -> None:
    old = _get(model, spec.stem)
    if not isinstance(old, nn.Conv2d):
        raise ModelError(f"{spec.name}: {spec.stem} is not a convolution")
    if old.in_channels == in_channels:
        return
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size,  # type: ignore[arg-type]
                    old.stride, old.padding, bias=old.bias is not None)  # type: ignore[arg-type]
    _set(model, spec.stem, new)


def _replace_head(model: nn.Module, spec: Architecture, n_classes: int) -> None:
    old = _get(model, spec.head)
    if not isinstance(old, nn.Linear):
        raise ModelError(f"{spec.name}: {spec.head} is not a linear layer")
    _set(model, spec.head, nn.Linear(old.in_features, n_classes))


def imagenet_weights_path(arch: str) -> tuple[Path, str]:
    """Where torchvision caches ``arch``'s ImageNet weights, and the URL they come from."""
    spec, _ = parse_arch(arch)
    if not spec.weights_enum:
        raise ModelError(f"{spec.name} has no ImageNet weights; pass pretrained=None")
    import torchvision.models as tvm

    url = str(getattr(tvm, spec.weights_enum).IMAGENET1K_V1.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1], url


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read weights file {path}: {exc}") from exc
    if isinstance(raw, Mapping) and "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ModelError(f"{path} does not hold a state dict of tensors")
    return dict(raw)


def _load_compatible(model: nn.Module, spec: Architecture, state: Mapping[str, torch.Tensor],
                     source: Path) -> None:
    """Copy ``state`` into ``model``: the head is re-initialised when its shape differs and a
    stem trained on 3 channels is averaged over them (× 3 / in_channels) for other inputs."""
    own = model.state_dict()
    stem_w, head_prefix = f"{spec.stem}.weight", f"{spec.head}."
    merged: dict[str, torch.Tensor] = {}
    problems: list[str] = []
    for key, target in own.items():
        src = state.get(key)
        if src is None:
            if key.endswith("num_batches_tracked"):
                continue
            problems.append(f"missing {key}")
        elif src.shape == target.shape:
            merged[key] = src
        elif key.startswith(head_prefix):
            logger.info("%s: head %s re-initialised (%s -> %s)", source, key,
                        tuple(src.shape), tuple(target.shape))
        elif key == stem_w and src.shape[0] == target.shape[0] and src.shape[2:] == \
                target.shape[2:]:
            in_ch = target.shape[1]
            merged[key] = src.mean(dim=1, keepdim=True).repeat(1, in_ch, 1, 1) * (
                src.shape[1] / in_ch)
        else:
            problems.append(f"{key} {tuple(src.shape)} != {tuple(target.shape)}")
    if problems:
        raise ModelError(f"weights in {source} do not fit {spec.name}: {'; '.join(problems[:5])}")
    model.load_state_dict(merged, strict=False)


#: Layers whose training forward and backward draw nothing from torch's global generator.
_RNG_FREE_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
    nn.GroupNorm, nn.LayerNorm, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU,
    nn.Sigmoid, nn.Tanh, nn.GELU, nn.Identity, nn.MaxPool2d, nn.AvgPool2d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Linear,
)


def draws_global_rng(model: nn.Module) -> bool:
    """Whether training ``model`` draws from torch's global generator (dropout, stochastic
    depth, or any layer not known to be free of randomness).

    Decided on the leaf layers (containers only call them); dropout with ``p = 0`` draws
    nothing. :func:`chainlearn_ray.planning.resources.arch_draws_rng` states the same per
    architecture, for planning without torch; a test holds the two equal.
    """
    for layer in model.modules():
        if next(layer.children(), None) is not None:
            continue
        if isinstance(layer, nn.modules.dropout._DropoutNd) and layer.p == 0:
            continue
        if not isinstance(layer, _RNG_FREE_LAYERS):
            return True
    return False


def build_model(
    arch: str,
    n_classes: int,
    in_channels: int,
    *,
    pretrained: str | Path | None = None,
    seed: int | None = None,
) -> nn.Module:
    """Build an architecture for ``n_classes`` classes and ``in_channels`` input channels.

    Parameters
    ----------
    arch:
        A name of :data:`ARCHITECTURES`; ``"tiny_cnn:<width>"`` sets the tiny CNN's width.
    n_classes:
        Size of the replaced classification head.
    in_channels:
        Input channels; the stem convolution is rebuilt when it is not 3.
    pretrained:
        ``None`` (random init), ``"imagenet"`` (torchvision's ImageNet-1k V1 weights, read from
        the torch hub cache only), or the path of a local state-dict file for this architecture.
        The head is re-initialised when its class count differs; a 3-channel stem is averaged
        for other inputs. Nothing is ever downloaded and there is no silent fall-back.
        Pretrained models keep the architecture's BatchNorm momentum; models trained from
        random initialisation use PyTorch's default 0.1 in every BatchNorm layer (see
        :data:`SCRATCH_BN_MOMENTUM`: MobileNetV3's 0.01 leaves its running statistics
        unconverged in a short run, so it predicts one class in evaluation mode).
    seed:
        Seeds the initialisation (``None`` uses the global RNG).

    Returns
    -------
    torch.nn.Module
        The model on CPU, in training mode.

    Raises
    ------
    ModelError
        Unknown architecture, bad sizes, or missing / incompatible weights (the message says
        where to put the file).
    """
    spec, width = parse_arch(arch)
    if n_classes < 1 or in_channels < 1:
        raise ModelError(f"need n_classes >= 1 and in_channels >= 1, got {n_classes}, "
                         f"{in_channels}")
    state: dict[str, torch.Tensor] | None = None
    source: Path | None = None
    if pretrained is not None and str(pretrained) == "imagenet":
        source, url = imagenet_weights_path(arch)
        if not source.is_file():
            raise ModelError(
                f"ImageNet weights for {spec.name} are not in the torch hub cache: download "
                f"{url} and save it as {source} (or set TORCH_HOME), or run without pretrained "
                "weights"
            )
    elif pretrained is not None:
        source = Path(pretrained).expanduser()
        if not source.is_file():
            raise ModelError(f"pretrained weights file {source} not found: put the state dict "
                             "there or run without pretrained weights")
    if source is not None:
        state = _read_state(source)
    with seeded(seed):
        if spec.name == "tiny_cnn":
            model: nn.Module = TinyCNN(n_classes, in_channels, width or TINY_DEFAULT_WIDTH)
        else:
            model = _torchvision(spec)
            _replace_stem(model, spec, in_channels)
            _replace_head(model, spec, n_classes)
    if state is not None and source is not None:
        _load_compatible(model, spec, state, source)
        logger.info("loaded %s weights from %s", spec.name, source)
    else:
        _scratch_batchnorm(model)
    setattr(model, CPU_CHANNELS_LAST, spec.cpu_channels_last)
    setattr(model, CPU_EVAL_BATCH, spec.cpu_eval_batch)
    setattr(model, ARCH_NAME, str(arch).strip())
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not), buffers excluded."""
    return sum(p.numel() for p in model.parameters())

