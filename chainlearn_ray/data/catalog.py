"""The MedMNIST catalogue (the ``medmnist`` package's ``INFO``) and the dataset file format:
file names and the metadata keys of synthetic files."""

from __future__ import annotations

from typing import Any

#: Extra keys a synthetic file holds next to the six MedMNIST arrays, read back by the loader.
META_CLASSES = "meta_n_classes"
META_CHANNELS = "meta_n_channels"


def dataset_filename(flag: str, size: int = 28) -> str:
    """MedMNIST file name: ``<flag>.npz`` at size 28, else ``<flag>_<size>.npz``."""
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def medmnist_info() -> dict[str, dict[str, Any]]:
    """The ``medmnist`` package's public ``INFO`` table (empty when the package is not installed).

    ``import medmnist`` also loads its dataset classes and scikit-learn (about 1.5 s of CPU on top
    of torch, once per process); it happens on the first call, not when this module is imported.
    """
    try:
        import medmnist
    except ImportError:
        return {}
    return dict(medmnist.INFO)
