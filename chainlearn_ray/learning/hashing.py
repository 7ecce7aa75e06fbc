"""Canonical bytes of a model's state and its hash: what a hospital commits to on chain."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Mapping

import torch
from torch import Tensor, nn

from chainlearn_ray.errors import ModelError

#: Version tag that starts :func:`state_dict_bytes`.
STATE_TAG = b"chainlearn-state-v1"

_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _tensor_bytes(t: Tensor) -> bytes:
    """Raw little-endian bytes of a tensor in C order, whatever its device or memory format."""
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    try:
        arr = flat.numpy()
    except TypeError:  # bfloat16, float8: no numpy dtype, same-size integers carry the bits
        arr = flat.view(_INT_OF_SIZE[flat.element_size()]).numpy()
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def _state_parts(state: Mapping[str, Tensor]) -> Iterator[bytes]:
    """The pieces of :func:`state_dict_bytes`, in order."""
    keys = sorted(state)
    yield STATE_TAG + struct.pack(">I", len(keys))
    for key in keys:
        t = state[key]
        if not isinstance(t, Tensor):
            raise ModelError(f"state entry {key!r} is not a tensor")
        name, dtype = key.encode("utf-8"), str(t.dtype).removeprefix("torch.").encode("ascii")
        data = _tensor_bytes(t)
        yield (struct.pack(">I", len(name)) + name + struct.pack(">B", len(dtype)) + dtype
               + struct.pack(">B", t.ndim) + struct.pack(f">{t.ndim}Q", *t.shape)
               + struct.pack(">Q", len(data)))
        yield data


def _state_of(model_or_state: nn.Module | Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    if isinstance(model_or_state, nn.Module):
        return model_or_state.state_dict()
    return model_or_state


def state_dict_bytes(state: nn.Module | Mapping[str, Tensor]) -> bytes:
    """Canonical serialisation of a state dict (also the size of a model on the wire).

    ``b"chainlearn-state-v1"`` ‖ entry count (u32), then per entry in sorted key order: key
    length (u32) ‖ key UTF-8 ‖ dtype-name length (u8) ‖ dtype name ‖ ndim (u8) ‖ each dim (u64)
    ‖ data length (u64) ‖ the values in C order, little-endian. All integers big-endian.
    Independent of device, memory format and insertion order.
    """
    return b"".join(_state_parts(_state_of(state)))


def model_hash(model_or_state: nn.Module | Mapping[str, Tensor]) -> bytes:
    """SHA-256 of :func:`state_dict_bytes` (32 bytes, the contract's ``bytes32 modelHash``)."""
    digest = hashlib.sha256()
    for part in _state_parts(_state_of(model_or_state)):
        digest.update(part)
    return digest.digest()
