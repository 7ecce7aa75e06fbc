"""Chaos testing: faults a hospital injects into itself at a given round (``faults`` entries
``"<hospital_id>@<round>:crash|raise|hang"`` of its spec)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from chainlearn_ray.errors import HospitalFailure
from chainlearn_ray.hospital.spec import HospitalSpec

logger = logging.getLogger(__name__)


def _marker(spec: HospitalSpec, fault: str) -> Path | None:
    if not spec.checkpoint_dir:
        return None
    safe = fault.replace("@", "_").replace(":", "_")
    return Path(spec.checkpoint_dir) / f".fault_{safe}"


def inject_fault(spec: HospitalSpec, round_: int) -> None:
    """Fire the spec's fault for ``round_``, if any: ``crash`` ends the process, ``hang``
    sleeps an hour, ``raise`` raises :class:`HospitalFailure`. Each fault fires once, even
    across restarts (a marker file in the checkpoint folder remembers it)."""
    for fault in spec.faults:
        target, _, rest = fault.partition("@")
        when, _, kind = rest.partition(":")
        if target != spec.hospital_id or int(when) != round_:
            continue
        marker = _marker(spec, fault)
        if marker is not None and marker.exists():
            continue
        if marker is not None:
            marker.touch()
        logger.warning("%s: injected fault %s in round %d", spec.hospital_id, kind, round_)
        if kind == "crash":
            os._exit(17)
        if kind == "hang":
            time.sleep(3600)
        raise HospitalFailure(f"injected fault in {spec.hospital_id} round {round_}")
