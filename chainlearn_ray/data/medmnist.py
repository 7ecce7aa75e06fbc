"""Load 2D MedMNIST datasets (or synthetic ones in the same format) from a data folder."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chainlearn_ray.data.catalog import META_CHANNELS, META_CLASSES, dataset_filename, medmnist_info
from chainlearn_ray.errors import DataError

logger = logging.getLogger(__name__)

#: Environment variable naming the data folder when no ``data_dir`` is passed.
DATA_ENV = "CHAINLEARN_DATA"

#: Image sides MedMNIST publishes.
MEDMNIST_SIZES = (28, 64, 128, 224)

#: Ways to build the val/test splits.
SPLIT_MODES = ("official", "reference_halved")

#: Seed of the generator the reference used to halve the official test split.
REFERENCE_SPLIT_SEED = 0


@dataclass(frozen=True, eq=False)
class Split:
    """Images and labels of one split.

    Attributes
    ----------
    images:
        uint8 array ``N×H×W`` (grey) or ``N×H×W×C``, as stored in the file.
    labels:
        int64 array of shape ``(N,)``.
    """

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True, eq=False)
class MedMNISTData:
    """A loaded dataset: its description and its train / val / test splits."""

    flag: str
    n_classes: int
    n_channels: int
    size: int
    train: Split
    val: Split
    test: Split
    split_mode: str = "official"
    path: Path | None = None
    #: Validation images held out for an auditor (trust mode): no hospital is given them; the
    #: ``val`` split is what is left.
    audit: Split | None = None

    @property
    def label_names(self) -> tuple[str, ...]:
        """Class names from ``medmnist.INFO`` for a MedMNIST flag, else ``"0"``, ``"1"``, ...

        Looked up on first use only: importing ``medmnist`` costs seconds of CPU, and a run that
        reads a local file never needs the names.
        """
        info = medmnist_info().get(self.flag)
        if info is not None and len(info["label"]) == self.n_classes:
            return tuple(str(v) for _, v in sorted(info["label"].items(), key=lambda kv:
                                                   int(kv[0])))
        return tuple(str(i) for i in range(self.n_classes))


def user_cache_dir() -> Path:
    """The package's per-user cache folder (``~/.cache/chainlearn`` on Linux)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "chainlearn"


def default_data_dir() -> Path:
    """Per-user cache folder for datasets (``~/.cache/chainlearn/medmnist`` on Linux)."""
    return user_cache_dir() / "medmnist"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data folder: ``data_dir`` if given, else ``$CHAINLEARN_DATA``, else the user cache."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV, "")
    if env:
        return Path(env).expanduser()
    return default_data_dir()


def _download_url(flag: str, size: int) -> str:
    info = medmnist_info().get(flag, {})
    key = "url" if size == 28 else f"url_{size}"
    return str(info.get(key, "https://zenodo.org/records/10519652"))


def _download(flag: str, size: int, root: Path) -> None:
    """Fetch ``flag`` at ``size`` into ``root`` with the ``medmnist`` package (MD5-checked)."""
    import medmnist

    root.mkdir(parents=True, exist_ok=True)
    cls = getattr(medmnist, medmnist_info()[flag]["python_class"])
    logger.info("downloading %s into %s", dataset_filename(flag, size), root)
    try:
        cls(split="train", root=str(root), size=size, download=True)
    except Exception as exc:
        raise DataError(
            f"downloading {dataset_filename(flag, size)} failed ({type(exc).__name__}). "
            f"Download it by hand from {_download_url(flag, size)} and put it in {root}"
        ) from exc


def _labels(raw: np.ndarray, name: str, path: Path) -> np.ndarray:
    arr = np.asarray(raw)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(
            f"{path}: {name} has shape {np.shape(raw)}; only single-label classification "
            "datasets are supported (not multi-label ones such as chestmnist)"
        )
    return arr.astype(np.int64)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    import zipfile

    try:
        with np.load(path) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc}); delete it and "
                        "download or write it again") from exc


def _halve_test(test: Split) -> tuple[Split, Split]:
    """The reference's val/test: the official test split halved like ``random_split``.

    ``torch.randperm(n, generator=torch.Generator().manual_seed(0))``; the first ``n // 2``
    permuted samples become val, the rest test (PneumoniaMNIST 312/312, DermaMNIST 1002/1003).
    """
    import torch

    n = len(test)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(REFERENCE_SPLIT_SEED))
    order = perm.numpy()
    first, second = order[: n // 2], order[n // 2 :]
    return (
        Split(test.images[first], test.labels[first]),
        Split(test.images[second], test.labels[second]),
    )


def _missing_file(flag: str, size: int, root: Path, path: Path, download: bool) -> None:
    """Download a missing MedMNIST file when asked, else raise the error that says how."""
    info = medmnist_info().get(flag)
    if info is None:
        raise DataError(
            f"dataset file {path.name} not found in {root}, and {flag!r} is not a MedMNIST "
            "flag; write it with chainlearn_ray.data.synthetic.write_synthetic or fix the name"
        )
    if "multi-label" in str(info.get("task", "")):
        raise DataError(f"{flag} is multi-label; only single-label classification flags "
                        "are supported")
    if size not in MEDMNIST_SIZES:
        raise DataError(f"MedMNIST publishes sizes {MEDMNIST_SIZES}, not {size}: load 28 and "
                        "resize with chainlearn_ray.data.transforms.to_tensor(size=...)")
    if not download:
        raise DataError(
            f"dataset file {path.name} not found in {root}. Download it from "
            f"{_download_url(flag, size)} and put it in {root} (or pass download=True / "
            f"--download when online, or point --data-dir / ${DATA_ENV} at a folder holding it)"
        )
    _download(flag, size, root)


def load_dataset(
    flag: str,
    data_dir: str | Path | None = None,
    *,
    size: int = 28,
    split_mode: str = "official",
    download: bool = False,
) -> MedMNISTData:
    """Load a 2D MedMNIST dataset (or a synthetic one) from ``<data_dir>/<flag>[_<size>].npz``.

    The file is read with numpy (no MD5 check, so re-packed copies of the official data work).
    Only when it is missing and ``download`` is true does the ``medmnist`` package fetch it.

    Parameters
    ----------
    flag:
        A 2D MedMNIST flag (``"pneumoniamnist"``, ``"dermamnist"``, ...) or the name of a file
        written by :func:`chainlearn_ray.data.synthetic.write_synthetic`.
    data_dir:
        Data folder; default ``$CHAINLEARN_DATA``, else the per-user cache
        (:func:`default_data_dir`).
    size:
        Image side: 28, 64, 128 or 224 for MedMNIST flags.
    split_mode:
        ``"official"`` (train / val / test as published) or ``"reference_halved"`` (val and test
        are the two halves of the official test split, the official val split is unused).
    download:
        Fetch a missing MedMNIST file from Zenodo.

    Returns
    -------
    MedMNISTData

    Raises
    ------
    DataError
        Missing file (the message names the file, the folder and the download URL), a 3D or
        multi-label flag, an unsupported size, or a malformed file.
    """
    if split_mode not in SPLIT_MODES:
        raise DataError(f"unknown split_mode {split_mode!r}: use one of {', '.join(SPLIT_MODES)}")
    if flag.endswith("3d"):
        raise DataError(f"{flag} is a 3D MedMNIST dataset; only 2D flags are supported")
    root = resolve_data_dir(data_dir)
    path = root / dataset_filename(flag, size)
    if not path.is_file():
        # Only a missing file needs the catalogue (``import medmnist`` costs seconds of CPU):
        # a file on disk describes itself (channels, classes; multi-label labels are refused).
        _missing_file(flag, size, root, path, download)
    arrays = _read_npz(path)
    missing = [f"{s}_{k}" for s in ("train", "val", "test") for k in ("images", "labels")
               if f"{s}_{k}" not in arrays]
    if missing:
        raise DataError(f"{path} lacks the MedMNIST keys {missing}")
    splits: dict[str, Split] = {}
    for name in ("train", "val", "test"):
        images = arrays[f"{name}_images"]
        labels = _labels(arrays[f"{name}_labels"], f"{name}_labels", path)
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise DataError(f"{path}: {name}_images must be uint8 N×H×W[×C], got "
                            f"{images.dtype} {images.shape}")
        if images.shape[0] != labels.shape[0]:
            raise DataError(f"{path}: {name} has {images.shape[0]} images but "
                            f"{labels.shape[0]} labels")
        if images.shape[1:3] != (size, size):
            raise DataError(f"{path}: {name} images are {images.shape[1]}×{images.shape[2]}, "
                            f"expected {size}×{size}")
        splits[name] = Split(images, labels)
    file_channels = 1 if splits["train"].images.ndim == 3 else int(splits["train"].images.shape[3])
    n_channels = int(arrays[META_CHANNELS]) if META_CHANNELS in arrays else file_channels
    max_label = max(int(s.labels.max(initial=0)) for s in splits.values())
    n_classes = int(arrays[META_CLASSES]) if META_CLASSES in arrays else max_label + 1
    if n_channels != file_channels:
        raise DataError(f"{path}: images have {file_channels} channel(s), expected {n_channels}")
    for name, split in splits.items():
        if len(split) and (split.labels.min() < 0 or split.labels.max() >= n_classes):
            raise DataError(f"{path}: {name} labels fall outside [0, {n_classes})")
    if split_mode == "reference_halved":
        val, test = _halve_test(splits["test"])
    else:
        val, test = splits["val"], splits["test"]
    logger.debug("loaded %s: train %d, val %d, test %d", path, len(splits["train"]), len(val),
                 len(test))
    return MedMNISTData(
        flag=flag,
        n_classes=n_classes,
        n_channels=n_channels,
        size=size,
        train=splits["train"],
        val=val,
        test=test,
        split_mode=split_mode,
        path=path,
    )
