"""Torch thread counts per OS thread, and device synchronisation before clock reads."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

#: The torch thread count each OS thread has applied (see :func:`pin_torch_threads`).
_APPLIED = threading.local()


def pin_torch_threads(threads: int) -> None:
    """Apply ``torch.set_num_threads(threads)`` in the calling OS thread too.

    The count is process-wide, but OpenMP keeps it per thread: a thread that never applied it
    (an actor's second task thread, say) computes with the library default, which differs in
    speed and in the order of floating-point sums. Applying it once per thread makes every
    thread of a process compute alike.
    """
    import torch

    if getattr(_APPLIED, "threads", None) != threads or torch.get_num_threads() != threads:
        torch.set_num_threads(int(threads))
        _APPLIED.threads = int(threads)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)`` (``None``: unchanged), then restore."""
    import torch

    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    pin_torch_threads(int(threads))
    try:
        yield
    finally:
        if before != threads:
            pin_torch_threads(before)


def synchronize(device: str) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)
