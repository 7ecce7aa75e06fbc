"""Image transforms: layout, resizing, grey→RGB and the three normalisations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from chainlearn_ray.data.transforms import IMAGENET_MEAN, IMAGENET_STD, to_tensor
from chainlearn_ray.errors import ConfigError, DataError


def grey(n: int = 3, size: int = 28) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size), dtype=np.uint8)


def test_grey_layout_and_dataset_normalisation() -> None:
    images = grey()
    x = to_tensor(images)
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32 and x.is_contiguous()
    expected = (images.astype(np.float32) / 255.0 - 0.5) / 0.5
    np.testing.assert_allclose(x[:, 0].numpy(), expected, atol=1e-6)
    assert x.min() >= -1.0 and x.max() <= 1.0


def test_colour_images_become_nchw() -> None:
    images = np.random.default_rng(1).integers(0, 256, (2, 28, 28, 3), dtype=np.uint8)
    x = to_tensor(images, normalize="none")
    np.testing.assert_allclose(x.permute(0, 2, 3, 1).numpy(), images / 255.0, atol=1e-6)


def test_reference_pipeline_upsamples_copies_grey_and_uses_imagenet_stats() -> None:
    images = grey(2)
    x = to_tensor(images, size=224, rgb=True, normalize="imagenet")
    assert x.shape == (2, 3, 224, 224)
    raw = torch.from_numpy(images).float().div(255).unsqueeze(1)
    up = F.interpolate(raw, size=(224, 224), mode="bilinear", align_corners=False)
    for c in range(3):
        np.testing.assert_allclose(
            x[:, c].numpy(), ((up[:, 0] - IMAGENET_MEAN[c]) / IMAGENET_STD[c]).numpy(), atol=1e-5)


def test_downsizing_and_chunking_agree_with_one_shot() -> None:
    images = np.random.default_rng(2).integers(0, 256, (1100, 8, 8), dtype=np.uint8)
    x = to_tensor(images, size=4, normalize="none")
    ref = F.interpolate(torch.from_numpy(images).float().div(255).unsqueeze(1), size=(4, 4),
                        mode="bilinear", align_corners=False, antialias=True)
    np.testing.assert_allclose(x.numpy(), ref.numpy(), atol=1e-6)


def test_errors() -> None:
    with pytest.raises(ConfigError, match="rgb=True"):
        to_tensor(grey(), normalize="imagenet")
    with pytest.raises(ConfigError):
        to_tensor(grey(), normalize="zscore")  # type: ignore[arg-type]
    with pytest.raises(DataError):
        to_tensor(grey().astype(np.float32))
    with pytest.raises(DataError):
        to_tensor(np.zeros((28, 28), np.uint8))
