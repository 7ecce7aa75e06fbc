"""Turn uint8 image arrays into normalised float32 NCHW tensors, once per hospital."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from chainlearn_ray.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

#: ImageNet channel statistics (torchvision's pretrained-weights convention).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: MedMNIST examples' normalisation: every channel ``(x - 0.5) / 0.5``.
DATASET_MEAN = 0.5
DATASET_STD = 0.5

Normalize = Literal["dataset", "imagenet", "none"]

#: Images converted per chunk (bounds the peak memory of resizing to 224 px).
_CHUNK = 512


def _resize(batch: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of an NCHW float batch (antialiased when shrinking)."""
    shrink = size < batch.shape[-1]
    return F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=shrink)


def to_tensor(
    images: np.ndarray,
    *,
    size: int | None = None,
    rgb: bool = False,
    normalize: Normalize = "dataset",
) -> torch.Tensor:
    """Convert MedMNIST uint8 images to a model-ready float32 tensor.

    Parameters
    ----------
    images:
        uint8 array ``N×H×W`` (grey) or ``N×H×W×C``.
    size:
        Target side; ``None`` keeps the stored size (e.g. 224 reproduces the reference's
        28→224 bilinear upsampling).
    rgb:
        Repeat a grey channel three times (for ImageNet backbones); a no-op for 3 channels.
    normalize:
        ``"dataset"``: ``(x - 0.5) / 0.5`` per channel (MedMNIST convention); ``"imagenet"``:
        ImageNet mean/std (needs 3 channels, so use ``rgb=True`` for grey data); ``"none"``:
        pixels scaled to ``[0, 1]`` only.

    Returns
    -------
    torch.Tensor
        Contiguous float32 tensor of shape ``(N, C, size, size)``.
    """
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4):
        raise DataError(f"expected uint8 N×H×W[×C] images, got {arr.dtype} {arr.shape}")
    if normalize not in ("dataset", "imagenet", "none"):
        raise ConfigError(f"unknown normalisation {normalize!r}: use dataset, imagenet or none")
    if size is not None and size < 1:
        raise ConfigError(f"image size must be positive, got {size}")
    channels = 1 if arr.ndim == 3 else arr.shape[3]
    out_channels = 3 if (rgb and channels == 1) else channels
    if rgb and channels not in (1, 3):
        raise ConfigError(f"rgb=True needs 1 or 3 channels, the images have {channels}")
    if normalize == "imagenet" and out_channels != 3:
        raise ConfigError("ImageNet normalisation needs 3 channels: pass rgb=True for grey images")
    n = arr.shape[0]
    side = int(size) if size is not None else int(arr.shape[1])
    out = torch.empty((n, out_channels, side, side), dtype=torch.float32)
    if normalize == "imagenet":
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    else:
        mean = torch.tensor(DATASET_MEAN if normalize == "dataset" else 0.0)
        std = torch.tensor(DATASET_STD if normalize == "dataset" else 1.0)
    for start in range(0, n, _CHUNK):
        chunk = torch.from_numpy(np.ascontiguousarray(arr[start : start + _CHUNK]))
        chunk = chunk.unsqueeze(1) if arr.ndim == 3 else chunk.permute(0, 3, 1, 2)
        x = chunk.to(torch.float32).div_(255.0)
        if x.shape[-1] != side or x.shape[-2] != side:
            x = _resize(x, side)
        if out_channels != x.shape[1]:
            x = x.expand(-1, out_channels, -1, -1)
        out[start : start + _CHUNK] = (x - mean) / std
    return out
