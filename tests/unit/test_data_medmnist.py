"""MedMNIST loading: real PneumoniaMNIST file, data-folder resolution, split modes, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from chainlearn_ray.data.catalog import medmnist_info
from chainlearn_ray.data.medmnist import DATA_ENV, default_data_dir, load_dataset, resolve_data_dir
from chainlearn_ray.data.synthetic import write_synthetic
from chainlearn_ray.errors import DataError
from tests.shared_data import SHARED_DATA

SHARED = SHARED_DATA
needs_real = pytest.mark.skipif(not (SHARED / "pneumoniamnist.npz").is_file(),
                                reason="real PneumoniaMNIST file not available")


@needs_real
def test_real_pneumonia_official_splits() -> None:
    data = load_dataset("pneumoniamnist", SHARED)
    assert (data.n_classes, data.n_channels, data.size) == (2, 1, 28)
    assert (len(data.train), len(data.val), len(data.test)) == (4708, 524, 624)
    assert data.train.images.shape == (4708, 28, 28)
    assert data.train.images.dtype == np.uint8
    assert data.train.labels.dtype == np.int64 and data.train.labels.shape == (4708,)
    assert np.bincount(data.train.labels).tolist() == [1214, 3494]
    assert np.bincount(data.test.labels).tolist() == [234, 390]
    assert data.label_names == ("normal", "pneumonia")


@needs_real
def test_reference_halved_matches_random_split_with_seed_zero() -> None:
    official = load_dataset("pneumoniamnist", SHARED)
    halved = load_dataset("pneumoniamnist", SHARED, split_mode="reference_halved")
    assert (len(halved.val), len(halved.test)) == (312, 312)
    first, second = torch.utils.data.random_split(
        range(624), [312, 312], generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(halved.val.images, official.test.images[list(first)])
    np.testing.assert_array_equal(halved.test.labels, official.test.labels[list(second)])
    np.testing.assert_array_equal(halved.train.images, official.train.images)


def _fake_medmnist(root: Path, flag: str, n: tuple[int, int, int], channels: int,
                   n_classes: int, size: int = 28) -> None:
    """A file with MedMNIST keys and shapes (zeros with cycling labels)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n, strict=True):
        shape = (count, size, size) if channels == 1 else (count, size, size, channels)
        arrays[f"{split}_images"] = rng.integers(0, 255, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % n_classes).astype(np.uint8)[:, None]
    name = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    np.savez(root / name, **arrays)


def test_derma_uses_medmnist_info_and_halves_2005_into_1002_1003(tmp_path: Path) -> None:
    _fake_medmnist(tmp_path, "dermamnist", (70, 10, 2005), channels=3, n_classes=7)
    data = load_dataset("dermamnist", tmp_path, split_mode="reference_halved")
    assert (data.n_classes, data.n_channels) == (7, 3)
    assert data.train.images.shape == (70, 28, 28, 3)
    assert (len(data.val), len(data.test)) == (1002, 1003)


def test_larger_size_uses_the_suffixed_file_name(tmp_path: Path) -> None:
    _fake_medmnist(tmp_path, "breastmnist", (8, 4, 4), channels=1, n_classes=2, size=64)
    assert load_dataset("breastmnist", tmp_path, size=64).train.images.shape == (8, 64, 64)
    with pytest.raises(DataError, match=r"breastmnist\.npz"):
        load_dataset("breastmnist", tmp_path)


def test_missing_file_names_file_folder_and_url(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("pneumoniamnist", tmp_path / "nowhere", size=128)
    text = str(info.value)
    assert "pneumoniamnist_128.npz" in text
    assert str(tmp_path / "nowhere") in text
    assert "zenodo.org" in text
    assert not (tmp_path / "nowhere").exists()


def test_unknown_flag_without_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="write_synthetic"):
        load_dataset("nosuchflag", tmp_path)


@pytest.mark.parametrize("flag", ["organmnist3d", "chestmnist"])
def test_3d_and_multilabel_flags_are_rejected(tmp_path: Path, flag: str) -> None:
    with pytest.raises(DataError):
        load_dataset(flag, tmp_path)


def test_bad_size_and_split_mode(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="sizes"):
        load_dataset("pneumoniamnist", tmp_path, size=32)
    with pytest.raises(DataError, match="split_mode"):
        load_dataset("pneumoniamnist", tmp_path, split_mode="halved")


def test_image_size_mismatch_is_reported(tmp_path: Path) -> None:
    _fake_medmnist(tmp_path, "breastmnist", (8, 4, 4), channels=1, n_classes=2, size=32)
    (tmp_path / "breastmnist_32.npz").rename(tmp_path / "breastmnist_64.npz")
    with pytest.raises(DataError, match="expected 64"):
        load_dataset("breastmnist", tmp_path, size=64)


def test_corrupt_file_and_missing_keys(tmp_path: Path) -> None:
    (tmp_path / "breastmnist.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="readable"):
        load_dataset("breastmnist", tmp_path)
    np.savez(tmp_path / "breastmnist.npz", train_images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="lacks"):
        load_dataset("breastmnist", tmp_path)


def test_data_dir_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv(DATA_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir(None) == default_data_dir()
    assert default_data_dir() == tmp_path / "cache" / "chainlearn" / "medmnist"


def test_env_folder_is_used_by_the_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_medmnist(tmp_path, "breastmnist", (6, 3, 3), channels=1, n_classes=2)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert len(load_dataset("breastmnist").train) == 6


def test_medmnist_info_is_the_packages_table() -> None:
    import medmnist

    info = medmnist_info()
    assert info == medmnist.INFO
    assert info["pneumoniamnist"]["n_channels"] == 1
    assert len(info["dermamnist"]["label"]) == 7


def test_without_medmnist_synthetic_files_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "medmnist", None)  # import medmnist raises ImportError
    assert medmnist_info() == {}
    write_synthetic(tmp_path, n_classes=3, n_train=12, n_val=6, n_test=6, seed=0)
    data = load_dataset("synthetic", tmp_path)
    assert (data.n_classes, len(data.train), len(data.val), len(data.test)) == (3, 12, 6, 6)
