"""Synthetic data in the MedMNIST format: file layout, metadata, determinism, structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chainlearn_ray.data.catalog import dataset_filename
from chainlearn_ray.data.medmnist import load_dataset
from chainlearn_ray.data.synthetic import write_synthetic
from chainlearn_ray.errors import DataError


def test_file_has_medmnist_keys_and_shapes(tmp_path: Path) -> None:
    path = write_synthetic(tmp_path, n_train=30, n_val=10, n_test=12)
    assert path == tmp_path / "synthetic.npz"
    with np.load(path) as npz:
        assert npz["train_images"].shape == (30, 28, 28)
        assert npz["train_images"].dtype == np.uint8
        assert npz["train_labels"].shape == (30, 1)
        assert npz["train_labels"].dtype == np.uint8
        assert npz["test_images"].shape == (12, 28, 28)


def test_loader_reads_classes_and_channels(tmp_path: Path) -> None:
    write_synthetic(tmp_path, "syn7", n_classes=7, n_channels=3, size=64, n_train=21, n_val=7,
                    n_test=14)
    data = load_dataset("syn7", tmp_path, size=64)
    assert (data.n_classes, data.n_channels, data.size) == (7, 3, 64)
    assert data.train.images.shape == (21, 64, 64, 3)
    assert sorted(set(data.train.labels.tolist())) == list(range(7))
    assert (tmp_path / dataset_filename("syn7", 64)).is_file()


def test_loader_infers_metadata_from_a_plain_file(tmp_path: Path) -> None:
    path = write_synthetic(tmp_path, "plain", n_classes=3, n_channels=3, n_train=9, n_val=3,
                           n_test=3)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.startswith("meta_")}
    np.savez(tmp_path / "bare.npz", **arrays)
    data = load_dataset("bare", tmp_path)
    assert (data.n_classes, data.n_channels) == (3, 3)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = write_synthetic(tmp_path / "a", n_train=20, n_val=4, n_test=4, seed=3)
    b = write_synthetic(tmp_path / "b", n_train=20, n_val=4, n_test=4, seed=3)
    c = write_synthetic(tmp_path / "c", n_train=20, n_val=4, n_test=4, seed=4)
    with np.load(a) as na, np.load(b) as nb, np.load(c) as nc:
        np.testing.assert_array_equal(na["train_images"], nb["train_images"])
        assert not np.array_equal(na["train_images"], nc["train_images"])


def test_classes_differ_in_structure_not_only_noise(tmp_path: Path) -> None:
    write_synthetic(tmp_path, n_classes=4, n_train=400, n_val=4, n_test=4)
    data = load_dataset("synthetic", tmp_path)
    x = data.train.images.astype(np.float64)
    y = data.train.labels
    means = np.stack([x[y == k].mean(axis=0) for k in range(4)])
    # class mean images differ far more than the per-class noise of a mean over ~100 images
    between = np.mean([np.abs(means[i] - means[j]).mean() for i in range(4) for j in range(i)])
    assert between > 5.0
    # a nearest-class-mean classifier already separates the classes well
    dists = ((x[:, None] - means[None]) ** 2).sum(axis=(2, 3))
    assert np.mean(dists.argmin(axis=1) == y) > 0.8


def test_refuses_to_shadow_a_medmnist_flag_and_bad_sizes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="MedMNIST flag"):
        write_synthetic(tmp_path, "pneumoniamnist")
    with pytest.raises(DataError):
        write_synthetic(tmp_path, n_classes=1)
    with pytest.raises(DataError):
        write_synthetic(tmp_path, n_train=0)
