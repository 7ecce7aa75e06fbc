"""Synthetic image-classification data written in the MedMNIST ``.npz`` file format."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from chainlearn_ray.data.catalog import META_CHANNELS, META_CLASSES, dataset_filename, medmnist_info
from chainlearn_ray.errors import DataError

logger = logging.getLogger(__name__)



def _class_images(
    rng: np.random.Generator, labels: np.ndarray, n_classes: int, n_channels: int, size: int
) -> np.ndarray:
    """Images whose structure depends on the class: an oriented grating plus a placed blob.

    Class ``k`` gets a sinusoidal grating at angle ``π k / C`` with a class-dependent spatial
    frequency, a bright Gaussian blob on a class-specific point of a circle, and (with several
    channels) a class-specific colour balance; each image has a random phase, jittered blob
    position, random contrast and pixel noise, so the classes overlap a little but a small CNN
    separates them within an epoch or two.
    """
    n = len(labels)
    coords = (np.arange(size, dtype=np.float64) + 0.5) / size - 0.5
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    k = labels.astype(np.float64)
    theta = np.pi * k / n_classes
    freq = 3.0 + 2.0 * (k % 3)
    phase = rng.uniform(0.0, 2 * np.pi, n)
    proj = np.cos(theta)[:, None, None] * xx + np.sin(theta)[:, None, None] * yy
    grating = np.sin(2 * np.pi * freq[:, None, None] * proj + phase[:, None, None])
    angle = 2 * np.pi * k / n_classes
    cx = 0.25 * np.cos(angle) + rng.normal(0.0, 0.04, n)
    cy = 0.25 * np.sin(angle) + rng.normal(0.0, 0.04, n)
    dist2 = (xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2
    blob = np.exp(-dist2 / (2 * 0.08**2))
    contrast = rng.uniform(0.6, 1.0, n)[:, None, None]
    base = 0.5 + 0.22 * contrast * grating + 0.35 * blob
    if n_channels == 1:
        stack = base[..., None]
    else:
        offsets = np.arange(n_channels, dtype=np.float64)
        gains = 0.75 + 0.25 * np.cos(2 * np.pi * (k[:, None] + offsets[None, :]) / n_classes)
        stack = base[..., None] * gains[:, None, None, :]
    noisy = stack + rng.normal(0.0, 0.08, stack.shape)
    pixels = np.clip(np.rint(noisy * 255.0), 0, 255).astype(np.uint8)
    return pixels[..., 0] if n_channels == 1 else pixels


def make_split(
    rng: np.random.Generator, n: int, n_classes: int, n_channels: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """One split: ``n`` images (uint8, ``N×H×W`` or ``N×H×W×C``) and ``(n, 1)`` uint8 labels.

    Labels cycle through the classes in a shuffled order, so every class is present whenever
    ``n >= n_classes`` and the classes are balanced.
    """
    labels = rng.permutation(np.arange(n) % n_classes)
    images = _class_images(rng, labels, n_classes, n_channels, size)
    return images, labels.astype(np.uint8).reshape(-1, 1)


def write_synthetic(
    data_dir: str | Path,
    flag: str = "synthetic",
    *,
    n_classes: int = 2,
    n_channels: int = 1,
    size: int = 28,
    n_train: int = 600,
    n_val: int = 200,
    n_test: int = 200,
    seed: int = 0,
) -> Path:
    """Write a learnable synthetic dataset as ``<data_dir>/<flag>[_<size>].npz``.

    The file holds the MedMNIST keys (``train_images``, ``train_labels`` shaped ``(n, 1)``
    uint8, and the same for ``val`` and ``test``) plus two scalar metadata keys
    (:data:`META_CLASSES`, :data:`META_CHANNELS`), so :func:`chainlearn_ray.data.medmnist.
    load_dataset` reads it like any MedMNIST flag.

    Parameters
    ----------
    data_dir:
        Folder to write into (created if missing).
    flag:
        Dataset name; must not be a MedMNIST flag, so real data is never shadowed.
    n_classes, n_channels, size:
        Number of classes (2..256), channels (1 or 3, any ``>= 1`` works) and image side.
    n_train, n_val, n_test:
        Split sizes.
    seed:
        Seed of the generator; the same arguments always write identical arrays.

    Returns
    -------
    pathlib.Path
        Path of the written file.
    """
    if not 2 <= n_classes <= 256:
        raise DataError(f"n_classes must lie in [2, 256], got {n_classes}")
    if n_channels < 1 or size < 4:
        raise DataError(f"need n_channels >= 1 and size >= 4, got {n_channels} and {size}")
    if min(n_train, n_val, n_test) < 1:
        raise DataError("every split needs at least one sample")
    if flag in medmnist_info():
        raise DataError(f"{flag!r} is a MedMNIST flag: choose another name for synthetic data")
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        images, labels = make_split(rng, n, n_classes, n_channels, size)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels
    arrays[META_CLASSES] = np.array(n_classes, dtype=np.int64)
    arrays[META_CHANNELS] = np.array(n_channels, dtype=np.int64)
    path = root / dataset_filename(flag, size)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)
    logger.info("wrote synthetic dataset %s (%d classes, %d channels)", path, n_classes, n_channels)
    return path
